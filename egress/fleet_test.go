package egress_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/evidence"
	"github.com/wardgate/wardgate/fixtures/fleet"
)

const fleetDir = "../fixtures/fleet/testdata"

func open(t testing.TB, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// analyzeFleet runs every detection over the fleet fixture.
func analyzeFleet(t testing.TB) egress.Report {
	t.Helper()
	inv, err := egress.ReadInventory(open(t, filepath.Join(fleetDir, "inventory.json")))
	if err != nil {
		t.Fatal(err)
	}
	ins, err := egress.ReadInstallations(open(t, filepath.Join(fleetDir, "installations.json")))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := egress.ReadConfig(open(t, filepath.Join(fleetDir, "config.json")))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []fleet.Release{fleet.PumpBenign, fleet.Pump3CX} {
		m, err := egress.ReadEgressManifest(open(t, filepath.Join(fleetDir, "manifest-"+r.Product+"-"+r.Version+".json")))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Manifests = append(cfg.Manifests, m...)
	}
	a, err := egress.NewAnalyzer(inv, ins, cfg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := egress.Scan(open(t, filepath.Join(fleetDir, "defender.jsonl")), func(ev *egress.Event) error { a.Add(ev); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if st.Malformed != 0 || st.Format != egress.FormatDefenderJSON {
		t.Fatalf("fixture scan: %v", st)
	}
	return a.Report()
}

type want struct {
	code    egress.Code
	devices []string
	dest    string
}

func TestFleetScenarios(t *testing.T) {
	r := analyzeFleet(t)
	if r.Unresolved != 0 {
		t.Errorf("unresolved events: %d", r.Unresolved)
	}
	for _, f := range r.Findings {
		t.Logf("%s %s %s %v %v", f.Code, f.Version, f.Severity, f.Devices, f.Destinations)
	}
	targets := fleet.ShadowHammerTargets
	cases := []struct {
		name  string
		rel   fleet.Release
		state string
		codes []egress.Code
		want  []want
	}{
		{"benign pump update", fleet.PumpBenign, evidence.RiskClean, []egress.Code{}, nil},
		{"benign mri update and large upload to vendor cloud", fleet.MRIBenign, evidence.RiskClean, []egress.Code{}, nil},
		{"benign monitor update to half the class while the class moves to a new endpoint", fleet.MonitorBenign, evidence.RiskClean, []egress.Code{}, nil},
		{"benign CT update: larger uploads to the vendor cloud of the baseline", fleet.CTBenign, evidence.RiskClean, []egress.Code{}, nil},
		{"SolarWinds: dormant then beaconing to DGA subdomains", fleet.HVACSolarWind, evidence.RiskQuarantined,
			[]egress.Code{egress.CodeBeaconing, egress.CodeFleetCorrelation, egress.CodeNewDestination},
			[]want{{egress.CodeFleetCorrelation, []string{"HOSP-IOT-HVAC-01", "HOSP-IOT-HVAC-02", "HOSP-IOT-HVAC-03"}, "avsvmcloud.com"},
				{egress.CodeBeaconing, []string{"HOSP-IOT-HVAC-01", "HOSP-IOT-HVAC-02", "HOSP-IOT-HVAC-03"}, "avsvmcloud.com"}}},
		{"3CX: payload from a code-hosting site", fleet.Pump3CX, evidence.RiskQuarantined,
			[]egress.Code{egress.CodeExpectedEgress, egress.CodeFleetCorrelation, egress.CodeNewDestination},
			[]want{{egress.CodeFleetCorrelation, []string{"HOSP-IOT-PUMP-01", "HOSP-IOT-PUMP-02", "HOSP-IOT-PUMP-03", "HOSP-IOT-PUMP-04"}, "raw.githubusercontent.com"},
				{egress.CodeExpectedEgress, []string{"HOSP-IOT-PUMP-01", "HOSP-IOT-PUMP-02", "HOSP-IOT-PUMP-03", "HOSP-IOT-PUMP-04"}, "raw.githubusercontent.com"}}},
		{"CCleaner: posts to a fixed IP", fleet.MRICCleaner, evidence.RiskQuarantined,
			[]egress.Code{egress.CodeBeaconing, egress.CodeFleetCorrelation, egress.CodeNewDestination},
			[]want{{egress.CodeFleetCorrelation, []string{"HOSP-IOT-MRI-01", "HOSP-IOT-MRI-02", "HOSP-IOT-MRI-03"}, fleet.CCleanerIP}}},
		{"ShadowHammer: rolled out to every monitor, calls home from the targeted ones", fleet.MonitorShadowHammer, evidence.RiskQuarantined,
			[]egress.Code{egress.CodeBeaconing, egress.CodeFleetCorrelation, egress.CodeNewDestination},
			[]want{{egress.CodeFleetCorrelation, targets, fleet.ShadowHammerC2}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u, ok := r.Risk(tc.rel.Digest())
			if !ok {
				t.Fatal("update not in report")
			}
			if u.State != tc.state || !slices.Equal(u.Codes, tc.codes) {
				t.Errorf("state %s codes %v, want %s %v", u.State, u.Codes, tc.state, tc.codes)
			}
			for _, w := range tc.want {
				found := false
				for _, f := range r.Findings {
					if f.Update == tc.rel.Digest() && f.Code == w.code && slices.Equal(f.Devices, w.devices) && slices.Equal(f.Destinations, []string{w.dest}) {
						found = true
						if f.Explanation == "" || !strings.Contains(f.Explanation, w.dest) {
							t.Errorf("%s: explanation %q does not name %s", w.code, f.Explanation, w.dest)
						}
					}
				}
				if !found {
					t.Errorf("no %s finding for %v -> %s", w.code, w.devices, w.dest)
				}
			}
			fl := r.Fleet(tc.rel.Digest())
			if fl.RiskState != tc.state || len(fl.Findings) != countFor(r, tc.rel.Digest()) {
				t.Errorf("evidence fleet %+v", fl)
			}
		})
	}
	// Nothing is attributed to a benign update; what is not attributed is
	// a notice about a class: the look-alikes.
	type notice struct{ class, dest string }
	var notices []notice
	for _, f := range r.Findings {
		if f.Update == "" {
			if f.Code != egress.CodeFleetChange || f.Severity != egress.SeverityNotice {
				t.Errorf("unattributed %s finding: %+v", f.Code, f)
			}
			notices = append(notices, notice{f.Class, f.Destinations[0]})
			continue
		}
		for _, rel := range fleet.Releases {
			if rel.Digest() == f.Update && rel.Compromised == "" {
				t.Errorf("finding against benign %s %s: %+v", rel.Product, rel.Version, f)
			}
		}
	}
	wantNotices := []notice{{"ct-scanner", "medsiem.net"}, {"ct-scanner", "radcloud.io"}, {"hvac-controller", "medsiem.net"}, {"infusion-pump", "medsiem.net"},
		{"mri-console", "medsiem.net"}, {"patient-monitor", "medsiem.net"}, {"patient-monitor", "vitalsync-cloud.eu"}}
	slices.SortFunc(notices, func(x, y notice) int { return strings.Compare(x.class+" "+x.dest, y.class+" "+y.dest) })
	if !slices.Equal(notices, wantNotices) {
		t.Errorf("fleet-change notices %v, want %v", notices, wantNotices)
	}
}

// TestCaughtBeforeNinetyPercent replays the fleet hour by hour, as the
// gate would see it, and finds when each compromised update is first
// quarantined: by then less than 90% of its class may have installed it.
// The shares are logged (go test -run CaughtBefore -v).
func TestCaughtBeforeNinetyPercent(t *testing.T) {
	inv, err := egress.ReadInventory(open(t, filepath.Join(fleetDir, "inventory.json")))
	if err != nil {
		t.Fatal(err)
	}
	ins, err := egress.ReadInstallations(open(t, filepath.Join(fleetDir, "installations.json")))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := egress.ReadConfig(open(t, filepath.Join(fleetDir, "config.json")))
	if err != nil {
		t.Fatal(err)
	}
	var evs []egress.Event
	if _, err := egress.Scan(open(t, filepath.Join(fleetDir, "defender.jsonl")), func(ev *egress.Event) error { evs = append(evs, *ev); return nil }); err != nil {
		t.Fatal(err)
	}
	stateAt := func(digest string, at time.Time) string {
		var known []egress.Installation
		for _, in := range ins {
			if in.Time.Before(at) {
				known = append(known, in)
			}
		}
		a, err := egress.NewAnalyzer(inv, known, cfg)
		if err != nil {
			t.Fatal(err)
		}
		for i := range evs {
			if evs[i].Time.Before(at) {
				a.Add(&evs[i])
			}
		}
		r := a.Report()
		u, _ := r.Risk(digest)
		return u.State
	}
	for _, rel := range fleet.Releases {
		if rel.Compromised == "" {
			continue
		}
		var first time.Time
		var class string
		for _, in := range ins {
			if in.Digest == rel.Digest() && (first.IsZero() || in.Time.Before(first)) {
				first = in.Time
				d, _ := inv.Device(in.Device)
				class = d.Class
			}
		}
		// Six-hour steps, then hours back from the first quarantined step.
		end := fleet.Start.AddDate(0, 0, fleet.Days)
		at := first.Truncate(time.Hour)
		for ; at.Before(end) && stateAt(rel.Digest(), at) != evidence.RiskQuarantined; at = at.Add(6 * time.Hour) {
		}
		if !at.Before(end) {
			t.Errorf("%s %s (%s) never quarantined", rel.Product, rel.Version, rel.Compromised)
			continue
		}
		for stateAt(rel.Digest(), at.Add(-time.Hour)) == evidence.RiskQuarantined {
			at = at.Add(-time.Hour)
		}
		var size, installed int
		for _, d := range inv.Devices {
			if d.Class != class {
				continue
			}
			size++
			if slices.ContainsFunc(ins, func(in egress.Installation) bool {
				return in.Device == d.Name && in.Digest == rel.Digest() && in.Time.Before(at)
			}) {
				installed++
			}
		}
		share := float64(installed) / float64(size)
		t.Logf("%-12s %s %s: quarantined at %s (%.1f days after its first install), when %d of %d %s devices (%.0f%%) had installed it",
			rel.Compromised, rel.Product, rel.Version, at.Format(time.RFC3339), at.Sub(first).Hours()/24, installed, size, class, 100*share)
		if share >= 0.9 {
			t.Errorf("%s caught after %.0f%% of the class installed it", rel.Compromised, 100*share)
		}
	}
}

func countFor(r egress.Report, digest string) int {
	n := 0
	for _, f := range r.Findings {
		if f.Update == digest {
			n++
		}
	}
	return n
}

func TestFleetFixtureRegenerates(t *testing.T) {
	dir := t.TempDir()
	if err := fleet.Generate(dir, fleet.DefaultSeed); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"defender.jsonl", "inventory.json", "installations.json", "config.json"} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(fleetDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s differs from the committed fixture: run go run ./fixtures/fleet/gen", name)
		}
	}
}

// BenchmarkAnalyzeFleet is the whole-history analysis of the fleet
// fixture (9,533 events, 34 devices, 8 updates): what the gate's risk
// cache runs every TTL, events already in memory.
func BenchmarkAnalyzeFleet(b *testing.B) {
	inv, err := egress.ReadInventory(open(b, filepath.Join(fleetDir, "inventory.json")))
	if err != nil {
		b.Fatal(err)
	}
	ins, err := egress.ReadInstallations(open(b, filepath.Join(fleetDir, "installations.json")))
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := egress.ReadConfig(open(b, filepath.Join(fleetDir, "config.json")))
	if err != nil {
		b.Fatal(err)
	}
	var evs []egress.Event
	if _, err := egress.Scan(open(b, filepath.Join(fleetDir, "defender.jsonl")), func(ev *egress.Event) error { evs = append(evs, *ev); return nil }); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		a, err := egress.NewAnalyzer(inv, ins, cfg)
		if err != nil {
			b.Fatal(err)
		}
		for i := range evs {
			a.Add(&evs[i])
		}
		if r := a.Report(); len(r.Findings) == 0 {
			b.Fatal("no findings")
		}
	}
	b.ReportMetric(float64(len(evs))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
