package gate_test

import (
	"context"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/evidence"
	"github.com/wardgate/wardgate/gate"
	"github.com/wardgate/wardgate/policy"
	"github.com/wardgate/wardgate/rollout"
	"github.com/wardgate/wardgate/trust"
)

const pumpRollout = `        rollout:
          rings:
            - {name: canary, share: 20%, soak: 48h, min_reporting: 2}
            - {name: broad, share: 100%}
`

// rolloutTrust is the fixture trust configuration with rings for the pump.
func rolloutTrust(t testing.TB) *trust.Config {
	t.Helper()
	b, err := os.ReadFile("../fixtures/trust.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), "        device_classes: [infusion-pump]\n", "        device_classes: [infusion-pump]\n"+pumpRollout, 1)
	if s == string(b) {
		t.Fatal("fixture trust.yaml changed: no pump device_classes line")
	}
	tc, err := trust.Parse("../fixtures/trust.yaml", []byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return tc
}

type rolloutRig struct {
	*harness
	gate     *gate.Gate
	now      time.Time
	mu       sync.Mutex
	lastSeen map[string]time.Time
	journal  rollout.LogJournal
	// shareSeen: the report's LastSeen is lastSeen itself, not a copy
	// (the benchmark, which does not change it).
	shareSeen bool
	inv       *egress.Inventory // the inventory the gate sees; replace under mu
}

func newRolloutRig(t *testing.T) *rolloutRig {
	b, err := os.ReadFile(fleetDir + "inventory.json")
	if err != nil {
		t.Fatal(err)
	}
	// PUMP-06 is labelled a canary.
	inv, err := egress.ReadInventory(strings.NewReader(strings.Replace(string(b), `"name": "HOSP-IOT-PUMP-06",`, `"name": "HOSP-IOT-PUMP-06", "ring": "canary",`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := inv.Device("HOSP-IOT-PUMP-06"); d.Ring != "canary" {
		t.Fatalf("inventory label not read: %+v", d)
	}
	return newRolloutRigInv(t, inv)
}

// newRolloutRigInv is a rig whose rollouts go through inv's devices.
func newRolloutRigInv(t testing.TB, inv *egress.Inventory, opts ...func(*gate.Rollout)) *rolloutRig {
	h := newHarness(t)
	r := &rolloutRig{harness: h, now: time.Date(2027, 3, 1, 8, 0, 0, 0, time.UTC), lastSeen: map[string]time.Time{}, journal: rollout.LogJournal{Log: h.log}, inv: inv}
	tc := rolloutTrust(t)
	eng, err := policy.New(t.Context(), policy.WithTrust(tc))
	if err != nil {
		t.Fatal(err)
	}
	clock := func() time.Time { r.mu.Lock(); defer r.mu.Unlock(); return r.now }
	base := clock()
	ctl, err := rollout.NewController([]byte("0123456789abcdef0123456789abcdef"), r.journal, rollout.NewClock(clock, func() time.Duration { return clock().Sub(base) }))
	if err != nil {
		t.Fatal(err)
	}
	ro := gate.Rollout{Controller: ctl, Inventory: func() *egress.Inventory { r.mu.Lock(); defer r.mu.Unlock(); return r.inv }, Installations: h.st.Installations,
		Report: func(context.Context) (egress.Report, error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			rep, err := h.risk.Report(t.Context())
			rep.LastSeen = r.lastSeen
			if !r.shareSeen {
				rep.LastSeen = maps(r.lastSeen)
			}
			return rep, err
		}}
	for _, o := range opts {
		o(&ro)
	}
	if r.gate, err = gate.New(tc, eng, h.st, gate.WithLog(h.log), gate.WithFleet(h.risk), gate.WithInstallations(h.st),
		gate.WithoutSBOMGeneration(), gate.WithClock(clock), gate.WithRollout(ro)); err != nil {
		t.Fatal(err)
	}
	return r
}

func maps(m map[string]time.Time) map[string]time.Time {
	out := make(map[string]time.Time, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (r *rolloutRig) admit(t *testing.T, id string) *gate.Outcome {
	t.Helper()
	out, err := r.gate.Admit(t.Context(), r.recs, gate.AdmitRequest{Digest: r.digest, Device: evidence.Device{ID: id, Class: "infusion-pump", InstalledVersion: "2.3.0"}})
	if err != nil {
		t.Fatalf("admit %s: %v", id, err)
	}
	return out
}

func (r *rolloutRig) advance(d time.Duration) { r.mu.Lock(); r.now = r.now.Add(d); r.mu.Unlock() }

// Six pumps, rings of 20% (two devices, the labelled canary first) and
// 100%: the rest are held with rollout-hold and a retryAfter until both
// canaries have run the update for 48 h by their own telemetry; without
// telemetry the ring stays; the widening is a signed log entry.
func TestAdmitRolloutHold(t *testing.T) {
	r := newRolloutRig(t)
	plan, has, err := r.gate.RolloutPlan(evidence.Artifact{Digest: r.digest, Vendor: "acme-infusion", Product: "infusion-pump"}, "infusion-pump")
	if err != nil || !has || len(plan.Members(0)) != 2 || plan.Order[0] != "HOSP-IOT-PUMP-06" {
		t.Fatalf("plan: %v %v %v", plan, has, err)
	}
	canaries := plan.Members(0)
	held := plan.Members(1)[0]
	start := r.now
	for _, id := range canaries {
		if out := r.admit(t, id); !out.Decision.Allow || out.Hold != nil {
			t.Fatalf("canary %s: %+v", id, out.Decision)
		}
	}
	out := r.admit(t, held)
	if out.Decision.Allow || !slices.Equal(codes(out.Decision), []string{"rollout-hold"}) || out.RetryAfter == nil || !out.RetryAfter.Equal(start.Add(48*time.Hour)) ||
		out.Hold.Ring != "broad" || out.Hold.Current != "canary" || !out.Evaluated {
		t.Fatalf("held device: %+v hold %+v retry %v", out.Decision, out.Hold, out.RetryAfter)
	}
	want := "device " + held + " is in rollout ring broad; the rollout is active in ring canary; ask again after 2027-03-03T08:00:00Z"
	if out.Decision.Violations[0].Message != want {
		t.Fatalf("message %q", out.Decision.Violations[0].Message)
	}
	// No telemetry: a week later, still held.
	r.advance(7 * 24 * time.Hour)
	if out := r.admit(t, held); out.Decision.Allow {
		t.Fatal("widened without telemetry")
	}
	// One canary reports: min_reporting is 2, still held.
	r.mu.Lock()
	r.lastSeen[canaries[0]] = r.now
	r.mu.Unlock()
	if out := r.admit(t, held); out.Decision.Allow {
		t.Fatal("widened on one report of two")
	}
	r.mu.Lock()
	r.lastSeen[canaries[1]] = r.now
	r.mu.Unlock()
	if out := r.admit(t, held); !out.Decision.Allow || out.Hold != nil {
		t.Fatalf("after the soak and telemetry: %+v", out.Decision)
	}
	cs, err := r.journal.Changes(t.Context(), r.digest)
	if err != nil || len(cs) != 1 || cs[0].Action != rollout.Widened || cs[0].RingName != "broad" || cs[0].Class != "infusion-pump" ||
		!slices.Equal(cs[0].Evidence.Reporting, slices.Sorted(slices.Values(canaries))) || cs[0].Evidence.RiskState != evidence.RiskClean {
		t.Fatalf("log changes: %+v %v", cs, err)
	}
}

// A quarantine stops the rollout: the next admission records the stop in
// the log, and a device outside the canary ring is still held (and
// denied as quarantined by the policy).
func TestAdmitRolloutStopsOnQuarantine(t *testing.T) {
	r := newRolloutRig(t)
	ingestCompromised(t, r.harness) // four pumps installed it, they fetch a payload
	r.risk.Invalidate()
	out := r.admit(t, "HOSP-IOT-PUMP-05")
	if out.Decision.Allow || !slices.Contains(codes(out.Decision), "quarantined") {
		t.Fatalf("after the quarantine: %+v", out.Decision)
	}
	cs, err := r.journal.Changes(t.Context(), r.digest)
	if err != nil || len(cs) != 1 || cs[0].Action != rollout.Stopped || cs[0].Status != rollout.Halted || cs[0].Evidence.RiskState != evidence.RiskQuarantined {
		t.Fatalf("log changes: %+v %v", cs, err)
	}
}

// The rollout reads the installations from its cache: the gate's own
// admissions count at once (TestAdmitRolloutHold), those another process
// records are seen at the next full read, one refresh interval later.
// Until then the ring counts fewer installers and holds (fail closed).
func TestRolloutCacheInstallationsRecordedElsewhere(t *testing.T) {
	for _, refresh := range []time.Duration{time.Hour, 20 * time.Millisecond} {
		t.Run(refresh.String(), func(t *testing.T) {
			r := newRolloutRigInv(t, pumpInventory(t, "HOSP-IOT-PUMP-06"), func(ro *gate.Rollout) { ro.InstallRefresh = refresh })
			plan, _, err := r.gate.RolloutPlan(evidence.Artifact{Digest: r.digest, Vendor: "acme-infusion", Product: "infusion-pump"}, "infusion-pump")
			if err != nil {
				t.Fatal(err)
			}
			held := plan.Members(1)[0]
			if out := r.admit(t, held); out.Hold == nil {
				t.Fatalf("before any install: %+v", out.Decision)
			}
			// Another process records both canaries' installs.
			for _, id := range plan.Members(0) {
				if err := r.st.RecordInstallation(t.Context(), egress.Installation{Device: id, Digest: r.digest, Product: "infusion-pump", Version: "2.4.0", Time: r.now}); err != nil {
					t.Fatal(err)
				}
			}
			r.advance(49 * time.Hour)
			r.mu.Lock()
			for _, id := range plan.Members(0) {
				r.lastSeen[id] = r.now
			}
			r.mu.Unlock()
			if refresh == time.Hour {
				// Not read again yet: the ring sees no installer and holds.
				out := r.admit(t, held)
				st, err := r.gate.RolloutStatus(t.Context(), evidence.Artifact{Digest: r.digest, Vendor: "acme-infusion", Product: "infusion-pump"})
				if out.Hold == nil || err != nil || len(st) != 1 || st[0].Evidence.Installed != 0 || len(st[0].Rings[0].Installed) != 0 {
					t.Fatalf("stale view widened or counted: %+v %+v %v", out.Decision, st, err)
				}
				return
			}
			// Each admission past the interval starts a read in the
			// background; a later one sees its result.
			deadline := time.Now().Add(15 * time.Second)
			for r.admit(t, held).Hold != nil {
				if time.Now().After(deadline) {
					t.Fatal("the installations recorded elsewhere were never read")
				}
				time.Sleep(10 * time.Millisecond)
			}
			cs, err := r.journal.Changes(t.Context(), r.digest)
			if err != nil || len(cs) != 1 || cs[0].Action != rollout.Widened || cs[0].Evidence.Installed != 2 || len(cs[0].Evidence.Reporting) != 2 {
				t.Fatalf("changes: %+v %v", cs, err)
			}
		})
	}
}

// A new inventory (a reload) makes new plans: the cached plan is not used
// with another inventory's devices.
func TestRolloutCachePlanFollowsInventory(t *testing.T) {
	r := newRolloutRigInv(t, pumpInventory(t, "HOSP-IOT-PUMP-06"))
	a := evidence.Artifact{Digest: r.digest, Vendor: "acme-infusion", Product: "infusion-pump"}
	first, _, err := r.gate.RolloutPlan(a, "infusion-pump")
	if err != nil || first.Order[0] != "HOSP-IOT-PUMP-06" {
		t.Fatalf("plan: %v %v", first, err)
	}
	if again, _, _ := r.gate.RolloutPlan(a, "infusion-pump"); again != first {
		t.Fatal("the plan was built again for the same inventory")
	}
	r.mu.Lock()
	r.inv = pumpInventory(t, "HOSP-IOT-PUMP-03")
	r.mu.Unlock()
	next, _, err := r.gate.RolloutPlan(a, "infusion-pump")
	if err != nil || next == first || next.Order[0] != "HOSP-IOT-PUMP-03" {
		t.Fatalf("after the new inventory: %v %v", next, err)
	}
}

// pumpInventory is the fleet fixture's inventory with canary labelled.
func pumpInventory(t testing.TB, canary string) *egress.Inventory {
	t.Helper()
	b, err := os.ReadFile(fleetDir + "inventory.json")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), `"name": "`+canary+`",`, `"name": "`+canary+`", "ring": "canary",`, 1)
	if s == string(b) {
		t.Fatalf("no device %s in the inventory", canary)
	}
	inv, err := egress.ReadInventory(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return inv
}
