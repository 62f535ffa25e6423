// Package groupcommit gathers concurrent write requests into batches, so a
// store pays one transaction (and one fsync) per batch instead of one per
// request. The signed log, the installation store and the server's audit
// trail each take their batches with a Collector.
package groupcommit

import "time"

// DefaultLinger is how long a batch taken under load waits for more
// requests (see Collector). Measured with bench/serve-load.sh: without it
// the admission path wrote batches of three or four and spent a third of
// its CPU on commits; with 1 ms the same load runs in about a quarter
// fewer commits' worth of CPU and more admissions per second at a lower
// p99 (docs/serve.md, "Throughput").
const DefaultLinger = time.Millisecond

// Collector takes batches of requests from Reqs.
//
// Next waits for the first request, then takes whatever else is queued, up
// to Max. When the previous batch held more than one request (the writer
// is under concurrent load), it also waits up to Linger for more before it
// returns: when a commit is quick, requests otherwise trickle in one at a
// time and each pays for a whole commit. A request that comes alone (light
// load) is never held back.
//
// A Collector is used by one goroutine.
type Collector[T any] struct {
	Reqs   <-chan T
	Done   <-chan struct{}
	Max    int
	Linger time.Duration

	last  int
	timer *time.Timer
}

// Next returns the next batch, appended to buf[:0], or false once Done is
// closed and no request is waiting to start a batch.
func (c *Collector[T]) Next(buf []T) ([]T, bool) {
	batch := buf[:0]
	select {
	case r := <-c.Reqs:
		batch = append(batch, r)
	case <-c.Done:
		return batch, false
	}
	max := max(c.Max, 1)
drain:
	for len(batch) < max {
		select {
		case r := <-c.Reqs:
			batch = append(batch, r)
		default:
			break drain
		}
	}
	if c.Linger > 0 && c.last > 1 && len(batch) < max {
		batch = c.linger(batch, max)
	}
	c.last = len(batch)
	return batch, true
}

// linger adds requests to batch until it holds max, Linger passes, or Done
// closes.
func (c *Collector[T]) linger(batch []T, max int) []T {
	if c.timer == nil {
		c.timer = time.NewTimer(c.Linger)
	} else {
		c.timer.Reset(c.Linger)
	}
	defer c.timer.Stop()
	for len(batch) < max {
		select {
		case r := <-c.Reqs:
			batch = append(batch, r)
		case <-c.timer.C:
			return batch
		case <-c.Done:
			return batch
		}
	}
	return batch
}
