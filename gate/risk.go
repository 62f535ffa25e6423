package gate

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/evidence"
)

// Analyze runs the fleet detections over everything stored, e.g.
//
//	func(ctx context.Context) (egress.Report, error) { return egress.AnalyzeStore(ctx, db, inv, cfg) }
type Analyze func(ctx context.Context) (egress.Report, error)

// ErrFleetStale: no fleet analysis recent enough to answer from could be
// had within the caller's budget (none yet, or the last complete one is
// past the staleness bound). Admissions fail closed with it.
var ErrFleetStale = errors.New("gate: no fleet analysis within its staleness bound")

// Default RiskCache settings (see WithFreshWait and WithMaxStaleness).
const (
	DefaultFreshWait    = 0
	DefaultMaxStaleness = 30 * time.Second
)

// RiskCache is a FleetRisk that answers every update's risk from the last
// complete analysis of the fleet telemetry, so that callers (admissions)
// never wait on an analysis longer than their budget.
//
// One analysis runs at a time. Invalidate (called whenever telemetry is
// stored) starts a new one; so does a call when the last analysis is older
// than the TTL (telemetry stored by another process). Meanwhile:
//
//   - a caller is answered from the previous analysis at once, or, with a
//     fresh wait (WithFreshWait; none by default), waits for the analysis
//     that covers an invalidation for at most the fresh wait after the
//     invalidation, only if that analysis can be done by then (judged by
//     how long the last one took), and never longer than half its own
//     remaining budget;
//   - the previous analysis may be used while what it misses is at most the
//     staleness bound old (default 30 s, at least the TTL): the time since
//     the first invalidation it does not cover, or since it passed the TTL.
//     Past the bound, or with no complete analysis yet, a caller waits
//     (within half its remaining budget) and otherwise fails with
//     ErrFleetStale;
//   - when the latest analysis failed (the store cannot be read), callers
//     fail with its error until one succeeds: a retry starts with each;
//   - Sync waits for an analysis that covers every invalidation so far. The
//     server answers a telemetry batch only after Sync: a quarantine is in
//     force for every admission that starts after its batch is answered.
//
// A sensor that posts constantly thus keeps analyses running back to back,
// but admissions are answered at once from the latest one.
type RiskCache struct {
	analyze   Analyze
	ttl       time.Duration
	timeout   time.Duration
	freshWait time.Duration
	maxStale  time.Duration
	now       func() time.Time

	mu         sync.Mutex
	gen        uint64        // invalidations so far
	cur        *riskSnapshot // the last complete analysis
	failed     error         // the last analysis failed (and none has succeeded since)
	dirtySince time.Time     // the first invalidation cur does not cover; zero when none
	call       *riskCall     // the analysis running, if any
	lastDur    time.Duration // how long the last analysis took
	stats      RiskStats

	// Replicas (Pipeline): pending holds the updates another replica
	// announced a new risk state for (ChangeRisk), each with the time of
	// the announcement: Risk answers them only from an analysis started
	// after it. pendingAll does so for every update (the change feed
	// reconnected). lagging, when it says so, makes every answer need an
	// analysis started within lagBound. changed is told the updates whose
	// state an analysis changed, before the callers waiting on it (Sync)
	// are answered.
	pending    map[string]time.Time
	pendingAll time.Time
	lagging    func() bool
	lagBound   time.Duration
	changed    func(map[string]string)
}

type riskSnapshot struct {
	gen    uint64
	at     time.Time // when the analysis started: it reflects what was stored then
	report egress.Report
	fleets map[string]evidence.Fleet
}

type riskCall struct {
	gen     uint64
	started time.Time
	done    chan struct{}
}

// RiskStats are counters for the server's metrics.
type RiskStats struct {
	Analyses     uint64        // analyses run
	Failures     uint64        // analyses that failed
	StaleAnswers uint64        // answers from an analysis that misses an invalidation or is past the TTL
	WaitTimeouts uint64        // callers that gave up waiting for an analysis (fresh wait over, or budget)
	Refused      uint64        // callers refused: nothing within the staleness bound in their budget
	LastDuration time.Duration // the last analysis's duration
	Age          time.Duration // how old the last complete analysis is (0 without one)
}

