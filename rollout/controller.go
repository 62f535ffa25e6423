package rollout

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/wardgate/wardgate/trust"
)

// Journal keeps the changes of every rollout: the verdict log (LogJournal)
// or, in tests, memory.
type Journal interface {
	// Changes returns the changes recorded for the update, in order.
	Changes(ctx context.Context, digest string) ([]Change, error)
	// Append records one change durably.
	Append(ctx context.Context, c Change) error
	// LastTime is the time of the journal's last entry (zero when empty).
	LastTime(ctx context.Context) (time.Time, error)
}

// Controller decides rollouts for the gate: it rebuilds each rollout's
// state from the journal, decides at the Clock's time and records every
// change in the journal before answering. It keeps the changes it has
// read or written in memory (per update digest); the journal stays the
// record. Safe for concurrent use: changes to one update are made one at
// a time, and a change already recorded by a concurrent caller is not
// recorded twice.
type Controller struct {
	key     []byte
	journal Journal
	clock   *Clock

	mu      sync.Mutex
	changes map[string][]Change // digest -> changes, all classes
}

// NewController makes a controller whose memberships are keyed by key.
func NewController(key []byte, j Journal, clock *Clock) (*Controller, error) {
	switch {
	case len(key) < 16:
		return nil, errors.New("rollout: membership key shorter than 16 bytes")
	case j == nil:
		return nil, errors.New("rollout: nil journal")
	case clock == nil:
		return nil, errors.New("rollout: nil clock")
	}
	return &Controller{key: key, journal: j, clock: clock, changes: map[string][]Change{}}, nil
}

// Plan builds the plan of one update in one class.
func (c *Controller) Plan(digest, class string, rings []trust.Ring, devs []Device) (*Plan, error) {
	return NewPlan(c.key, digest, class, rings, devs)
}

// load returns the update's changes of p's class; the caller holds mu.
func (c *Controller) load(ctx context.Context, digest string) ([]Change, error) {
	cs, ok := c.changes[digest]
	if !ok {
		var err error
		if cs, err = c.journal.Changes(ctx, digest); err != nil {
			return nil, fmt.Errorf("rollout changes of %s: %w", digest, err)
		}
		c.changes[digest] = cs
	}
	return cs, nil
}

func ofClass(cs []Change, class string) []Change {
	out := make([]Change, 0, len(cs))
	for _, ch := range cs {
		if ch.Class == class {
			out = append(out, ch)
		}
	}
	return out
}

// Now is the decision time.
func (c *Controller) Now(ctx context.Context) (time.Time, error) {
	last, err := c.journal.LastTime(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("rollout clock: %w", err)
	}
	return c.clock.Now(last), nil
}

// Decide decides the rollout of p on the evidence o, recording the change
// it makes, if any, before returning.
func (c *Controller) Decide(ctx context.Context, p *Plan, o Observed) (Decision, error) {
	now, err := c.Now(ctx)
	if err != nil {
		return Decision{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cs, err := c.load(ctx, p.Digest)
	if err != nil {
		return Decision{}, err
	}
	d := Decide(p, Replay(p, ofClass(cs, p.Class)), o, now)
	if d.Change == nil {
		return d, nil
	}
	if err := c.journal.Append(ctx, *d.Change); err != nil {
		return Decision{}, fmt.Errorf("record rollout change: %w", err)
	}
	c.changes[p.Digest] = append(slices.Clip(cs), *d.Change)
	return d, nil
}

// State returns the rollout's state and the decision Decide would make
// now, without recording anything.
func (c *Controller) State(ctx context.Context, p *Plan, o Observed) (Decision, []Change, error) {
	now, err := c.Now(ctx)
	if err != nil {
		return Decision{}, nil, err
	}
	c.mu.Lock()
	cs, err := c.load(ctx, p.Digest)
	c.mu.Unlock()
	if err != nil {
		return Decision{}, nil, err
	}
	cs = ofClass(cs, p.Class)
	return Decide(p, Replay(p, cs), o, now), cs, nil
}

// Admin records an admin's action (see Admin) on the rollout of p.
func (c *Controller) Admin(ctx context.Context, p *Plan, a Action, actor, reason string, o Observed) (Change, error) {
	now, err := c.Now(ctx)
	if err != nil {
		return Change{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cs, err := c.load(ctx, p.Digest)
	if err != nil {
		return Change{}, err
	}
	ch, err := Admin(p, Replay(p, ofClass(cs, p.Class)), a, actor, reason, o, now)
	if err != nil {
		return Change{}, err
	}
	if err := c.journal.Append(ctx, ch); err != nil {
		return Change{}, fmt.Errorf("record rollout change: %w", err)
	}
	c.changes[p.Digest] = append(slices.Clip(cs), ch)
	return ch, nil
}

// Invalidate drops the changes kept in memory for the digests (for every
// update when none is given): another process (a replica on the same
// store) recorded a change, and the next decision reads the journal again.
func (c *Controller) Invalidate(digests ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(digests) == 0 {
		clear(c.changes)
		return
	}
	for _, d := range digests {
		delete(c.changes, d)
	}
}
