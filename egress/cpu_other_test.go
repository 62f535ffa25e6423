//go:build !unix

package egress_test

import (
	"testing"
	"time"
)

// cpuTime is not measured here: the benchmark reports no events/cpu-s.
func cpuTime(testing.TB) time.Duration { return 0 }
