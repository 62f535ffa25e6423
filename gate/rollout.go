package gate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/evidence"
	"github.com/wardgate/wardgate/policy"
	"github.com/wardgate/wardgate/rollout"
	"github.com/wardgate/wardgate/trust"
)

// Rollout is what the gate needs for rollout rings (trust.yaml rollout:,
// docs/rollout.md): the controller, and where the evidence comes from.
type Rollout struct {
	Controller *rollout.Controller
	// Inventory returns the fleet inventory (nil when none is known: a
	// product with rings then fails closed).
	Inventory func() *egress.Inventory
	// Installations lists every recorded installation.
	Installations func(ctx context.Context) ([]egress.Installation, error)
	// Report returns the current fleet analysis; its LastSeen is each
	// device's latest telemetry.
	Report func(ctx context.Context) (egress.Report, error)
	// InstallRefresh is how often Installations is read again in full for
	// those recorded by another process (DefaultInstallRefresh when 0);
	// the gate's own admissions are seen at once (rolloutCache).
	InstallRefresh time.Duration
	// Fresh, when set and false, says other replicas' ring changes may be
	// missing (Pipeline.Fresh): the ring state is then read from the log
	// for each decision.
	Fresh func() bool
}

// ErrNoInventory: a product has rollout rings and no inventory is known,
// so no ring can be computed (fail closed).
var ErrNoInventory = errors.New("gate: rollout rings need the fleet inventory")

// WithRollout holds devices outside an update's current rollout ring
// (rollout-hold) for products whose trust configuration has rings.
func WithRollout(r Rollout) Option {
	return func(g *Gate) error {
		if r.Controller == nil || r.Inventory == nil || r.Installations == nil || r.Report == nil {
			return errors.New("gate: rollout needs a controller, inventory, installations and fleet report")
		}
		g.rollout = &r
		g.rolloutCache = newRolloutCache(r.Installations, r.InstallRefresh)
		return nil
	}
}

// RolloutHold is a hold's details, in the admission outcome.
type RolloutHold struct {
	// Ring is the device's ring, Current the ring open now.
	Ring    string `json:"ring"`
	Current string `json:"current"`
	Status  string `json:"status"`
}

// RolloutPlan returns the plan of the update in class, and false when the
// product has no rings.
func (g *Gate) RolloutPlan(a evidence.Artifact, class string) (*rollout.Plan, bool, error) {
	if g.rollout == nil {
		return nil, false, nil
	}
	p, ok := g.trust.Product(a.Vendor, a.Product)
	if !ok || p.Rollout == nil {
		return nil, false, nil
	}
	inv := g.rollout.Inventory()
	if inv == nil {
		return nil, true, fmt.Errorf("%w: %s/%s has rings; add STATE/inventory.json", ErrNoInventory, a.Vendor, a.Product)
	}
	plan, err := g.rolloutCache.plan(inv, a.Digest, class, func() (*rollout.Plan, error) {
		var devs []rollout.Device
		for _, d := range inv.Devices {
			if d.Class == class {
				devs = append(devs, rollout.Device{ID: d.Name, Canary: strings.EqualFold(d.Ring, rollout.CanaryLabel)})
			}
		}
		return g.rollout.Controller.Plan(a.Digest, class, p.Rollout.RingsFor(class), devs)
	})
	return plan, true, err
}

// RolloutObserved gathers the evidence for a plan: installations of the
// update by the class's devices, their latest telemetry, the risk state.
// It copies nothing: the Observed answers device by device from the
// gate's view of the installations and the fleet report (rolloutCache),
// so a decision costs what the ring it looks at holds, not the fleet.
func (g *Gate) RolloutObserved(ctx context.Context, p *rollout.Plan, risk string) (rollout.Observed, error) {
	if err := g.rolloutCache.ensure(ctx); err != nil {
		return rollout.Observed{Risk: risk}, fmt.Errorf("installations: %w", err)
	}
	rep, err := g.rollout.Report(ctx)
	if err != nil {
		return rollout.Observed{Risk: risk}, fmt.Errorf("fleet report: %w", err)
	}
	return rollout.Observed{Risk: risk, View: installView{c: g.rolloutCache, digest: p.Digest, seen: rep.LastSeen}}, nil
}

// rolloutGate decides the rollout of the admitted update for the device's
// class (recording any ring change) and returns the hold for a device
// outside the current ring, nil when it may install.
func (g *Gate) rolloutGate(ctx context.Context, ev evidence.Evidence) (*RolloutHold, time.Time, error) {
	plan, has, err := g.RolloutPlan(ev.Artifact, ev.Device.Class)
	if !has || err != nil {
		return nil, time.Time{}, err
	}
	if g.fleet == nil || ev.Fleet.RiskState == "" {
		return nil, time.Time{}, errors.New("gate: rollout rings need the fleet risk state (an inventory and telemetry store)")
	}
	o, err := g.RolloutObserved(ctx, plan, ev.Fleet.RiskState)
	if err != nil {
		return nil, time.Time{}, err
	}
	if g.rollout.Fresh != nil && !g.rollout.Fresh() {
		g.rollout.Controller.Invalidate(plan.Digest)
	}
	d, err := g.rollout.Controller.Decide(ctx, plan, o)
	if err != nil {
		return nil, time.Time{}, err
	}
	id := ev.Device.ID
	if inv := g.rollout.Inventory(); inv != nil {
		if dev, ok := inv.Device(id); ok {
			id = dev.Name
		}
	}
	ring := plan.RingOf(id)
	if ring <= d.State.Ring && d.State.Status != rollout.Halted {
		return nil, time.Time{}, nil
	}
	return &RolloutHold{Ring: plan.Rings[ring].Name, Current: plan.Rings[d.State.Ring].Name, Status: string(d.State.Status)}, d.RetryAfter, nil
}