// RiskOption configures NewRiskCache.
type RiskOption func(*RiskCache) error

// WithFreshWait sets how long after an invalidation a caller may wait for
// the analysis that covers it before it is answered from the previous one
// (default none: Sync, not the callers, waits for the telemetry's
// analysis).
func WithFreshWait(d time.Duration) RiskOption {
	return func(c *RiskCache) error {
		if d < 0 {
			return fmt.Errorf("gate: fresh wait %s negative", d)
		}
		c.freshWait = d
		return nil
	}
}

// WithMaxStaleness sets the staleness bound: the most telemetry time an
// answer's analysis may miss. It must be at least the TTL.
func WithMaxStaleness(d time.Duration) RiskOption {
	return func(c *RiskCache) error {
		if d <= 0 {
			return fmt.Errorf("gate: staleness bound %s not positive", d)
		}
		c.maxStale = d
		return nil
	}
}

// NewRiskCache answers from analyze's reports; ttl is the age after which
// an analysis is refreshed in the background. now is the clock (time.Now
// when nil).
func NewRiskCache(analyze Analyze, ttl time.Duration, now func() time.Time, opts ...RiskOption) (*RiskCache, error) {
	if analyze == nil {
		return nil, errors.New("gate: nil fleet analysis")
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("gate: risk cache TTL %s not positive", ttl)
	}
	if now == nil {
		now = time.Now
	}
	c := &RiskCache{analyze: analyze, ttl: ttl, timeout: time.Minute, freshWait: DefaultFreshWait, maxStale: max(DefaultMaxStaleness, ttl), now: now}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if c.maxStale < ttl {
		return nil, fmt.Errorf("gate: staleness bound %s below the TTL %s", c.maxStale, ttl)
	}
	return c, nil
}

// Invalidate says the telemetry changed: an analysis that covers the
// change starts now (after the one running, if any).
func (c *RiskCache) Invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.failed = nil // the next analysis decides
	if c.dirtySince.IsZero() {
		c.dirtySince = c.now()
	}
	c.ensure()
}

// Generation counts the invalidations.
func (c *RiskCache) Generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// Refresh starts an analysis when the last one is past the TTL (or there
// is none) and none is running; it does not wait. A server calls it now
// and then so that an idle gate's first admission finds a recent analysis.
func (c *RiskCache) Refresh() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == nil || c.cur.gen < c.gen || c.now().Sub(c.cur.at) >= c.ttl {
		c.ensure()
	}
}

// Stats returns the counters.
func (c *RiskCache) Stats() RiskStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.LastDuration = c.lastDur
	if c.cur != nil {
		s.Age = c.now().Sub(c.cur.at)
	}
	return s
}

// Risk implements FleetRisk. An update no device is recorded as having
// installed is clean.
func (c *RiskCache) Risk(ctx context.Context, digest string) (evidence.Fleet, error) {
	var s *riskSnapshot
	var err error
	if need := c.need(digest); !need.IsZero() {
		s, err = c.snapshotSince(ctx, need, digest)
	} else {
		s, err = c.snapshot(ctx)
	}
	if err != nil {
		return evidence.Fleet{}, err
	}
	if f, ok := s.fleets[digest]; ok {
		return f, nil
	}
	return evidence.Fleet{RiskState: evidence.RiskClean}, nil
}

// Report returns the analysis Risk would answer from. The caller must not
// modify it.
func (c *RiskCache) Report(ctx context.Context) (egress.Report, error) {
	s, err := c.snapshot(ctx)
	if err != nil {
		return egress.Report{}, err
	}
	return s.report, nil
}

// Sync waits for an analysis that covers every invalidation made before
// the call, and returns it.
func (c *RiskCache) Sync(ctx context.Context) (egress.Report, error) {
	c.mu.Lock()
	target := c.gen
	for {
		if c.cur != nil && c.cur.gen >= target {
			r := c.cur.report
			c.mu.Unlock()
			return r, nil
		}
		if c.failed != nil && c.call == nil {
			err := c.failed
			c.mu.Unlock()
			return egress.Report{}, err
		}
		call := c.ensure()
		c.mu.Unlock()
		select {
		case <-call.done:
		case <-ctx.Done():
			return egress.Report{}, ctx.Err()
		}
		c.mu.Lock()
	}
}

