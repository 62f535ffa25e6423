package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/anchore/stereoscope"
)

// workPrefixes name what requests leave in the work directory while they
// run (uploads, telemetry spools, exports) and what syft and stereoscope
// leave there when TMPDIR points at it (as `wardgate serve` sets it): a
// crash leaves them behind, and the server removes them when it starts and
// when it closes.
var workPrefixes = []string{"upload-", "telemetry-", "export-", "stereoscope-", "syft-", "wardgate-sbom-", "wardgate-pack-", ".wardgate-pack-"}

// cleanWork removes what requests and scans left in the work directory.
// Only the server uses it, and none of its requests is running.
func (s *Server) cleanWork() error {
	ents, err := os.ReadDir(s.deps.WorkDir)
	if err != nil {
		return fmt.Errorf("server: work directory: %w", err)
	}
	var errs []error
	for _, e := range ents {
		for _, p := range workPrefixes {
			if strings.HasPrefix(e.Name(), p) {
				errs = append(errs, os.RemoveAll(filepath.Join(s.deps.WorkDir, e.Name())))
				break
			}
		}
	}
	return errors.Join(errs...)
}

// scanStarted and scanDone bracket an evaluation. When the last running
// evaluation is done, stereoscope's temporary directories (an image pulled
// for syft) are removed. syft closes each image (image.Image.Cleanup), but
// that leaves the directory stereoscope's generator made for it, empty,
// and the generator itself in a process-wide list, until
// stereoscope.Cleanup: deprecated in favour of image.Image.Cleanup, and
// still the only call that removes them.
func (s *Server) scanStarted() {
	s.scanMu.Lock()
	s.scans++
	s.scanMu.Unlock()
}

func (s *Server) scanDone() {
	s.scanMu.Lock()
	defer s.scanMu.Unlock()
	if s.scans--; s.scans == 0 {
		stereoscope.Cleanup() //nolint:staticcheck // see above
	}
}

// refreshFleet keeps the fleet analysis recent while the server runs:
// analysed at start, and again whenever it is older than the risk cache's
// TTL, so that an idle gate's first admission does not wait for one.
func (s *Server) refreshFleet() {
	s.deps.Risk.Refresh()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.deps.Risk.Refresh()
		case <-s.done:
			return
		}
	}
}

// Close stops the image evaluations the admission webhook started in the
// background and the fleet refresh, and removes what requests and scans
// left in the work directory. Call it once the HTTP server has shut down
// (no request running).
func (s *Server) Close() error {
	s.closeKube()
	s.closed.Do(func() { close(s.done) })
	s.scanMu.Lock()
	defer s.scanMu.Unlock()
	stereoscope.Cleanup() //nolint:staticcheck // see scanStarted
	return s.cleanWork()
}
