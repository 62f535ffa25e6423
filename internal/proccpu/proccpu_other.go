//go:build !unix

package proccpu

import "time"

// Time is not measured here: benchmarks report 0 CPU time.
func Time() time.Duration { return 0 }
