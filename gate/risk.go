package gate

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/evidence"
)

// Analyze runs the fleet detections over everything stored, e.g.
//
//	func(ctx context.Context) (egress.Report, error) { return egress.AnalyzeStore(ctx, db, inv, cfg) }
type Analyze func(ctx context.Context) (egress.Report, error)

// RiskCache is a FleetRisk that analyses the fleet telemetry once and
// answers every update's risk from that analysis until Invalidate is
// called (the caller does so whenever it stores telemetry) or the TTL
// passes (telemetry stored by another process). Once the TTL has passed,
// the next call starts a new analysis and, until it is done (for at most
// another TTL), callers are answered from the previous one instead of
// waiting: the hot admission path never stalls on a periodic refresh. An
// analysis in flight when Invalidate is called is not used by callers that
// arrive afterwards: a quarantine takes effect on the next admission, never
// served stale from the cache. Concurrent misses share one analysis.
type RiskCache struct {
	analyze Analyze
	ttl     time.Duration
	timeout time.Duration
	now     func() time.Time

	gen atomic.Uint64
	cur atomic.Pointer[riskSnapshot]

	mu   sync.Mutex
	call *riskCall
}

type riskSnapshot struct {
	gen    uint64
	at     time.Time
	report egress.Report
	fleets map[string]evidence.Fleet
}

type riskCall struct {
	gen  uint64
	done chan struct{}
	snap *riskSnapshot
	err  error
}

// NewRiskCache caches analyze's report for at most ttl. now is the clock
// (time.Now when nil).
func NewRiskCache(analyze Analyze, ttl time.Duration, now func() time.Time) (*RiskCache, error) {
	if analyze == nil {
		return nil, errors.New("gate: nil fleet analysis")
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("gate: risk cache TTL %s not positive", ttl)
	}
	if now == nil {
		now = time.Now
	}
	return &RiskCache{analyze: analyze, ttl: ttl, timeout: time.Minute, now: now}, nil
}

// Invalidate forgets the cached analysis: the next call analyses again.
func (c *RiskCache) Invalidate() {
	c.mu.Lock()
	c.gen.Add(1)
	c.cur.Store(nil)
	c.mu.Unlock()
}

// Generation counts the invalidations.
func (c *RiskCache) Generation() uint64 { return c.gen.Load() }

// Risk implements FleetRisk. An update no device is recorded as having
// installed is clean.
func (c *RiskCache) Risk(ctx context.Context, digest string) (evidence.Fleet, error) {
	s, err := c.snapshot(ctx)
	if err != nil {
		return evidence.Fleet{}, err
	}
	if f, ok := s.fleets[digest]; ok {
		return f, nil
	}
	return evidence.Fleet{RiskState: evidence.RiskClean}, nil
}

// Report returns the current analysis. The caller must not modify it.
func (c *RiskCache) Report(ctx context.Context) (egress.Report, error) {
	s, err := c.snapshot(ctx)
	if err != nil {
		return egress.Report{}, err
	}
	return s.report, nil
}

func (c *RiskCache) snapshot(ctx context.Context) (*riskSnapshot, error) {
	if s := c.cur.Load(); s != nil && s.gen == c.gen.Load() {
		switch age := c.now().Sub(s.at); {
		case age < c.ttl:
			return s, nil
		case age < 2*c.ttl:
			// Past the TTL but not invalidated: answer from it while one
			// analysis runs in the background, rather than hold every
			// admission until it is done.
			c.mu.Lock()
			c.start(s.gen)
			c.mu.Unlock()
			return s, nil
		}
	}
	c.mu.Lock()
	gen := c.gen.Load()
	if s := c.cur.Load(); s != nil && s.gen == gen && c.now().Sub(s.at) < c.ttl {
		c.mu.Unlock()
		return s, nil
	}
	call := c.start(gen)
	c.mu.Unlock()
	select {
	case <-call.done:
		return call.snap, call.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// start returns the analysis in flight for generation gen, starting one if
// there is none; the caller holds mu.
func (c *RiskCache) start(gen uint64) *riskCall {
	call := c.call
	if call == nil || call.gen != gen {
		call = &riskCall{gen: gen, done: make(chan struct{})}
		c.call = call
		go c.run(call)
	}
	return call
}

// run analyses on behalf of every caller waiting on call; it is not bound
// to any one caller's context.
func (c *RiskCache) run(call *riskCall) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	at := c.now()
	rep, err := c.analyze(ctx)
	if err != nil {
		call.err = fmt.Errorf("fleet analysis: %w", err)
	} else {
		s := &riskSnapshot{gen: call.gen, at: at, report: rep, fleets: make(map[string]evidence.Fleet, len(rep.Updates))}
		for _, u := range rep.Updates {
			f := rep.Fleet(u.Digest)
			if f.RiskState == "" {
				f.RiskState = evidence.RiskClean
			}
			s.fleets[u.Digest] = f
		}
		call.snap = s
	}
	c.mu.Lock()
	if err == nil && call.gen == c.gen.Load() {
		c.cur.Store(call.snap)
	}
	if c.call == call {
		c.call = nil
	}
	c.mu.Unlock()
	close(call.done)
}
