package sqlite

import (
	"context"
	"sync"
)

// txQueue orders the write transactions of one file waiting for its one
// writer connection (database/sql hands a freed connection to a random
// waiter). A small transaction (at most smallTx bytes of input, or of no
// stated size) goes ahead of the large ones waiting, so that a sensor's
// small batch (a handful of lines that may quarantine an update) does not
// queue behind the load's batches of megabytes; the large ones go in
// arrival order among themselves, and the oldest waiter, once passed over
// maxBypass times, goes next whatever its size: a stream of small
// transactions cannot starve a large one.
type txQueue struct {
	mu      sync.Mutex
	busy    bool
	waiters []*txWaiter // in arrival order
}

type txWaiter struct {
	small  bool
	passed int
	ready  chan struct{} // closed when the writer is this waiter's
}

// Queue settings.
const (
	// smallTx is the largest input, in bytes, a transaction is small with:
	// about a thousand Defender lines, a few milliseconds of the writer.
	smallTx = 256 << 10
	// maxBypass is how many transactions may go ahead of the oldest waiter.
	maxBypass = 4
)

// acquire waits for the writer; release gives it to the next waiter. A
// size of 0 or less is an unstated size: small.
func (q *txQueue) acquire(ctx context.Context, size int64) (release func(), err error) {
	q.mu.Lock()
	if !q.busy && len(q.waiters) == 0 {
		q.busy = true
		q.mu.Unlock()
		return q.release, nil
	}
	w := &txWaiter{small: size <= smallTx, ready: make(chan struct{})}
	q.waiters = append(q.waiters, w)
	q.mu.Unlock()
	select {
	case <-w.ready:
		return q.release, nil
	case <-ctx.Done():
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	select {
	case <-w.ready: // granted meanwhile: pass it on
		q.next()
	default:
		for i, x := range q.waiters {
			if x == w {
				q.waiters = append(q.waiters[:i], q.waiters[i+1:]...)
				break
			}
		}
	}
	return nil, ctx.Err()
}

func (q *txQueue) release() {
	q.mu.Lock()
	q.next()
	q.mu.Unlock()
}

// next hands the writer to the next waiter, or frees it; q.mu is held.
func (q *txQueue) next() {
	if len(q.waiters) == 0 {
		q.busy = false
		return
	}
	i := 0
	if q.waiters[0].passed < maxBypass {
		for j, w := range q.waiters {
			if w.small {
				i = j
				break
			}
		}
	}
	for _, w := range q.waiters[:i] {
		w.passed++
	}
	w := q.waiters[i]
	q.waiters = append(q.waiters[:i], q.waiters[i+1:]...)
	q.busy = true
	close(w.ready)
}