// holdDecision turns an allow into the rollout-hold deny.
func holdDecision(d policy.Decision, dev string, h *RolloutHold, retry time.Time) policy.Decision {
	msg := fmt.Sprintf("device %s is in rollout ring %s; the rollout is %s in ring %s", dev, h.Ring, h.Status, h.Current)
	if !retry.IsZero() {
		msg += "; ask again after " + retry.UTC().Format(time.RFC3339)
	}
	d.Allow = false
	d.Violations = []policy.Violation{{Code: policy.CodeRolloutHold, Rule: "rollout", Message: msg, Severity: policy.SeverityLow}}
	return d
}

// ErrNoRollout: the update's product has no rollout rings.
var ErrNoRollout = errors.New("gate: the product has no rollout rings")

// RingStatus is one ring of a rollout.
type RingStatus struct {
	Name  string `json:"name"`
	Share string `json:"share"`
	// Devices are the devices the ring adds, Installed those of them that
	// installed the update.
	Devices   []string `json:"devices"`
	Installed []string `json:"installed"`
	Open      bool     `json:"open"`
}

// RolloutStatus is the rollout of one update in one device class.
type RolloutStatus struct {
	Class  string       `json:"class"`
	Status string       `json:"status"`
	Ring   string       `json:"ring"`
	Rings  []RingStatus `json:"rings"`
	// NextDecision is the earliest time the current ring may widen (nil
	// when it never will).
	NextDecision *time.Time       `json:"nextDecision,omitempty"`
	Evidence     rollout.Evidence `json:"evidence"`
	Changes      []rollout.Change `json:"changes"`
}

func (g *Gate) rolloutEvidence(ctx context.Context, a evidence.Artifact, class string) (*rollout.Plan, rollout.Observed, error) {
	plan, has, err := g.RolloutPlan(a, class)
	switch {
	case err != nil:
		return nil, rollout.Observed{}, err
	case !has:
		return nil, rollout.Observed{}, fmt.Errorf("%w: %s/%s", ErrNoRollout, a.Vendor, a.Product)
	case g.fleet == nil:
		return nil, rollout.Observed{}, errors.New("gate: rollout rings need the fleet risk state")
	}
	f, err := g.fleet.Risk(ctx, a.Digest)
	if err != nil {
		return nil, rollout.Observed{}, fmt.Errorf("fleet risk: %w", err)
	}
	o, err := g.RolloutObserved(ctx, plan, f.RiskState)
	return plan, o, err
}

// RolloutStatus returns the update's rollout in each device class of its
// product (nil when the product has no rings). It records nothing: the
// state is what the next admission would find.
func (g *Gate) RolloutStatus(ctx context.Context, a evidence.Artifact) ([]RolloutStatus, error) {
	p, ok := g.trust.Product(a.Vendor, a.Product)
	if g.rollout == nil || !ok || p.Rollout == nil {
		return nil, nil
	}
	out := []RolloutStatus{}
	for _, class := range p.DeviceClasses {
		plan, o, err := g.rolloutEvidence(ctx, a, class)
		if err != nil {
			return nil, err
		}
		d, cs, err := g.rollout.Controller.State(ctx, plan, o)
		if err != nil {
			return nil, err
		}
		st := RolloutStatus{Class: class, Status: string(d.State.Status), Ring: plan.Rings[d.State.Ring].Name, Evidence: d.Evidence, Changes: cs}
		if st.Changes == nil {
			st.Changes = []rollout.Change{}
		}
		if !d.RetryAfter.IsZero() {
			st.NextDecision = &d.RetryAfter
		}
		for i, r := range plan.Rings {
			rs := RingStatus{Name: r.Name, Share: trust.FormatShare(r.Share), Devices: append([]string{}, plan.Members(i)...), Installed: []string{}, Open: i <= d.State.Ring}
			for _, id := range rs.Devices {
				if _, ok := o.InstalledAt(id); ok {
					rs.Installed = append(rs.Installed, id)
				}
			}
			st.Rings = append(st.Rings, rs)
		}
		out = append(out, st)
	}
	return out, nil
}

// RolloutAction records an admin's action (rollout.Paused, Resumed,
// Stopped for an abort, ForceWidened) on the update's rollout in class.
func (g *Gate) RolloutAction(ctx context.Context, a evidence.Artifact, class string, act rollout.Action, actor, reason string) (rollout.Change, error) {
	plan, o, err := g.rolloutEvidence(ctx, a, class)
	if err != nil {
		return rollout.Change{}, err
	}
	// An admin's action is decided on the ring state as the log has it
	// (another replica may have changed it a moment ago).
	g.rollout.Controller.Invalidate(plan.Digest)
	return g.rollout.Controller.Admin(ctx, plan, act, actor, reason, o)
}
