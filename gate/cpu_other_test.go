//go:build !unix

package gate_test

import (
	"testing"
	"time"
)

// cpuTime is not measured here: the benchmark reports 0 cpu-ns/op.
func cpuTime(testing.TB) time.Duration { return 0 }
