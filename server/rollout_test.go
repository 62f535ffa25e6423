package server

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/wardgate/wardgate/gate"
	"github.com/wardgate/wardgate/policy"
	"github.com/wardgate/wardgate/rollout"
	"github.com/wardgate/wardgate/trust"
)

// withRollout swaps in a gate on the fixture trust configuration with
// rings for the pump (20% canary, 48 h soak; then 100%).
func (e *env) withRollout(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile("../fixtures/trust.yaml")
	if err != nil {
		t.Fatal(err)
	}
	y := strings.Replace(string(b), "        device_classes: [infusion-pump]\n", `        device_classes: [infusion-pump]
        rollout:
          rings:
            - {name: canary, share: 20%, soak: 48h, min_reporting: 2}
            - {name: broad, share: 100%}
`, 1)
	tc, err := trust.Parse("../fixtures/trust.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	eng, err := policy.New(t.Context(), policy.WithTrust(tc))
	if err != nil {
		t.Fatal(err)
	}
	ctl, err := rollout.NewController([]byte("0123456789abcdef0123456789abcdef"), rollout.LogJournal{Log: e.log}, rollout.NewClock(nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	g, err := gate.New(tc, eng, e.st, gate.WithLog(e.log), gate.WithFleet(e.risk), gate.WithInstallations(e.st), gate.WithoutSBOMGeneration(),
		gate.WithRollout(gate.Rollout{Controller: ctl, Inventory: e.inv.Load, Installations: e.st.Installations, Report: e.risk.Report}))
	if err != nil {
		t.Fatal(err)
	}
	e.srv.SwapGate(g)
}

func TestRolloutAPI(t *testing.T) {
	e := newEnv(t)
	e.evaluate(RoleCI)
	path := "/v1/updates/" + e.digest + "/rollout"
	pause := map[string]string{"class": "infusion-pump", "action": "pause", "reason": "vendor advisory pending"}
	// Without rings: 409.
	if r := e.postJSON(path, RoleAdmin, pause); r.status != 409 || r.errorCode(t) != "no-rollout" {
		t.Fatalf("no rings: %d %s", r.status, r.body)
	}
	e.withRollout(t)
	for _, c := range []struct {
		body map[string]string
		want string
	}{
		{map[string]string{"class": "infusion-pump", "action": "pause"}, "reason is required"},
		{map[string]string{"class": "infusion-pump", "action": "halt", "reason": "x"}, "want pause, resume, abort or force-widen"},
		{map[string]string{"action": "pause", "reason": "x"}, "class is required"},
	} {
		if r := e.postJSON(path, RoleAdmin, c.body); r.status != 400 || !strings.Contains(string(r.body), c.want) {
			t.Fatalf("%v: %d %s", c.body, r.status, r.body)
		}
	}
	if r := e.postJSON("/v1/updates/sha256:"+strings.Repeat("0", 64)+"/rollout", RoleAdmin, pause); r.status != 404 {
		t.Fatalf("unknown update: %d", r.status)
	}
	// The pumps outside the canary ring are held, with a retryAfter.
	g := e.srv.gate.Load()
	plan, _, err := g.RolloutPlan(e.srv.deps.Records.List()[0].Evidence.Artifact, "infusion-pump")
	if err != nil {
		t.Fatal(err)
	}
	held := plan.Members(1)[0]
	var a AdmissionResponse
	e.postJSON("/v1/admissions", RoleUpdateServer, map[string]any{"digest": e.digest, "device": map[string]string{"id": held, "class": "infusion-pump", "installedVersion": "2.3.0"}}).json(t, &a)
	if a.Allow || !slices.Equal(codesOf(a.Decision), []string{"rollout-hold"}) || a.RetryAfter == nil || a.Hold == nil || a.Hold.Ring != "broad" || !a.Evaluated {
		t.Fatalf("held device: %+v", a)
	}
	var canary AdmissionResponse
	e.postJSON("/v1/admissions", RoleUpdateServer, map[string]any{"digest": e.digest, "device": map[string]string{"id": plan.Members(0)[0], "class": "infusion-pump", "installedVersion": "2.3.0"}}).json(t, &canary)
	if !canary.Allow || canary.Hold != nil {
		t.Fatalf("canary: %+v", canary)
	}
	// The update shows its rings.
	var st UpdateState
	e.do("GET", "/v1/updates/"+e.digest, RoleAuditor, "", nil).json(t, &st)
	if len(st.Rollout) != 1 || st.Rollout[0].Ring != "canary" || st.Rollout[0].Status != "active" || len(st.Rollout[0].Rings) != 2 ||
		!slices.Equal(st.Rollout[0].Rings[0].Devices, plan.Members(0)) || st.Rollout[0].NextDecision == nil || st.Rollout[0].Rings[1].Open {
		t.Fatalf("rollout state: %+v", st.Rollout)
	}
	// Admin actions, each a signed log entry.
	for _, c := range []struct {
		action string
		status int
		want   rollout.Status
	}{
		{"pause", 200, rollout.Held}, {"resume", 200, rollout.Active}, {"abort", 200, rollout.Halted}, {"resume", 409, ""},
	} {
		before := e.log.Checkpoint().Size
		r := e.postJSON(path, RoleAdmin, map[string]string{"class": "infusion-pump", "action": c.action, "reason": "ticket CHG-42"})
		if r.status != c.status {
			t.Fatalf("%s: %d %s", c.action, r.status, r.body)
		}
		if c.status != 200 {
			if r.errorCode(t) != "rollout-transition" || e.log.Checkpoint().Size != before {
				t.Fatalf("%s: %s, log grew", c.action, r.body)
			}
			continue
		}
		var ch rollout.Change
		r.json(t, &ch)
		if ch.Status != c.want || ch.Actor != "test-admin" || ch.Reason != "ticket CHG-42" || e.log.Checkpoint().Size != before+1 {
			t.Fatalf("%s: %+v", c.action, ch)
		}
	}
	cs, err := rollout.LogJournal{Log: e.log}.Changes(t.Context(), e.digest)
	if err != nil || len(cs) != 3 {
		t.Fatalf("log changes: %d %v", len(cs), err)
	}
	m := string(e.do("GET", "/metrics", "", "", nil).body)
	for _, want := range []string{`wardgate_rollout_holds_total{ring="broad"} 1`, `wardgate_rollout_admin_actions_total{action="pause"} 1`, `wardgate_decisions_total{phase="admit",result="deny",reason="rollout-hold"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
