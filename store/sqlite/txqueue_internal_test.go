package sqlite

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// queueRun records the order a queue grants its waiters in.
type queueRun struct {
	q     *txQueue
	mu    sync.Mutex
	order []string
	wg    sync.WaitGroup
}

// enqueue adds a waiter named name of size, and returns once it waits;
// once granted, it records its name and releases the writer.
func (r *queueRun) enqueue(t *testing.T, name string, size int64) {
	t.Helper()
	n := r.waiting()
	r.wg.Go(func() {
		release, err := r.q.acquire(context.Background(), size)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			return
		}
		r.mu.Lock()
		r.order = append(r.order, name)
		r.mu.Unlock()
		release()
	})
	for r.waiting() != n+1 {
		time.Sleep(time.Millisecond)
	}
}

func (r *queueRun) waiting() int {
	r.q.mu.Lock()
	defer r.q.mu.Unlock()
	return len(r.q.waiters)
}

// TestTxQueueSmallFirst: a small transaction goes ahead of the large ones
// waiting; large ones go in arrival order.
func TestTxQueueSmallFirst(t *testing.T) {
	r := &queueRun{q: &txQueue{}}
	release, err := r.q.acquire(t.Context(), 10<<20)
	if err != nil {
		t.Fatal(err)
	}
	r.enqueue(t, "L1", 10<<20)
	r.enqueue(t, "L2", 10<<20)
	r.enqueue(t, "S1", 4096)
	r.enqueue(t, "L3", smallTx+1)
	r.enqueue(t, "S2", 0) // no stated size: small
	release()
	r.wg.Wait()
	if want := []string{"S1", "S2", "L1", "L2", "L3"}; !slices.Equal(r.order, want) {
		t.Fatalf("order %v, want %v", r.order, want)
	}
	if r.q.busy || len(r.q.waiters) != 0 {
		t.Fatalf("queue not free after all released: busy %v, %d waiting", r.q.busy, len(r.q.waiters))
	}
}

// TestTxQueueNoStarvation: the oldest waiter goes next once maxBypass
// transactions went ahead of it, small ones waiting or not.
func TestTxQueueNoStarvation(t *testing.T) {
	r := &queueRun{q: &txQueue{}}
	release, err := r.q.acquire(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	r.enqueue(t, "L", 10<<20)
	for i := range maxBypass + 2 {
		r.enqueue(t, string(rune('a'+i)), 100)
	}
	release()
	r.wg.Wait()
	// maxBypass small ones pass L, then L, then the rest.
	exp := []string{}
	for i := range maxBypass {
		exp = append(exp, string(rune('a'+i)))
	}
	exp = append(exp, "L")
	for i := maxBypass; i < maxBypass+2; i++ {
		exp = append(exp, string(rune('a'+i)))
	}
	if !slices.Equal(r.order, exp) {
		t.Fatalf("order %v, want %v", r.order, exp)
	}
}

// TestTxQueueCancel: a waiter whose context ends leaves the queue with
// its error, and the others are served.
func TestTxQueueCancel(t *testing.T) {
	q := &txQueue{}
	release, err := q.acquire(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := q.acquire(ctx, 0)
		errc <- err
	}()
	for {
		q.mu.Lock()
		n := len(q.waiters)
		q.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled waiter: %v", err)
	}
	if len(q.waiters) != 0 {
		t.Fatalf("%d waiting after the cancel", len(q.waiters))
	}
	release()
	release2, err := q.acquire(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	release2()
	if q.busy {
		t.Fatal("busy after every release")
	}
}
