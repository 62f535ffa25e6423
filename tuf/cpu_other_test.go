//go:build !unix

package tuf_test

import "time"

// cpuTime is not measured where getrusage is not available.
func cpuTime() time.Duration { return 0 }
