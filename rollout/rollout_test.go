package rollout_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/wardgate/wardgate/evidence"
	"github.com/wardgate/wardgate/rollout"
	"github.com/wardgate/wardgate/trust"
)

var (
	key   = []byte("test membership key")
	t0    = time.Date(2026, 1, 20, 0, 0, 0, 0, time.UTC)
	rings = []trust.Ring{
		{Name: "canary", Share: 500, Soak: 48 * time.Hour, MinReporting: 3},
		{Name: "early", Share: 2500, Soak: 24 * time.Hour, MinReporting: 1},
		{Name: "broad", Share: trust.FullShare, MinReporting: 1},
	}
)

func testFleet(n int, canaries ...int) []rollout.Device {
	devs := make([]rollout.Device, n)
	for i := range devs {
		devs[i] = rollout.Device{ID: fmt.Sprintf("dev-%03d", i), Canary: slices.Contains(canaries, i)}
	}
	return devs
}

func plan(t testing.TB, digest string, rs []trust.Ring, devs []rollout.Device) *rollout.Plan {
	t.Helper()
	p, err := rollout.NewPlan(key, digest, "pump", rs, devs)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPlan(t *testing.T) {
	devs := testFleet(100, 42, 7)
	p := plan(t, "sha256:aa", rings, devs)
	if !reflect.DeepEqual(p.Bounds, []int{5, 25, 100}) {
		t.Fatalf("bounds = %v", p.Bounds)
	}
	if got := p.Order[:2]; !slices.Contains(got, "dev-042") || !slices.Contains(got, "dev-007") {
		t.Fatalf("canaries not first: %v", got)
	}
	// Deterministic, and another update picks other devices first.
	if q := plan(t, "sha256:aa", rings, reverse(devs)); !slices.Equal(q.Order, p.Order) {
		t.Fatal("order depends on the inventory's order")
	}
	other := plan(t, "sha256:bb", rings, devs)
	if slices.Equal(other.Order[2:5], p.Order[2:5]) {
		t.Fatalf("the same devices follow the canaries for two updates: %v", p.Order[2:5])
	}
	// A small class still gets a one-device canary; an unknown device is in the last ring.
	small := plan(t, "sha256:aa", rings, testFleet(6))
	if !reflect.DeepEqual(small.Bounds, []int{1, 2, 6}) || small.RingOf("nobody") != 2 {
		t.Fatalf("small bounds = %v, RingOf(nobody) = %d", small.Bounds, small.RingOf("nobody"))
	}
	if _, err := rollout.NewPlan(key, "sha256:aa", "pump", rings[:2], devs); err != rollout.ErrNoRings {
		t.Fatalf("rings without 100%%: err = %v", err)
	}
}

func reverse(d []rollout.Device) []rollout.Device {
	r := slices.Clone(d)
	slices.Reverse(r)
	return r
}

// observed installs every device of ring 0 at t0 with telemetry until seen.
func observed(p *rollout.Plan, seen time.Time, risk string) rollout.Observed {
	o := rollout.Observed{Installed: map[string]time.Time{}, LastSeen: map[string]time.Time{}, Risk: risk}
	for _, id := range p.Members(0) {
		o.Installed[id] = t0
		if !seen.IsZero() {
			o.LastSeen[id] = seen
		}
	}
	return o
}

func TestDecide(t *testing.T) {
	p := plan(t, "sha256:aa", rings, testFleet(100))
	s := rollout.Start(p)
	// Before the soak: hold until it ends.
	d := rollout.Decide(p, s, observed(p, t0.Add(47*time.Hour), evidence.RiskClean), t0.Add(47*time.Hour))
	if d.Change != nil || !d.RetryAfter.Equal(t0.Add(48*time.Hour)) {
		t.Fatalf("before soak: change %+v retryAfter %s", d.Change, d.RetryAfter)
	}
	// Soaked and reporting: widen to early.
	now := t0.Add(49 * time.Hour)
	d = rollout.Decide(p, s, observed(p, now, evidence.RiskClean), now)
	if d.Change == nil || d.Change.Action != rollout.Widened || d.State.Ring != 1 || d.Change.RingName != "early" ||
		len(d.Change.Evidence.Reporting) != 5 || d.Change.Evidence.Required != 3 || !d.RetryAfter.Equal(now.Add(24*time.Hour)) {
		t.Fatalf("widen: %+v state %+v retry %s", d.Change, d.State, d.RetryAfter)
	}
	if got := rollout.Replay(p, []rollout.Change{*d.Change}); !reflect.DeepEqual(got, d.State) {
		t.Fatalf("replay = %+v, want %+v", got, d.State)
	}
	// Suspicious pauses, clean resumes, quarantined stops for good.
	d = rollout.Decide(p, s, observed(p, now, evidence.RiskSuspicious), now)
	if d.Change == nil || d.Change.Action != rollout.Paused || d.State.Status != rollout.Held || d.State.PausedBy != rollout.System {
		t.Fatalf("suspicious: %+v", d)
	}
	r := rollout.Decide(p, d.State, observed(p, now, evidence.RiskClean), now.Add(time.Hour))
	if r.Change == nil || r.Change.Action != rollout.Resumed || r.State.Status != rollout.Active || r.State.Ring != 0 {
		t.Fatalf("resume: %+v", r)
	}
	q := rollout.Decide(p, s, observed(p, now, evidence.RiskQuarantined), now)
	if q.Change == nil || q.Change.Action != rollout.Stopped || q.State.Status != rollout.Halted || !q.RetryAfter.IsZero() {
		t.Fatalf("quarantined: %+v", q)
	}
	if z := rollout.Decide(p, q.State, observed(p, now.Add(1000*time.Hour), evidence.RiskClean), now.Add(1000*time.Hour)); z.Change != nil || z.State.Ring != 0 {
		t.Fatalf("a stopped rollout changed: %+v", z)
	}
	// A resumed ring soaks again from the resume.
	if w := rollout.Decide(p, r.State, observed(p, now.Add(2*time.Hour), evidence.RiskClean), now.Add(2*time.Hour)); w.Change != nil ||
		!w.RetryAfter.Equal(now.Add(49*time.Hour)) {
		t.Fatalf("after resume: %+v", w)
	}
}

// A canary ring whose devices send no telemetry, or none after their
// soak, never widens however long it waits.
func TestNoTelemetryNeverWidens(t *testing.T) {
	p := plan(t, "sha256:aa", rings, testFleet(100))
	for _, seen := range []time.Time{{}, t0.Add(47 * time.Hour), t0.Add(-time.Hour)} {
		for h := 0; h < 24*365; h += 7 {
			now := t0.Add(time.Duration(h) * time.Hour)
			if d := rollout.Decide(p, rollout.Start(p), observed(p, seen, evidence.RiskClean), now); d.Change != nil {
				t.Fatalf("telemetry until %s: widened at %s: %+v", seen, now, d.Change)
			}
		}
	}
	// Two of the three required report: still no.
	o := observed(p, time.Time{}, evidence.RiskClean)
	for _, id := range p.Members(0)[:2] {
		o.LastSeen[id] = t0.Add(100 * time.Hour)
	}
	if d := rollout.Decide(p, rollout.Start(p), o, t0.Add(1000*time.Hour)); d.Change != nil || len(d.Evidence.Reporting) != 2 {
		t.Fatalf("two of three reporting widened: %+v", d)
	}
}

// A wall clock that jumps forward does not move the decision time; the
// log's time and earlier answers keep it from going back; and a replica
// whose clock is ahead still cannot widen before the devices' own
// telemetry shows the soak.
func TestClockJumps(t *testing.T) {
	wall := t0
	var mono time.Duration
	c := rollout.NewClock(func() time.Time { return wall }, func() time.Duration { return mono })
	mono = time.Hour
	wall = t0.Add(72 * time.Hour) // jumps three days ahead
	if got := c.Now(time.Time{}); !got.Equal(t0.Add(time.Hour)) {
		t.Fatalf("after a forward jump: %s", got)
	}
	wall = t0.Add(-72 * time.Hour) // and back
	if got := c.Now(t0.Add(30 * time.Minute)); !got.Equal(t0.Add(time.Hour)) {
		t.Fatalf("after a backward jump: %s", got)
	}
	if got := c.Now(t0.Add(5 * time.Hour)); !got.Equal(t0.Add(5 * time.Hour)) {
		t.Fatalf("behind the log: %s", got)
	}
	if got := c.Now(time.Time{}); !got.Equal(t0.Add(5 * time.Hour)) {
		t.Fatalf("went back: %s", got)
	}
	// A replica 72 hours ahead, with telemetry only up to now (t0+10h).
	p := plan(t, "sha256:aa", rings, testFleet(100))
	ahead := t0.Add(82 * time.Hour)
	if d := rollout.Decide(p, rollout.Start(p), observed(p, t0.Add(10*time.Hour), evidence.RiskClean), ahead); d.Change != nil {
		t.Fatalf("skewed replica widened: %+v", d.Change)
	}
	// A device clock ahead alone does not either: the decision time must be past the soak too.
	if d := rollout.Decide(p, rollout.Start(p), observed(p, t0.Add(100*time.Hour), evidence.RiskClean), t0.Add(10*time.Hour)); d.Change != nil {
		t.Fatalf("future telemetry widened: %+v", d.Change)
	}
}

func TestAdmin(t *testing.T) {
	p := plan(t, "sha256:aa", rings, testFleet(100))
	s := rollout.Start(p)
	o := observed(p, time.Time{}, evidence.RiskClean)
	if _, err := rollout.Admin(p, s, rollout.Paused, "alice", "", o, t0); err != rollout.ErrNoReason {
		t.Fatalf("no reason: %v", err)
	}
	c, err := rollout.Admin(p, s, rollout.ForceWidened, "alice", "vendor hotfix for a recall", o, t0)
	if err != nil || c.Ring != 1 || c.Actor != "alice" || c.Status != rollout.Active {
		t.Fatalf("force-widen: %+v %v", c, err)
	}
	s = rollout.Replay(p, []rollout.Change{c})
	c, _ = rollout.Admin(p, s, rollout.Paused, "alice", "investigating", o, t0)
	s = rollout.Replay(p, []rollout.Change{c})
	// wardgate does not lift an admin's pause.
	if d := rollout.Decide(p, s, o, t0.Add(time.Hour)); d.Change != nil || d.State.Status != rollout.Held {
		t.Fatalf("admin pause lifted: %+v", d)
	}
	c, _ = rollout.Admin(p, s, rollout.Stopped, "bob", "abort", o, t0)
	s = rollout.Replay(p, []rollout.Change{c})
	if _, err := rollout.Admin(p, s, rollout.Resumed, "bob", "oops", o, t0); !errors.Is(err, rollout.ErrTransition) {
		t.Fatalf("resume after abort: %v", err)
	}
}

// Over random fleets and rollouts (devices asking at random times,
// telemetry that may or may not come, risk states that change), no device
// outside the current ring is ever allowed, no ring widens without
// Required devices that ran the update for the soak, nothing widens after
// a stop, and the state rebuilt from the changes is the state.
func TestPropertyNoDeviceOutsideRing(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	widened, stops := 0, 0
	defer func() {
		if !t.Failed() && (widened < 50 || stops < 10) {
			t.Errorf("the random rollouts widened %d times and stopped %d: too few to show anything", widened, stops)
		}
	}()
	for iter := range 300 {
		n := 1 + rng.IntN(60)
		var canaries []int
		for range rng.IntN(3) {
			canaries = append(canaries, rng.IntN(n))
		}
		rs := randomRings(rng)
		p := plan(t, fmt.Sprintf("sha256:%04d", iter), rs, testFleet(n, canaries...))
		s := rollout.Start(p)
		var changes []rollout.Change
		o := rollout.Observed{Installed: map[string]time.Time{}, LastSeen: map[string]time.Time{}, Risk: evidence.RiskClean}
		now := t0
		stopped := false
		for range 200 {
			now = now.Add(time.Duration(rng.IntN(12*60)) * time.Minute)
			switch rng.IntN(30) {
			case 0:
				o.Risk = []string{evidence.RiskClean, evidence.RiskClean, evidence.RiskSuspicious, evidence.RiskQuarantined}[rng.IntN(4)]
			case 1, 2, 3, 4, 5, 6, 7, 8, 9:
				for id, at := range o.Installed {
					if rng.IntN(3) == 0 {
						o.LastSeen[id] = now.Add(-time.Duration(rng.IntN(int(now.Sub(at)/time.Minute)+1)) * time.Minute)
					}
				}
			}
			prev := s
			d := rollout.Decide(p, s, o, now)
			// The same evidence answered device by device (the gate's
			// cache) decides the same.
			if v := rollout.Decide(p, s, rollout.Observed{View: mapView{o.Installed, o.LastSeen}, Risk: o.Risk}, now); !reflect.DeepEqual(v, d) {
				t.Fatalf("iter %d: through a View %+v, from maps %+v", iter, v, d)
			}
			if d.Change != nil {
				if stopped {
					t.Fatalf("iter %d: change after stop: %+v", iter, d.Change)
				}
				if d.Change.Action == rollout.Widened {
					r := rs[prev.Ring]
					ok := 0
					for _, id := range p.Members(prev.Ring) {
						at, in := o.Installed[id]
						start := at
						if prev.OpenedAt.After(start) {
							start = prev.OpenedAt
						}
						if in && !o.LastSeen[id].Before(start.Add(r.Soak)) && !now.Before(start.Add(r.Soak)) && o.LastSeen[id].After(start) {
							ok++
						}
					}
					if ok < min(r.MinReporting, len(p.Members(prev.Ring))) || o.Risk != evidence.RiskClean {
						t.Fatalf("iter %d: widened with %d soaked devices (risk %s): %+v", iter, ok, o.Risk, d.Change)
					}
				}
				changes = append(changes, *d.Change)
				if d.Change.Action == rollout.Widened {
					widened++
				}
				if d.State.Status == rollout.Halted && !stopped {
					stops++
				}
				stopped = stopped || d.State.Status == rollout.Halted
			}
			s = d.State
			if got := rollout.Replay(p, changes); !reflect.DeepEqual(got, s) {
				t.Fatalf("iter %d: replay %+v, state %+v", iter, got, s)
			}
			// Devices ask; only those the state allows install.
			for range rng.IntN(5) {
				id := fmt.Sprintf("dev-%03d", rng.IntN(n+2)) // sometimes one the inventory lacks
				allowed := p.Allowed(s, id)
				if allowed != (p.RingOf(id) <= s.Ring) {
					t.Fatalf("iter %d: %s allowed=%v in ring %d, state %+v", iter, id, allowed, p.RingOf(id), s)
				}
				if allowed && s.Status != rollout.Halted {
					if _, had := o.Installed[id]; !had {
						o.Installed[id] = now
					}
				}
			}
			for id := range o.Installed {
				if slices.Contains(p.Order, id) && p.RingOf(id) > s.Ring {
					t.Fatalf("iter %d: %s installed outside ring %d", iter, id, s.Ring)
				}
			}
			known := 0
			for id := range o.Installed {
				if slices.Contains(p.Order, id) {
					known++
				}
			}
			if known > p.Bounds[s.Ring] {
				t.Fatalf("iter %d: %d installs, ring %d holds %d", iter, known, s.Ring, p.Bounds[s.Ring])
			}
		}
	}
}

func randomRings(rng *rand.Rand) []trust.Ring {
	var rs []trust.Ring
	share := 0
	for i := 0; share < trust.FullShare; i++ {
		share = min(trust.FullShare, share+1+rng.IntN(5000))
		if i == 3 {
			share = trust.FullShare
		}
		rs = append(rs, trust.Ring{Name: fmt.Sprintf("r%d", i), Share: share, Soak: time.Duration(rng.IntN(72)) * time.Hour, MinReporting: 1 + rng.IntN(4)})
	}
	return rs
}

// Two controllers on one journal (two replicas on one log): a pause made
// by one is not seen by the other, which holds the update's changes in
// memory, until it drops them (Invalidate, on the store's change feed).
func TestControllerInvalidate(t *testing.T) {
	j := &rollout.MemJournal{}
	a, err := rollout.NewController(key, j, rollout.NewClock(func() time.Time { return t0 }, func() time.Duration { return 0 }))
	if err != nil {
		t.Fatal(err)
	}
	b, err := rollout.NewController(key, j, rollout.NewClock(func() time.Time { return t0 }, func() time.Duration { return 0 }))
	if err != nil {
		t.Fatal(err)
	}
	p := plan(t, "sha256:aa", rings, testFleet(100))
	o := observed(p, time.Time{}, evidence.RiskClean)
	if d, err := b.Decide(t.Context(), p, o); err != nil || d.State.Status != rollout.Active {
		t.Fatalf("B: %+v %v", d.State, err)
	}
	if _, err := a.Admin(t.Context(), p, rollout.Paused, "alice", "advisory", o); err != nil {
		t.Fatal(err)
	}
	if d, _, _ := b.State(t.Context(), p, o); d.State.Status != rollout.Active {
		t.Fatalf("B before Invalidate: %s, want its cached active", d.State.Status)
	}
	b.Invalidate("sha256:bb") // another update: nothing changes
	if d, _, _ := b.State(t.Context(), p, o); d.State.Status != rollout.Active {
		t.Fatalf("B after another update's Invalidate: %s", d.State.Status)
	}
	b.Invalidate("sha256:aa")
	if d, _, _ := b.State(t.Context(), p, o); d.State.Status != rollout.Held {
		t.Fatalf("B after Invalidate: %s, want paused", d.State.Status)
	}
	if _, err := a.Admin(t.Context(), p, rollout.Resumed, "alice", "done", o); err != nil {
		t.Fatal(err)
	}
	b.Invalidate() // everything
	if d, _, _ := b.State(t.Context(), p, o); d.State.Status != rollout.Active {
		t.Fatalf("B after Invalidate(): %s, want active", d.State.Status)
	}
}

// mapView is a rollout.View over maps.
type mapView struct{ installed, seen map[string]time.Time }

func (v mapView) InstalledAt(id string) (time.Time, bool) { t, ok := v.installed[id]; return t, ok }
func (v mapView) SeenAt(id string) (time.Time, bool)      { t, ok := v.seen[id]; return t, ok }
