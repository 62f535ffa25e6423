package groupcommit

import (
	"slices"
	"testing"
	"time"
)

// next runs c.Next in a goroutine and fails the test if it has not
// returned within 5 seconds (a Collector that lingered when it should not
// have waits for its 10-minute Linger).
func next(t *testing.T, c *Collector[int]) ([]int, bool) {
	t.Helper()
	type res struct {
		batch []int
		ok    bool
	}
	ch := make(chan res, 1)
	go func() {
		b, ok := c.Next(nil)
		ch <- res{b, ok}
	}()
	select {
	case r := <-ch:
		return r.batch, r.ok
	case <-time.After(5 * time.Second):
		t.Fatal("Next did not return within 5 seconds")
		return nil, false
	}
}

func TestNextDrainsUpToMax(t *testing.T) {
	reqs := make(chan int, 10)
	for i := range 5 {
		reqs <- i
	}
	c := &Collector[int]{Reqs: reqs, Done: make(chan struct{}), Max: 3}
	if b, ok := next(t, c); !ok || !slices.Equal(b, []int{0, 1, 2}) {
		t.Fatalf("first batch %v %v, want [0 1 2]", b, ok)
	}
	if b, ok := next(t, c); !ok || !slices.Equal(b, []int{3, 4}) {
		t.Fatalf("second batch %v %v, want [3 4]", b, ok)
	}
}

func TestLoneRequestIsNotHeld(t *testing.T) {
	reqs := make(chan int, 10)
	c := &Collector[int]{Reqs: reqs, Done: make(chan struct{}), Max: 10, Linger: 10 * time.Minute}
	reqs <- 1
	if b, _ := next(t, c); !slices.Equal(b, []int{1}) {
		t.Fatalf("batch %v, want [1]", b)
	}
	// The previous batch held one request: still no lingering.
	reqs <- 2
	if b, _ := next(t, c); !slices.Equal(b, []int{2}) {
		t.Fatalf("batch %v, want [2]", b)
	}
}

func TestUnderLoadWaitsForMore(t *testing.T) {
	reqs := make(chan int, 10)
	c := &Collector[int]{Reqs: reqs, Done: make(chan struct{}), Max: 3, Linger: 10 * time.Minute}
	reqs <- 1
	reqs <- 2
	if b, _ := next(t, c); !slices.Equal(b, []int{1, 2}) {
		t.Fatalf("batch %v, want [1 2]", b)
	}
	// Under load now: the next batch waits (up to 10 minutes) until it is
	// full, so requests sent after Next started are in it.
	reqs <- 3
	done := make(chan []int, 1)
	go func() {
		b, _ := c.Next(nil)
		done <- b
	}()
	time.Sleep(10 * time.Millisecond)
	select {
	case b := <-done:
		t.Fatalf("Next returned %v before the batch was full or the linger passed", b)
	default:
	}
	reqs <- 4
	reqs <- 5
	select {
	case b := <-done:
		if !slices.Equal(b, []int{3, 4, 5}) {
			t.Fatalf("batch %v, want [3 4 5]", b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next did not return once the batch was full")
	}
}

func TestLingerEnds(t *testing.T) {
	reqs := make(chan int, 10)
	c := &Collector[int]{Reqs: reqs, Done: make(chan struct{}), Max: 100, Linger: time.Millisecond}
	reqs <- 1
	reqs <- 2
	next(t, c)
	reqs <- 3
	if b, _ := next(t, c); !slices.Equal(b, []int{3}) {
		t.Fatalf("batch %v, want [3] once the linger passed", b)
	}
}

func TestDone(t *testing.T) {
	reqs := make(chan int, 10)
	done := make(chan struct{})
	c := &Collector[int]{Reqs: reqs, Done: done, Max: 100, Linger: 10 * time.Minute}
	reqs <- 1
	reqs <- 2
	next(t, c)
	reqs <- 3
	go func() {
		time.Sleep(10 * time.Millisecond)
		close(done)
	}()
	// Closing Done ends the linger: the batch started is returned.
	if b, ok := next(t, c); !ok || !slices.Equal(b, []int{3}) {
		t.Fatalf("batch %v %v, want [3] true", b, ok)
	}
	if b, ok := next(t, c); ok || len(b) != 0 {
		t.Fatalf("after Done: %v %v, want an empty batch and false", b, ok)
	}
}

func TestExpectedReplacesTheGuess(t *testing.T) {
	reqs := make(chan int, 10)
	var a Announcer
	c := &Collector[int]{Reqs: reqs, Done: make(chan struct{}), Max: 100, Linger: 10 * time.Minute, Expected: a.Count}
	// Two requests came in the last batch, but only this one is announced:
	// no waiting.
	reqs <- 1
	reqs <- 2
	next(t, c)
	done1 := a.Announce()
	reqs <- 3
	if b, _ := next(t, c); !slices.Equal(b, []int{3}) {
		t.Fatalf("batch %v, want [3]", b)
	}
	done1()
	// Three announced, one arrived: the batch waits for the other two, and
	// returns as soon as they are in (not after the 10-minute linger).
	dones := []func(){a.Announce(), a.Announce(), a.Announce()}
	reqs <- 4
	got := make(chan []int, 1)
	go func() {
		b, _ := c.Next(nil)
		got <- b
	}()
	time.Sleep(10 * time.Millisecond)
	select {
	case b := <-got:
		t.Fatalf("Next returned %v with two announced requests missing", b)
	default:
	}
	reqs <- 5
	reqs <- 6
	select {
	case b := <-got:
		if !slices.Equal(b, []int{4, 5, 6}) {
			t.Fatalf("batch %v, want [4 5 6]", b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next did not return once every announced request was in")
	}
	for _, d := range dones {
		d()
	}
	// An announced request that is given up on ends the wait too.
	give := a.Announce()
	keep := a.Announce()
	reqs <- 7
	go func() {
		b, _ := c.Next(nil)
		got <- b
	}()
	time.Sleep(10 * time.Millisecond)
	give()
	reqs <- 8 // the next arrival sees the lower count
	select {
	case b := <-got:
		if !slices.Equal(b, []int{7, 8}) {
			t.Fatalf("batch %v, want [7 8]", b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next did not return")
	}
	keep()
}

func TestAnnouncer(t *testing.T) {
	var a Announcer
	d1, d2 := a.Announce(), a.Announce()
	if a.Count() != 2 {
		t.Fatalf("count %d, want 2", a.Count())
	}
	d1()
	d1() // a second call does nothing
	if a.Count() != 1 {
		t.Fatalf("count %d after one done (called twice), want 1", a.Count())
	}
	d2()
	if a.Count() != 0 {
		t.Fatalf("count %d, want 0", a.Count())
	}
}
