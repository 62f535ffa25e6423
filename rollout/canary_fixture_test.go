package rollout_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/evidence"
	"github.com/wardgate/wardgate/fixtures/fleet"
)

// Why the demo's canary had to hold the four pumps that installed the
// 3CX-like update (docs/rollout.md): the fixture's telemetry is recorded,
// so a pump the rollout held still shows the payload's connections. With
// only two of the four installing, the detections see two pumps without
// the update reach the payload's host as well and attribute nothing; when
// the held pumps do not connect (as they would not, holding the old
// release), the same two installers quarantine the update.
func TestFixtureCanaryControls(t *testing.T) {
	const dir = "../fixtures/fleet/testdata/"
	inv, err := egress.ReadInventoryFile(dir + "inventory.json")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := egress.ReadConfigFile(dir + "config.json")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(dir + "installations.json")
	if err != nil {
		t.Fatal(err)
	}
	all, err := egress.ReadInstallations(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	var events []egress.Event
	f, err := os.Open(dir + "defender.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := egress.Scan(f, func(ev *egress.Event) error { events = append(events, *ev); return nil }); err != nil {
		t.Fatal(err)
	}
	digest := fleet.Pump3CX.Digest()
	state := func(installers []string, heldConnect bool) string {
		var ins []egress.Installation
		for _, in := range all {
			if in.Digest != digest || slices.Contains(installers, in.Device) {
				ins = append(ins, in)
			}
		}
		a, err := egress.NewAnalyzer(inv, ins, cfg)
		if err != nil {
			t.Fatal(err)
		}
		for i := range events {
			ev := &events[i]
			if !heldConnect && strings.HasSuffix(ev.RemoteURL, fleet.ThreeCXHost) && !slices.Contains(installers, ev.DeviceName) {
				continue
			}
			a.Add(ev)
		}
		rep := a.Report()
		if u, ok := rep.Risk(digest); ok {
			return u.State
		}
		return "not installed"
	}
	four := []string{"HOSP-IOT-PUMP-01", "HOSP-IOT-PUMP-02", "HOSP-IOT-PUMP-03", "HOSP-IOT-PUMP-04"}
	for _, tc := range []struct {
		installers  []string
		heldConnect bool
		want        string
	}{
		{four, true, evidence.RiskQuarantined},
		{four[:2], true, evidence.RiskClean}, // the demo: held pumps 03 and 04 still connect
		{four[:2], false, evidence.RiskQuarantined},
		{four[:1], false, evidence.RiskSuspicious}, // one installer: fleet-correlation needs two
	} {
		if got := state(tc.installers, tc.heldConnect); got != tc.want {
			t.Errorf("installers %v, held pumps connect %v: %s, want %s", tc.installers, tc.heldConnect, got, tc.want)
		}
	}
}
