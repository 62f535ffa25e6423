package rollout

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/wardgate/wardgate/evidence"
)

// Action is what a Change did.
type Action string

// Actions. Widened, Paused (on a suspicious risk state), Resumed (risk
// clean again) and Stopped (quarantined) are wardgate's own; an admin's
// pause, resume, abort and force-widen are Paused, Resumed, Stopped and
// ForceWidened with the admin as Actor.
const (
	Widened      Action = "widened"
	Paused       Action = "paused"
	Resumed      Action = "resumed"
	Stopped      Action = "stopped"
	ForceWidened Action = "force-widened"
)

// Status is where a rollout stands.
type Status string

// Statuses.
const (
	Active   Status = "active"   // the current ring may widen
	Held     Status = "paused"   // nothing widens until resumed
	Halted   Status = "stopped"  // nothing widens again
	Complete Status = "complete" // the last ring is open
)

// System is the Actor of wardgate's own changes.
const System = "wardgate"

// Recheck is the retryAfter given when the next widening waits on
// evidence that has no known time (telemetry, a clean risk state).
const Recheck = time.Hour

// Change is one ring change: the payload of its signed log entry.
type Change struct {
	Digest string    `json:"digest"`
	Class  string    `json:"class"`
	Action Action    `json:"action"`
	At     time.Time `json:"at"`
	// Ring is the index of the ring open after the change, RingName its
	// name, Status the status after it.
	Ring     int    `json:"ring"`
	RingName string `json:"ringName"`
	Status   Status `json:"status"`
	// Actor is System or the admin who asked; Reason says why (required
	// of an admin).
	Actor  string `json:"actor"`
	Reason string `json:"reason,omitempty"`
	// Evidence is what the change relied on.
	Evidence Evidence `json:"evidence"`
}

// Evidence is what a widening decision looks at for the current ring.
type Evidence struct {
	RiskState string `json:"riskState"`
	// Devices are the ring's new devices; Installed those that installed
	// the update; Reporting those whose telemetry shows them running it
	// for the soak time; Required how many must.
	Devices   int      `json:"devices"`
	Installed int      `json:"installed"`
	Reporting []string `json:"reporting"`
	Required  int      `json:"required"`
	// SoakEnds is when the Required-th installer's soak ends (zero while
	// fewer have installed).
	SoakEnds time.Time `json:"soakEnds,omitzero"`
}

// State is a rollout's current ring and status, rebuilt by Replay.
type State struct {
	Ring   int    `json:"ring"`
	Status Status `json:"status"`
	// PausedBy is System for a pause on a suspicious risk state (lifted
	// when the state is clean again), else the admin who paused.
	PausedBy string `json:"pausedBy,omitempty"`
	// OpenedAt is when the current ring opened or was last resumed (zero
	// for the first ring): soak counts from it or from the install,
	// whichever is later.
	OpenedAt time.Time `json:"openedAt,omitzero"`
	// Changes is how many changes the state was rebuilt from.
	Changes int `json:"changes"`
}

// Replay rebuilds the state of one rollout from its changes, in log
// order. With none, the first ring is open.
func Replay(p *Plan, cs []Change) State {
	s := Start(p)
	for _, c := range cs {
		s = s.apply(c)
	}
	return s
}

// Start is the state of a rollout nothing has changed yet.
func Start(p *Plan) State {
	if p.Last() == 0 {
		return State{Status: Complete}
	}
	return State{Status: Active}
}

func (s State) apply(c Change) State {
	s.Ring, s.Status, s.Changes = c.Ring, c.Status, s.Changes+1
	s.PausedBy = ""
	switch c.Action {
	case Paused:
		s.PausedBy = c.Actor
	case Widened, ForceWidened, Resumed:
		s.OpenedAt = c.At
	}
	return s
}

// Allowed reports whether device id may install under state s.
func (p *Plan) Allowed(s State, id string) bool { return p.RingOf(id) <= s.Ring }

// Installs and telemetry of the class's devices for one update.
type Observed struct {
	// Installed maps a device ID to when it installed the update.
	Installed map[string]time.Time
	// LastSeen maps a device ID to its latest telemetry event.
	LastSeen map[string]time.Time
	// View, when set, answers for the devices the maps do not have, so a
	// caller need not copy a whole fleet's installs and telemetry into
	// maps when a decision looks at one ring (the gate's cache).
	View View
	// Risk is the update's fleet risk state.
	Risk string
}

// View answers, device by device, what Observed's maps hold.
type View interface {
	// InstalledAt is when the device installed the update.
	InstalledAt(id string) (time.Time, bool)
	// SeenAt is the device's latest telemetry event.
	SeenAt(id string) (time.Time, bool)
}

// InstalledAt is when device id installed the update (the map, else the
// view).
func (o Observed) InstalledAt(id string) (time.Time, bool) {
	if t, ok := o.Installed[id]; ok {
		return t, true
	}
	if o.View != nil {
		return o.View.InstalledAt(id)
	}
	return time.Time{}, false
}

// SeenAt is device id's latest telemetry event (the map, else the view).
func (o Observed) SeenAt(id string) (time.Time, bool) {
	if t, ok := o.LastSeen[id]; ok {
		return t, true
	}
	if o.View != nil {
		return o.View.SeenAt(id)
	}
	return time.Time{}, false
}

// Decision is the outcome of Decide.
type Decision struct {
	// Change is the change to log; nil when nothing changes.
	Change *Change
	// State is the state after Change.
	State State
	// RetryAfter is the earliest time the ring may widen (zero when it
	// never will: stopped or complete).
	RetryAfter time.Time
	// Evidence is what the decision looked at.
	Evidence Evidence
}

