package gate_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/gate"
)

// slowAnalysis is an analysis that takes d and counts how many run at
// once; each report's Events is its run number.
type slowAnalysis struct {
	d               time.Duration
	runs, now, most atomic.Int64
}

func (a *slowAnalysis) analyze(ctx context.Context) (egress.Report, error) {
	n := a.now.Add(1)
	defer a.now.Add(-1)
	for {
		m := a.most.Load()
		if n <= m || a.most.CompareAndSwap(m, n) {
			break
		}
	}
	select {
	case <-time.After(a.d):
	case <-ctx.Done():
		return egress.Report{}, ctx.Err()
	}
	return egress.Report{Events: a.runs.Add(1)}, nil
}

// A sensor that posts constantly (an invalidation every 10 ms) against an
// analysis that takes 400 ms: every caller with a 300 ms budget is
// answered within it, from the last complete analysis, and analyses run
// one at a time.
func TestRiskCacheFloodAnswersWithinBudget(t *testing.T) {
	a := &slowAnalysis{d: 400 * time.Millisecond}
	c, err := gate.NewRiskCache(a.analyze, time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Report(t.Context()); err != nil { // the first analysis
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
				c.Invalidate()
			}
		}
	})
	var worst time.Duration
	var answered int
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		start := time.Now()
		_, err := c.Risk(ctx, "sha256:x")
		d := time.Since(start)
		cancel()
		if err != nil {
			t.Fatalf("call after %s: %v", d, err)
		}
		worst = max(worst, d)
		answered++
	}
	close(stop)
	wg.Wait()
	if worst > 300*time.Millisecond {
		t.Fatalf("slowest answer %s, budget 300ms", worst)
	}
	if m := a.most.Load(); m != 1 {
		t.Fatalf("%d analyses ran at once", m)
	}
	if a.runs.Load() < 3 {
		t.Fatalf("only %d analyses ran in 2 s of telemetry", a.runs.Load())
	}
	t.Logf("%d answers, slowest %s, %d analyses", answered, worst, a.runs.Load())
}

// The staleness bound: an answer's analysis may miss at most the bound's
// worth of telemetry. Past it, or before any analysis is complete, a
// caller waits within half its budget and then fails closed with
// ErrFleetStale; a failed analysis fails callers until one succeeds.
func TestRiskCacheStalenessBound(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	release := make(chan error, 10)
	var runs atomic.Int64
	c, err := gate.NewRiskCache(func(ctx context.Context) (egress.Report, error) {
		if err := <-release; err != nil {
			return egress.Report{}, err
		}
		return egress.Report{Events: runs.Add(1)}, nil
	}, 5*time.Second, clock, gate.WithMaxStaleness(30*time.Second), gate.WithFreshWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	call := func(budget time.Duration) (int64, error, time.Duration) {
		ctx, cancel := context.WithTimeout(t.Context(), budget)
		defer cancel()
		start := time.Now()
		r, err := c.Report(ctx)
		return r.Events, err, time.Since(start)
	}
	// No analysis yet: wait half the budget, then ErrFleetStale.
	if _, err, d := call(200 * time.Millisecond); !errors.Is(err, gate.ErrFleetStale) || d > 150*time.Millisecond {
		t.Fatalf("before the first analysis: %v after %s", err, d)
	}
	release <- nil
	if n, err, _ := call(time.Second); err != nil || n != 1 {
		t.Fatalf("first analysis: %d %v", n, err)
	}
	// Telemetry changed; the analysis covering it is held back. Within
	// the bound callers are answered from analysis 1 after the fresh wait.
	c.Invalidate()
	if n, err, d := call(time.Second); err != nil || n != 1 || d > 500*time.Millisecond {
		t.Fatalf("within the bound: %d %v after %s", n, err, d)
	}
	advance(29 * time.Second)
	if n, err, _ := call(time.Second); err != nil || n != 1 {
		t.Fatalf("29 s behind: %d %v", n, err)
	}
	advance(2 * time.Second)
	if _, err, d := call(200 * time.Millisecond); !errors.Is(err, gate.ErrFleetStale) || d > 150*time.Millisecond {
		t.Fatalf("31 s behind: %v after %s", err, d)
	}
	release <- nil
	deadline := time.Now().Add(5 * time.Second)
	for {
		if n, err, _ := call(time.Second); err == nil && n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the held analysis never answered")
		}
	}
	if s := c.Stats(); s.Refused != 2 || s.Analyses != 2 {
		t.Fatalf("stats %+v", s)
	}
	// Analysis 2 started 31 s ago (fake time), past the TTL: the call that
	// got it started a refresh (3) in the background.
	// The store then fails: callers fail with its error, each starting a
	// retry; the first retry that succeeds ends it.
	boom := errors.New("egress.db: disk I/O error")
	c.Invalidate()
	release <- nil  // the refresh
	release <- boom // the analysis of the invalidation
	if _, err := c.Sync(t.Context()); !errors.Is(err, boom) {
		t.Fatalf("sync over a failed analysis: %v", err)
	}
	if _, err, _ := call(time.Second); !errors.Is(err, boom) {
		t.Fatalf("after a failed analysis: %v", err)
	}
	release <- nil
	deadline = time.Now().Add(5 * time.Second)
	for {
		if n, err, _ := call(time.Second); err == nil && n == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the retry never answered")
		}
		time.Sleep(time.Millisecond)
	}
}