// ensure returns the analysis running, starting one for the current
// generation if none is; the caller holds mu.
func (c *RiskCache) ensure() *riskCall {
	if c.call == nil {
		c.call = &riskCall{gen: c.gen, started: c.now(), done: make(chan struct{})}
		go c.run(c.call)
	}
	return c.call
}

// run analyses, not bound to any one caller's context; when the telemetry
// changed meanwhile, the next analysis starts at once.
func (c *RiskCache) run(call *riskCall) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	rep, err := c.analyze(ctx)
	cancel()
	var snap *riskSnapshot
	if err == nil {
		snap = &riskSnapshot{gen: call.gen, at: call.started, report: rep, fleets: make(map[string]evidence.Fleet, len(rep.Updates))}
		for _, u := range rep.Updates {
			f := rep.Fleet(u.Digest)
			if f.RiskState == "" {
				f.RiskState = evidence.RiskClean
			}
			snap.fleets[u.Digest] = f
		}
	}
	c.mu.Lock()
	c.lastDur = c.now().Sub(call.started)
	c.stats.Analyses++
	c.call = nil
	var changed map[string]string
	if err != nil {
		c.stats.Failures++
		if call.gen == c.gen {
			c.failed = fmt.Errorf("fleet analysis: %w", err)
		}
	} else {
		if c.changed != nil {
			changed = riskChanges(c.cur, snap)
		}
		for d, t := range c.pending {
			if !snap.at.Before(t) {
				delete(c.pending, d)
			}
		}
		if !snap.at.Before(c.pendingAll) {
			c.pendingAll = time.Time{}
		}
		c.cur = snap
		if call.gen == c.gen {
			c.failed = nil
			c.dirtySince = time.Time{}
		} else {
			c.dirtySince = call.started // the invalidations it misses came after it started
		}
	}
	if call.gen < c.gen {
		c.ensure()
	}
	c.mu.Unlock()
	if len(changed) > 0 {
		c.changed(changed) // before Sync's callers are answered
	}
	close(call.done)
}

// riskChanges returns the updates whose risk state differs between two
// analyses (every one not clean when there was no earlier one).
func riskChanges(old, cur *riskSnapshot) map[string]string {
	out := map[string]string{}
	state := func(s *riskSnapshot, d string) string {
		if s == nil {
			return evidence.RiskClean
		}
		if f, ok := s.fleets[d]; ok {
			return f.RiskState
		}
		return evidence.RiskClean
	}
	for d := range cur.fleets {
		if st := state(cur, d); st != state(old, d) {
			out[d] = st
		}
	}
	if old != nil {
		for d := range old.fleets {
			if _, ok := cur.fleets[d]; !ok && state(old, d) != evidence.RiskClean {
				out[d] = evidence.RiskClean
			}
		}
	}
	return out
}

// expect says another replica found digest's risk state is now state:
// unless the current analysis says so already, digest is answered only
// from an analysis started from now on, which starts at once.
func (c *RiskCache) expect(digest, state string) {
	c.mu.Lock()
	if c.cur != nil && c.failed == nil {
		have := evidence.RiskClean
		if f, ok := c.cur.fleets[digest]; ok {
			have = f.RiskState
		}
		if have == state {
			c.mu.Unlock()
			return
		}
	}
	if c.pending == nil {
		c.pending = map[string]time.Time{}
	}
	c.pending[digest] = c.now()
	c.mu.Unlock()
	c.Invalidate()
}

// expectAll makes every update answered only from an analysis started
// from now on (changes may have been missed), and starts one.
func (c *RiskCache) expectAll() {
	c.mu.Lock()
	c.pendingAll = c.now()
	c.mu.Unlock()
	c.Invalidate()
}