// Decide looks at the evidence for the rollout in state s at time now
// (the decision clock's, see Clock) and says whether the ring changes.
// The ring widens only when Required of its new devices installed the
// update, have telemetry at least Soak after installing (or after the
// ring opened, if later) and now is past that too, and the risk state is
// clean. No telemetry is no evidence: the ring stays. A suspicious risk
// state pauses the rollout, a quarantined one stops it, a clean one lifts
// a pause wardgate made (not an admin's).
func Decide(p *Plan, s State, o Observed, now time.Time) Decision {
	d := Decision{State: s}
	d.Evidence = p.evidence(s, o, now)
	change := func(a Action, st State) {
		c := &Change{Digest: p.Digest, Class: p.Class, Action: a, At: now, Ring: st.Ring, RingName: p.Rings[st.Ring].Name,
			Status: st.Status, Actor: System, Evidence: d.Evidence}
		d.Change = c
		d.State = s.apply(*c)
	}
	switch {
	case s.Status == Halted:
		return d
	case o.Risk == evidence.RiskQuarantined:
		change(Stopped, State{Ring: s.Ring, Status: Halted})
		return d
	case o.Risk != evidence.RiskClean && o.Risk != "":
		// Suspicious, or a state this version does not know: fail closed.
		if s.Status == Active || s.Status == Complete && s.Ring < p.Last() {
			change(Paused, State{Ring: s.Ring, Status: Held})
		}
		d.RetryAfter = now.Add(Recheck)
		return d
	case s.Status == Held && s.PausedBy == System:
		change(Resumed, State{Ring: s.Ring, Status: Active})
		d.RetryAfter = now.Add(p.Rings[s.Ring].Soak)
		return d
	case s.Status == Held:
		d.RetryAfter = now.Add(Recheck)
		return d
	case s.Ring >= p.Last():
		return d
	}
	ev := d.Evidence
	if len(ev.Reporting) >= ev.Required && !ev.SoakEnds.IsZero() && !now.Before(ev.SoakEnds) {
		next := s.Ring + 1
		st := Active
		if next == p.Last() {
			st = Complete
		}
		change(Widened, State{Ring: next, Status: st})
		if next < p.Last() {
			d.RetryAfter = now.Add(p.Rings[next].Soak)
		}
		return d
	}
	switch soak := p.Rings[s.Ring].Soak; {
	case ev.SoakEnds.IsZero():
		d.RetryAfter = now.Add(max(soak, Recheck))
	case ev.SoakEnds.After(now):
		d.RetryAfter = ev.SoakEnds
	default:
		d.RetryAfter = now.Add(Recheck) // soaked, waiting on telemetry
	}
	return d
}

func (p *Plan) evidence(s State, o Observed, now time.Time) Evidence {
	members := p.Members(s.Ring)
	r := p.Rings[s.Ring]
	ev := Evidence{RiskState: o.Risk, Devices: len(members), Required: min(r.MinReporting, max(len(members), 1)), Reporting: []string{}}
	var starts []time.Time
	for _, id := range members {
		at, ok := o.InstalledAt(id)
		if !ok {
			continue
		}
		ev.Installed++
		start := at
		if s.OpenedAt.After(start) {
			start = s.OpenedAt
		}
		starts = append(starts, start)
		end := start.Add(r.Soak)
		if seen, ok := o.SeenAt(id); ok && seen.After(start) && !seen.Before(end) && !now.Before(end) {
			ev.Reporting = append(ev.Reporting, id)
		}
	}
	slices.Sort(ev.Reporting)
	slices.SortFunc(starts, time.Time.Compare)
	if len(starts) >= ev.Required {
		ev.SoakEnds = starts[ev.Required-1].Add(r.Soak)
	}
	return ev
}

// Errors of the admin actions.
var (
	// ErrNoReason: an admin action needs an actor and a reason.
	ErrNoReason = errors.New("rollout: an admin action needs who asked and a reason")
	// ErrTransition: the action does not apply to the rollout's status.
	ErrTransition = errors.New("rollout: action does not apply")
)

// Admin is an admin's change to a rollout in state s: Paused, Resumed,
// Stopped (abort) or ForceWidened. It checks the action applies.
func Admin(p *Plan, s State, a Action, actor, reason string, o Observed, now time.Time) (Change, error) {
	if actor == "" || actor == System || reason == "" {
		return Change{}, ErrNoReason
	}
	st := State{Ring: s.Ring}
	switch {
	case a == Paused && (s.Status == Active || s.Status == Complete && s.Ring < p.Last()):
		st.Status = Held
	case a == Resumed && s.Status == Held:
		st.Status = Active
	case a == Stopped && s.Status != Halted:
		st.Status = Halted
	case a == ForceWidened && s.Ring < p.Last() && s.Status != Halted:
		st.Ring, st.Status = s.Ring+1, Active
	default:
		return Change{}, fmt.Errorf("%w: %s on a rollout %s in ring %s", ErrTransition, a, s.Status, p.Rings[s.Ring].Name)
	}
	if st.Status == Active && st.Ring == p.Last() {
		st.Status = Complete
	}
	return Change{Digest: p.Digest, Class: p.Class, Action: a, At: now, Ring: st.Ring, RingName: p.Rings[st.Ring].Name,
		Status: st.Status, Actor: actor, Reason: reason, Evidence: p.evidence(s, o, now)}, nil
}
