package rollout

import (
	"sync"
	"time"
)

// Clock is the decision time of ring changes: never the caller's, never
// going back, and not moved forward by a wall clock that jumps. It reads
// the wall clock once, at construction, and adds the monotonic time
// elapsed since; Now returns the maximum of that, the log's last entry
// time and every time it returned before. A replica whose clock is behind
// decides at the log's time; one whose clock is ahead still cannot widen
// early, because a ring widens only on devices' telemetry dated past
// their soak (Decide).
type Clock struct {
	base    time.Time
	elapsed func() time.Duration

	mu   sync.Mutex
	high time.Time
}

// NewClock starts a clock at wall() that advances by elapsed(); nil
// elapsed uses the process's monotonic clock. A test clock passes both.
func NewClock(wall func() time.Time, elapsed func() time.Duration) *Clock {
	if wall == nil {
		wall = time.Now
	}
	start := time.Now()
	if elapsed == nil {
		elapsed = func() time.Duration { return time.Since(start) }
	}
	return &Clock{base: wall().UTC().Round(0), elapsed: elapsed}
}

// Now returns the decision time given the log's last entry time (zero
// when the log is empty or absent).
func (c *Clock) Now(logLast time.Time) time.Time {
	t := c.base.Add(c.elapsed())
	c.mu.Lock()
	defer c.mu.Unlock()
	if logLast.After(t) {
		t = logLast
	}
	if c.high.After(t) {
		t = c.high
	}
	c.high = t
	return t.UTC()
}
