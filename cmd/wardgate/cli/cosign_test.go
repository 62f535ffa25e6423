package cli_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// cosignVersion is the cosign the parity tests run: the version go.mod pins.
const cosignVersion = "v2.6.5"

var cosignOnce struct {
	sync.Once
	path string
	err  string
}

// cosignBinary returns the real cosign: $WARDGATE_COSIGN when set (.ci/run
// builds it once), else one built once per test process with go install
// into a temporary GOBIN. Without either it skips with the reason: the
// build needs the Go module proxy (or a module cache holding cosign's
// dependencies).
func cosignBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("WARDGATE_COSIGN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("$WARDGATE_COSIGN: %v", err)
		}
		return p
	}
	if testing.Short() {
		t.Skip("-short: the real cosign is not built")
	}
	cosignOnce.Do(func() {
		dir, err := os.MkdirTemp("", "wardgate-cosign-")
		if err != nil {
			cosignOnce.err = err.Error()
			return
		}
		cmd := exec.Command("go", "install", "github.com/sigstore/cosign/v2/cmd/cosign@"+cosignVersion)
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=", "CGO_ENABLED=0")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			cosignOnce.err = "go install cosign@" + cosignVersion + ": " + err.Error() + "\n" + out.String()
			return
		}
		cosignOnce.path = filepath.Join(dir, "cosign")
	})
	if cosignOnce.path == "" {
		t.Skipf("the real cosign is not available, so the parity check cannot run: %s", cosignOnce.err)
	}
	return cosignOnce.path
}

// runCosign runs cosign with a clean environment: no TUF cache, no
// network-facing defaults it could pick up from the user's home.
func runCosign(t *testing.T, bin string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	home := t.TempDir()
	cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "TUF_ROOT=" + filepath.Join(home, "tuf"), "COSIGN_EXPERIMENTAL=0"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			return 0, out.String()
		}
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), out.String()
		}
		t.Fatalf("cosign: %v", err)
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("cosign %v: no answer in 2 minutes\n%s", args, out.String())
	}
	return -1, ""
}