// need is the earliest start of an analysis that may answer for digest;
// zero when the usual rules apply.
func (c *RiskCache) need(digest string) time.Time {
	var lagging bool
	if c.lagging != nil {
		lagging = c.lagging()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	need := c.pendingAll
	if t, ok := c.pending[digest]; ok && t.After(need) {
		need = t
	}
	if lagging {
		if t := c.now().Add(-c.lagBound); t.After(need) {
			need = t
		}
	}
	return need
}

// snapshotSince returns an analysis started at or after need, waiting
// (within half the caller's remaining budget) for one to be done, and
// fails with ErrFleetStale when none can be had.
func (c *RiskCache) snapshotSince(ctx context.Context, need time.Time, digest string) (*riskSnapshot, error) {
	var limit <-chan time.Time
	if dl, ok := ctx.Deadline(); ok {
		t := time.NewTimer(time.Until(dl) / 2)
		defer t.Stop()
		limit = t.C
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if s := c.cur; s != nil && c.failed == nil && !s.at.Before(need) {
			return s, nil
		}
		// An analysis that started before need will not do: wait for it,
		// and the next one starts.
		call := c.ensure()
		c.mu.Unlock()
		select {
		case <-call.done:
			c.mu.Lock()
			if c.failed != nil && !call.started.Before(need) {
				c.stats.Refused++
				return nil, c.failed
			}
			continue
		case <-limit:
		case <-ctx.Done():
		}
		c.mu.Lock()
		c.stats.WaitTimeouts++
		c.stats.Refused++
		return nil, fmt.Errorf("%w: %s needs an analysis started after %s (another replica changed its risk, or this replica lost the others' changes); none was done in time",
			ErrFleetStale, digest, need.UTC().Format(time.RFC3339Nano))
	}
}

// snapshot is the analysis a caller is answered from (see RiskCache).
func (c *RiskCache) snapshot(ctx context.Context) (*riskSnapshot, error) {
	// The most a caller may wait on analyses: half its remaining budget.
	var limit <-chan time.Time
	if dl, ok := ctx.Deadline(); ok {
		t := time.NewTimer(time.Until(dl) / 2)
		defer t.Stop()
		limit = t.C
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		now := c.now()
		s := c.cur
		var staleSince time.Time
		if s != nil {
			if s.gen < c.gen {
				staleSince = c.dirtySince
			}
			if exp := s.at.Add(c.ttl); !now.Before(exp) && (staleSince.IsZero() || exp.Before(staleSince)) {
				staleSince = exp
			}
		}
		if s != nil && c.failed == nil && staleSince.IsZero() {
			return s, nil // fresh
		}
		call := c.ensure()
		if c.failed != nil {
			// The latest analysis failed: fail closed, and let the one just
			// started (a retry) decide for the callers that come next.
			c.stats.Refused++
			return nil, c.failed
		}
		usable := s != nil && now.Sub(staleSince) <= c.maxStale
		var wait <-chan time.Time
		switch {
		case !usable:
			wait = limit // wait within the budget, or fail
		case s.gen < c.gen:
			// Telemetry changed: wait for the analysis that covers it if it
			// can be done within the fresh wait.
			until := c.dirtySince.Add(c.freshWait)
			if !now.Before(until) || call.gen < c.gen || (c.lastDur > 0 && call.started.Add(c.lastDur).After(until)) {
				c.stats.StaleAnswers++
				return s, nil
			}
			t := time.NewTimer(until.Sub(now))
			defer t.Stop()
			wait = t.C
		default:
			c.stats.StaleAnswers++ // past the TTL: refreshed in the background
			return s, nil
		}
		c.mu.Unlock()
		timedOut := false
		select {
		case <-call.done:
		case <-wait:
			timedOut = true
		case <-limit:
			timedOut = true
		case <-ctx.Done():
			timedOut = true
		}
		c.mu.Lock()
		if !timedOut {
			continue
		}
		c.stats.WaitTimeouts++
		if usable {
			c.stats.StaleAnswers++
			return s, nil
		}
		c.stats.Refused++
		switch {
		case c.failed != nil:
			return nil, c.failed
		case s == nil:
			return nil, fmt.Errorf("%w: the first analysis is not done", ErrFleetStale)
		}
		return nil, fmt.Errorf("%w: the last complete analysis misses %s of telemetry, the bound is %s", ErrFleetStale, now.Sub(staleSince).Round(time.Millisecond), c.maxStale)
	}
}
