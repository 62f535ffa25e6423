package gate

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wardgate/wardgate/store"
)

// DefaultReplicaBound is how far behind the other replicas' changes a
// replica may be and still answer from its caches (see Pipeline.Fresh).
const DefaultReplicaBound = 2 * time.Second

// replicas follows the store's change feed (replicas on one PostgreSQL):
// what another process commits is dropped from this one's caches (the
// fleet risk, the kept evaluations and the decision memo, the rollout
// controller's ring state, the rollout's view of the installations (read
// again), and what OnChange hooks hold: the server's token
// cache, the trust configuration). Each ChangeSync moves synced on: every
// change committed before it has been applied. While synced is older
// than the bound (the feed is disconnected, or lags), the caches are not
// trusted: see Pipeline.Fresh.
type replicas struct {
	feed   store.ChangeFeed
	bound  time.Duration
	logger *slog.Logger
	now    func() time.Time

	synced atomic.Int64 // Unix ns of the last sync applied; 0: none yet

	mu    sync.Mutex
	hooks []func(store.Change)

	changes, resets, risks atomic.Uint64
	publishFailures        atomic.Uint64
}

// ReplicaStats are counters for the server's metrics.
type ReplicaStats struct {
	// Lag is how far behind the other replicas' commits this replica may
	// be: the age of the last sync (the time since it started following
	// when there has been none).
	Lag time.Duration
	// Bound is the most Lag may be for the caches to be used.
	Bound time.Duration
	// Changes applied (other replicas' writes), Resets (the feed
	// reconnected: every cache dropped), PublishFailures (risk changes
	// and trust reloads this replica could not announce).
	Changes, Resets, PublishFailures uint64
}

// follow applies the feed's changes until the channel closes.
func (p *Pipeline) follow(ch <-chan store.Change) {
	for c := range ch {
		p.apply(c)
	}
}

// apply drops what c makes stale.
func (p *Pipeline) apply(c store.Change) {
	r := p.rep
	switch c.Kind {
	case store.ChangeSync:
		if t, err := time.Parse(time.RFC3339Nano, c.Value); err == nil {
			r.synced.Store(t.UnixNano())
		}
		return
	case store.ChangeReset:
		r.resets.Add(1)
		p.logger.Info("replica change feed (re)connected: caches dropped", "why", c.Value)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := p.records.reload(ctx); err != nil {
			p.logger.Error("replica change feed: could not reread the kept evaluations; each is read when asked for", "err", err)
		}
		cancel()
		p.risk.expectAll()
		if p.ctl != nil {
			p.ctl.Invalidate()
		}
		p.installsStale()
	case store.ChangeTelemetry:
		p.risk.Invalidate()
	case store.ChangeRisk:
		r.risks.Add(1)
		p.risk.expect(c.Key, c.Value)
	case store.ChangeEvaluation:
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := p.records.refresh(ctx, c.Key); err != nil {
			p.logger.Warn("replica change feed: could not reread an evaluation; it is read when asked for", "digest", c.Key, "err", err)
		}
		cancel()
	case store.ChangeLog:
		if p.ctl != nil {
			p.ctl.Invalidate(c.Key)
		}
	case store.ChangeInstallation:
		p.installsStale()
	}
	r.changes.Add(1)
	r.mu.Lock()
	hooks := r.hooks
	r.mu.Unlock()
	for _, h := range hooks {
		h(c)
	}
}

// installsStale has the rollout's view of the installations read again
// (rolloutCache.stale): another process recorded some, or changes may have
// been missed.
func (p *Pipeline) installsStale() {
	if g := p.gate.Load(); g != nil && g.rolloutCache != nil {
		g.rolloutCache.stale()
	}
}

// OnChange calls fn with every change another replica makes (and each
// ChangeReset), after the pipeline's own caches have dropped what it makes
// stale: the server drops its token cache, and reloads its trust
// configuration when another replica reloaded a different one. Nothing is
// called without a change feed (the SQLite store).
func (p *Pipeline) OnChange(fn func(store.Change)) {
	if p.rep == nil {
		return
	}
	p.rep.mu.Lock()
	p.rep.hooks = append(p.rep.hooks, fn)
	p.rep.mu.Unlock()
}

// Fresh reports whether this process's caches may answer: always without
// a change feed (one process writes the store; others are covered by the
// caches' TTLs as before), and with one while every change another
// replica committed more than the bound ago has been applied. When it is
// false (the feed is disconnected or lags), the kept evaluations are read
// from the store, the decision memo is not used, the rollout state is
// read from the log, the server's token cache is not used, and a fleet
// risk must come from an analysis started within the bound.
func (p *Pipeline) Fresh() bool {
	if p.rep == nil {
		return true
	}
	return p.rep.lag() <= p.rep.bound
}

func (r *replicas) lag() time.Duration {
	s := r.synced.Load()
	if s == 0 {
		return time.Duration(1<<63 - 1)
	}
	return r.now().Sub(time.Unix(0, s))
}

// ReplicaStats returns the change feed's counters, and false without a
// feed.
func (p *Pipeline) ReplicaStats() (ReplicaStats, bool) {
	r := p.rep
	if r == nil {
		return ReplicaStats{}, false
	}
	s := ReplicaStats{Lag: r.lag(), Bound: r.bound, Changes: r.changes.Load(), Resets: r.resets.Load(), PublishFailures: r.publishFailures.Load()}
	if r.synced.Load() == 0 {
		s.Lag = r.now().Sub(p.started)
	}
	return s, true
}

// publishWait bounds the announcements of one trust reload or one
// analysis (the telemetry batch that caused it waits for them).
const publishWait = 5 * time.Second

// publish announces cs to the other replicas, within publishWait; a
// failure is logged and counted (with the announcements not sent): the
// others then learn of a risk from the telemetry change (their own
// analysis), of a trust reload not at all (reload them too).
func (p *Pipeline) publish(cs ...store.Change) {
	if p.rep == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), publishWait)
	defer cancel()
	for i, c := range cs {
		if err := p.rep.feed.Publish(ctx, c); err != nil {
			p.rep.publishFailures.Add(uint64(len(cs) - i))
			p.logger.Error("could not announce a change to the other replicas", "kind", c.Kind, "key", c.Key, "not_sent", len(cs)-i, "err", err)
			return
		}
	}
}

// publishRisks announces the updates whose risk state an analysis changed.
func (p *Pipeline) publishRisks(changed map[string]string) {
	cs := make([]store.Change, 0, len(changed))
	for d, st := range changed {
		cs = append(cs, store.Change{Kind: store.ChangeRisk, Key: d, Value: st})
	}
	p.publish(cs...)
}
