//go:build unix

package proccpu_test

import (
	"testing"
	"time"

	"github.com/wardgate/wardgate/internal/proccpu"
)

// Time grows by at least the CPU a busy loop spends.
func TestTimeCountsWork(t *testing.T) {
	before := proccpu.Time()
	if before <= 0 {
		t.Fatalf("CPU time %s before any work: the process has used some", before)
	}
	x := 0
	for start := time.Now(); time.Since(start) < 50*time.Millisecond; {
		x++
	}
	if got := proccpu.Time() - before; got < 20*time.Millisecond {
		t.Fatalf("a 50 ms busy loop (%d turns) added %s of CPU time", x, got)
	}
}
