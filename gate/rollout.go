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
	var devs []rollout.Device
	for _, d := range inv.Devices {
		if d.Class == class {
			devs = append(devs, rollout.Device{ID: d.Name, Canary: strings.EqualFold(d.Ring, rollout.CanaryLabel)})
		}
	}
	plan, err := g.rollout.Controller.Plan(a.Digest, class, p.Rollout.RingsFor(class), devs)
	return plan, true, err
}

// RolloutObserved gathers the evidence for a plan: installations of the
// update by the class's devices, their latest telemetry, the risk state.
func (g *Gate) RolloutObserved(ctx context.Context, p *rollout.Plan, risk string) (rollout.Observed, error) {
	o := rollout.Observed{Installed: map[string]time.Time{}, LastSeen: map[string]time.Time{}, Risk: risk}
	inv := g.rollout.Inventory()
	ins, err := g.rollout.Installations(ctx)
	if err != nil {
		return o, fmt.Errorf("installations: %w", err)
	}
	for _, in := range ins {
		if in.Digest != p.Digest {
			continue
		}
		name := in.Device
		if d, ok := inv.Device(in.Device); ok {
			name = d.Name
		}
		if at, seen := o.Installed[name]; !seen || in.Time.Before(at) {
			o.Installed[name] = in.Time
		}
	}
	rep, err := g.rollout.Report(ctx)
	if err != nil {
		return o, fmt.Errorf("fleet report: %w", err)
	}
	for _, id := range p.Order {
		if t, ok := rep.LastSeen[id]; ok {
			o.LastSeen[id] = t
		}
	}
	return o, nil
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
