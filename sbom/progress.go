package sbom

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/anchore/syft/syft"
	"github.com/anchore/syft/syft/event"
	"github.com/anchore/syft/syft/event/monitor"
	"github.com/anchore/syft/syft/event/parsers"
	"github.com/wagoodman/go-partybus"
	"github.com/wagoodman/go-progress"
)

// Progress is how far a running Generate has got. The zero value is ready;
// pass it with WithProgress and read it from any goroutine.
type Progress struct {
	files atomic.Int64 // files read for the cache key

	mu       sync.Mutex
	indexing progress.Stager // syft's file indexer: the path it is at
	packages progress.Stager // syft's package cataloging: "1,234 packages"
}

// Files returns how many files have been read so far to compute the cache
// key (every regular file of a dir: or oci-dir: source). It stays 0 with
// WithoutCache, and for sources keyed by a single file or digest.
func (p *Progress) Files() int64 { return p.files.Load() }

// Packages returns how many packages syft has found so far.
func (p *Progress) Packages() int64 {
	p.mu.Lock()
	st := p.packages
	p.mu.Unlock()
	if st == nil {
		return 0
	}
	return parsePackageCount(st.Stage())
}

// Indexing returns the path syft's file indexer is at, or "" once it is
// done or before it starts.
func (p *Progress) Indexing() string {
	p.mu.Lock()
	st := p.indexing
	p.mu.Unlock()
	if st == nil {
		return ""
	}
	if c, ok := st.(progress.Progressable); ok && progress.IsCompleted(c) {
		return ""
	}
	return st.Stage()
}

// parsePackageCount reads syft's "1,234 packages" stage.
func parsePackageCount(stage string) int64 {
	n, _, ok := strings.Cut(stage, " ")
	if !ok {
		return 0
	}
	v, err := strconv.ParseInt(strings.ReplaceAll(n, ",", ""), 10, 64)
	if err != nil {
		return 0
	}
	return v
}

// watch subscribes to syft's progress events for one scan; the returned
// function ends the subscription.
func (p *Progress) watch() func() {
	bus := partybus.NewBus()
	sub := bus.Subscribe(event.FileIndexingStarted, event.CatalogerTaskStarted)
	syft.SetBus(bus)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := range sub.Events() {
			switch e.Type {
			case event.FileIndexingStarted:
				if _, prog, err := parsers.ParseFileIndexingStarted(e); err == nil {
					p.mu.Lock()
					p.indexing = prog
					p.mu.Unlock()
				}
			case event.CatalogerTaskStarted:
				if prog, task, err := parsers.ParseCatalogerTaskStarted(e); err == nil && prog != nil && task.ID == monitor.PackageCatalogingTaskID {
					p.mu.Lock()
					p.packages = prog
					p.mu.Unlock()
				}
			}
		}
	}()
	return func() {
		// Closing leaves syft publishing to a bus with no subscribers,
		// which costs nothing; syft has no way to unset its bus.
		bus.Close()
		<-done
	}
}
