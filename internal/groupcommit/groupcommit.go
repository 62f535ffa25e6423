// Package groupcommit gathers concurrent write requests into batches, so a
// store pays one transaction (and one fsync) per batch instead of one per
// request. Writer is the group committer every store writer uses (the
// signed log, installations, the audit trail): Submit, Expect, Close.
// Collector is its batching policy.
package groupcommit

import (
	"sync"
	"sync/atomic"
	"time"
)

// DefaultLinger is how long a batch taken under load waits for more
// requests (see Collector). Without a wait, the admission path's commits
// held three or four requests each and took a third of the server's CPU
// (bench/serve-load.sh; figures in docs/serve.md).
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
// When the writer's callers announce their requests (Expected, see
// Announcer), the guess is replaced by knowledge: the batch waits, up to
// Linger, exactly until every announced request has arrived, and not at
// all when none is on its way.
//
// A Collector is used by one goroutine.
type Collector[T any] struct {
	Reqs   <-chan T
	Done   <-chan struct{}
	Max    int
	Linger time.Duration
	// Expected, when set, is the number of requests announced and not yet
	// done: those in the batch and those on their way.
	Expected func() int

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
	if c.Linger > 0 && len(batch) < max && c.more(len(batch)) {
		batch = c.linger(batch, max)
	}
	c.last = len(batch)
	return batch, true
}

// more reports whether more requests are worth waiting for, n being in
// the batch.
func (c *Collector[T]) more(n int) bool {
	if c.Expected != nil {
		return c.Expected() > n
	}
	return c.last > 1
}

// linger adds requests to batch until it holds max, no more are expected,
// Linger passes, or Done closes.
func (c *Collector[T]) linger(batch []T, max int) []T {
	if c.timer == nil {
		c.timer = time.NewTimer(c.Linger)
	} else {
		c.timer.Reset(c.Linger)
	}
	defer c.timer.Stop()
	for len(batch) < max && (c.Expected == nil || c.Expected() > len(batch)) {
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

// Announcer counts requests announced to a writer and not yet done; its
// Count is a Collector's Expected. It is safe for concurrent use.
type Announcer struct{ n atomic.Int64 }

// Announce counts one request on its way. The returned func marks it done
// (written, or not going to be made); calling it again does nothing.
func (a *Announcer) Announce() (done func()) {
	a.n.Add(1)
	var once sync.Once
	return func() { once.Do(func() { a.n.Add(-1) }) }
}

// Count is the number of announced requests not yet done.
func (a *Announcer) Count() int { return int(a.n.Load()) }
