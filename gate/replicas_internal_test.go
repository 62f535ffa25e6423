package gate

import (
	"context"
	"errors"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/evidence"
)

// fleetStates is an analysis whose reports give each update the state
// set for it when the analysis started; each analysis takes d.
type fleetStates struct {
	d     time.Duration
	mu    sync.Mutex
	state map[string]string
	runs  atomic.Int64
}

func (f *fleetStates) set(digest, state string) {
	f.mu.Lock()
	f.state[digest] = state
	f.mu.Unlock()
}

func (f *fleetStates) analyze(ctx context.Context) (egress.Report, error) {
	f.mu.Lock()
	st := maps.Clone(f.state)
	f.mu.Unlock()
	select {
	case <-time.After(f.d):
	case <-ctx.Done():
		return egress.Report{}, ctx.Err()
	}
	f.runs.Add(1)
	rep := egress.Report{}
	for d, s := range st {
		rep.Updates = append(rep.Updates, egress.UpdateRisk{Digest: d, State: s})
	}
	return rep, nil
}

const (
	digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func risk(t *testing.T, c *RiskCache, digest string, budget time.Duration) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), budget)
	defer cancel()
	f, err := c.Risk(ctx, digest)
	return f.RiskState, err
}

// Another replica announces a quarantine (ChangeRisk): the update is
// answered only from an analysis started after the announcement (the
// caller waits for it within half its budget, else fails closed), while
// other updates are answered at once from the last analysis; an
// announcement the current analysis already agrees with costs nothing.
func TestRiskCacheExpect(t *testing.T) {
	f := &fleetStates{d: 150 * time.Millisecond, state: map[string]string{digestA: evidence.RiskClean, digestB: evidence.RiskClean}}
	c, err := NewRiskCache(f.analyze, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := risk(t, c, digestA, 5*time.Second); err != nil || s != evidence.RiskClean {
		t.Fatalf("first answer: %s %v", s, err)
	}
	// The telemetry that quarantines A is stored (by another replica):
	// without an announcement, A stays clean here for the TTL.
	f.set(digestA, evidence.RiskQuarantined)
	if s, _ := risk(t, c, digestA, 5*time.Second); s != evidence.RiskClean {
		t.Fatalf("before the announcement: %s, want the cached clean", s)
	}
	c.expect(digestA, evidence.RiskQuarantined)
	// B is answered at once from the last analysis (it is not waited for).
	start := time.Now()
	if s, err := risk(t, c, digestB, 5*time.Second); err != nil || s != evidence.RiskClean || time.Since(start) > 100*time.Millisecond {
		t.Fatalf("B after A's announcement: %s %v in %s", s, err, time.Since(start))
	}
	// A budget too short for the analysis: fail closed.
	if _, err := risk(t, c, digestA, 100*time.Millisecond); !errors.Is(err, ErrFleetStale) {
		t.Fatalf("A with a 100 ms budget: %v, want ErrFleetStale", err)
	}
	// Enough budget: the fresh analysis, quarantined.
	if s, err := risk(t, c, digestA, 5*time.Second); err != nil || s != evidence.RiskQuarantined {
		t.Fatalf("A after the announcement: %s %v", s, err)
	}
	// Announced again: the analysis already says so; nothing starts.
	runs := f.runs.Load()
	c.expect(digestA, evidence.RiskQuarantined)
	if s, err := risk(t, c, digestA, 5*time.Second); err != nil || s != evidence.RiskQuarantined {
		t.Fatalf("A announced twice: %s %v", s, err)
	}
	time.Sleep(300 * time.Millisecond)
	if f.runs.Load() != runs {
		t.Fatalf("an announcement the analysis agrees with started %d analyses", f.runs.Load()-runs)
	}
}

// This cache's analyses announce the updates whose state they changed
// (every one not clean, for the first), before Sync returns.
func TestRiskCacheAnnouncesChanges(t *testing.T) {
	f := &fleetStates{d: 10 * time.Millisecond, state: map[string]string{digestA: evidence.RiskSuspicious, digestB: evidence.RiskClean}}
	c, err := NewRiskCache(f.analyze, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []map[string]string
	c.changed = func(m map[string]string) {
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
	}
	syncNow := func() []map[string]string {
		t.Helper()
		c.Invalidate()
		if _, err := c.Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		out := got
		got = nil
		return out
	}
	if g := syncNow(); len(g) != 1 || !maps.Equal(g[0], map[string]string{digestA: evidence.RiskSuspicious}) {
		t.Fatalf("first analysis announced %v", g)
	}
	if g := syncNow(); len(g) != 0 {
		t.Fatalf("nothing changed, announced %v", g)
	}
	f.set(digestA, evidence.RiskQuarantined)
	f.set(digestB, evidence.RiskSuspicious)
	if g := syncNow(); len(g) != 1 || !maps.Equal(g[0], map[string]string{digestA: evidence.RiskQuarantined, digestB: evidence.RiskSuspicious}) {
		t.Fatalf("two changes announced %v", g)
	}
	f.mu.Lock()
	delete(f.state, digestA) // no longer installed anywhere: clean
	f.mu.Unlock()
	if g := syncNow(); len(g) != 1 || !maps.Equal(g[0], map[string]string{digestA: evidence.RiskClean}) {
		t.Fatalf("cleared announced %v", g)
	}
}

// While this replica lags behind the others' changes past the bound (its
// change feed is down), a risk is answered only from an analysis started
// within the bound; once it follows again, from the cache.
func TestRiskCacheLagging(t *testing.T) {
	now := time.Now()
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	f := &fleetStates{d: 0, state: map[string]string{digestA: evidence.RiskClean}}
	c, err := NewRiskCache(f.analyze, time.Hour, func() time.Time { return time.Unix(0, clock.Load()) })
	if err != nil {
		t.Fatal(err)
	}
	var lagging atomic.Bool
	c.lagging, c.lagBound = lagging.Load, 2*time.Second
	if _, err := risk(t, c, digestA, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	f.set(digestA, evidence.RiskQuarantined) // stored elsewhere; the announcement is lost
	clock.Add(int64(3 * time.Second))
	if s, _ := risk(t, c, digestA, 5*time.Second); s != evidence.RiskClean {
		t.Fatalf("following (not lagging): %s, want the cached clean", s)
	}
	lagging.Store(true)
	if s, err := risk(t, c, digestA, 5*time.Second); err != nil || s != evidence.RiskQuarantined {
		t.Fatalf("lagging: %s %v, want a fresh analysis", s, err)
	}
	runs := f.runs.Load()
	clock.Add(int64(time.Second)) // within the bound of that analysis
	if s, err := risk(t, c, digestA, 5*time.Second); err != nil || s != evidence.RiskQuarantined || f.runs.Load() != runs {
		t.Fatalf("lagging, analysis 1 s old: %s %v, %d more analyses", s, err, f.runs.Load()-runs)
	}
}
