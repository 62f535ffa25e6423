package egress_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

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
	cases := []struct {
		name  string
		rel   fleet.Release
		state string
		codes []egress.Code
		want  []want
	}{
		{"benign pump update", fleet.PumpBenign, evidence.RiskClean, []egress.Code{}, nil},
		{"benign mri update and large upload to vendor cloud", fleet.MRIBenign, evidence.RiskClean, []egress.Code{}, nil},
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
	if len(r.Findings) != countFor(r, fleet.HVACSolarWind.Digest())+countFor(r, fleet.Pump3CX.Digest())+countFor(r, fleet.MRICCleaner.Digest()) {
		t.Errorf("findings outside the compromised updates")
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
