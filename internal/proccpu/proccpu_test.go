//go:build unix

package proccpu_test

import (
	"testing"
	"time"

	"github.com/wardgate/wardgate/internal/proccpu"
)

// Time grows with the CPU a busy loop spends: 20 ms of it within 5 s of
// wall time, however busy the machine (a loaded machine gives the loop
// less of a core, not none).
func TestTimeCountsWork(t *testing.T) {
	before := proccpu.Time()
	if before <= 0 {
		t.Fatalf("CPU time %s before any work: the process has used some", before)
	}
	x := 0
	start := time.Now()
	for proccpu.Time()-before < 20*time.Millisecond {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("a busy loop of %s (%d turns) added %s of CPU time", time.Since(start), x, proccpu.Time()-before)
		}
		for range 100_000 {
			x++
		}
	}
}
