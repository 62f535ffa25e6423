package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/fixtures/fleet"
)

const fleetFx = "../../../fixtures/fleet/testdata"

func TestEgressHunt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.jsonl")
	in := `{"Timestamp":"2026-03-02T10:05:00Z","DeviceName":"HOSP-IOT-PUMP-01","ActionType":"ConnectionSuccess","RemoteIP":"52.1.1.1","RemoteUrl":"up.example.com","RemoteIPType":"Public","SentBytes":6000000}
{"Timestamp":"2026-03-02T10:06:00Z","DeviceName":"HOSP-IOT-PUMP-01","ActionType":"ConnectionSuccess","RemoteIP":"52.1.1.1","RemoteUrl":"up.example.com","RemoteIPType":"Public","SentBytes":1}
{oops
`
	if err := os.WriteFile(path, []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, "egress", "hunt", "--rule", "exfil-volume", "-o", "json", path)
	if code != 0 || out != `{"Timestamp":"2026-03-02T10:00:00Z","DeviceName":"HOSP-IOT-PUMP-01","RemoteUrl":"up.example.com","TotalBytesSent":6000001,"ConnectionCount":2}`+"\n" {
		t.Fatalf("exit %d, out %q", code, out)
	}
	if errOut != "wardgate: egress hunt: defender-json: 3 lines, 2 events, 0 skipped, 1 malformed (first at lines [3])\n" {
		t.Errorf("stderr %q", errOut)
	}
	code, out, _ = run(t, "egress", "hunt", "--prefix", "HOSP-IOT-MRI-", path)
	if code != 0 || out != "Timestamp  DeviceName  RemoteUrl  TotalBytesSent  ConnectionCount\n" {
		t.Errorf("exit %d, out %q", code, out)
	}
	for _, args := range [][]string{
		{"egress", "hunt", "--rule", "nope", path},
		{"egress", "hunt", filepath.Join(t.TempDir(), "missing")},
		{"egress", "hunt", "--format", "xml", path},
		{"egress", "hunt"},
	} {
		if code, _, _ := run(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

// egress hunt --inventory names Zeek's devices by address; --prefix ""
// selects every device (it used to mean the default prefix).
func TestEgressHuntInventory(t *testing.T) {
	dir := t.TempDir()
	zeek := filepath.Join(dir, "conn.json")
	inv := filepath.Join(dir, "inv.csv")
	if err := os.WriteFile(zeek, []byte(`{"ts":1772446200.1234567891,"id.orig_h":"10.20.1.11","id.orig_p":50000,"id.resp_h":"198.51.100.7","id.resp_p":443,"proto":"tcp","duration":13.734161999999998,"orig_bytes":6000000,"resp_bytes":0,"conn_state":"SF"}
{"ts":1772446300.5,"id.orig_h":"10.99.0.5","id.orig_p":50000,"id.resp_h":"198.51.100.7","id.resp_p":443,"orig_bytes":7e6,"conn_state":"SF"}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(inv, []byte("name,addresses,class,segment\nHOSP-IOT-PUMP-01,10.20.1.11,infusion-pump,clinical\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, "egress", "hunt", "--inventory", inv, "-o", "json", zeek)
	if code != 0 || errOut != "" || out != `{"Timestamp":"2026-03-02T10:00:00Z","DeviceName":"HOSP-IOT-PUMP-01","RemoteUrl":"","TotalBytesSent":6000000,"ConnectionCount":1}`+"\n" {
		t.Fatalf("exit %d, out %q, stderr %q", code, out, errOut)
	}
	code, out, _ = run(t, "egress", "hunt", "--inventory", inv, "--prefix", "", "-o", "json", zeek)
	if code != 0 || out != `{"Timestamp":"2026-03-02T10:00:00Z","DeviceName":"10.99.0.5","RemoteUrl":"","TotalBytesSent":7000000,"ConnectionCount":1}`+"\n"+
		`{"Timestamp":"2026-03-02T10:00:00Z","DeviceName":"HOSP-IOT-PUMP-01","RemoteUrl":"","TotalBytesSent":6000000,"ConnectionCount":1}`+"\n" {
		t.Fatalf("--prefix \"\": exit %d, out %q", code, out)
	}
	if code, _, errOut := run(t, "egress", "hunt", "--inventory", filepath.Join(dir, "missing.csv"), zeek); code != 2 || !strings.Contains(errOut, "missing.csv") {
		t.Errorf("missing inventory: exit %d, stderr %q", code, errOut)
	}
}

func TestEgressIngestFindings(t *testing.T) {
	state := t.TempDir()
	code, out, errOut := run(t, "egress", "ingest", "--inventory", filepath.Join(fleetFx, "inventory.json"), "--installs", filepath.Join(fleetFx, "installations.json"),
		"--state", state, filepath.Join(fleetFx, "defender.jsonl"))
	if code != 0 || !strings.Contains(out, "0 malformed; 9533 stored, 0 not in the inventory") {
		t.Fatalf("ingest: exit %d\n%s%s", code, out, errOut)
	}
	// Incremental: the same file again stores nothing.
	if code, out, _ := run(t, "egress", "ingest", "--state", state, filepath.Join(fleetFx, "defender.jsonl")); code != 0 || !strings.HasSuffix(out, "already ingested, skipped\n") {
		t.Fatalf("re-ingest: exit %d %q", code, out)
	}
	trustFile := manifestTrust(t, filepath.Join(fleetFx, "manifest-signing.pub"))
	findings := func(args ...string) (int, string) {
		t.Helper()
		base := []string{"egress", "findings", "--state", state, "--config", filepath.Join(fleetFx, "config.json"), "--trust", trustFile,
			"--manifest", filepath.Join(fleetFx, "manifest-infusion-pump-2.4.0.json"), "--manifest", filepath.Join(fleetFx, "manifest-infusion-pump-2.4.1.json")}
		code, out, _ := run(t, append(base, args...)...)
		return code, out
	}
	code, out = findings("--update", fleet.Pump3CX.Digest())
	if code != 1 {
		t.Fatalf("3CX update: exit %d\n%s", code, out)
	}
	golden(t, "egress-findings-3cx", out)
	// The short digest the table prints names the same update.
	short := fleet.Pump3CX.Digest()[:19]
	if !strings.Contains(out, short+" ") {
		t.Fatalf("the table does not print %s", short)
	}
	if code, out2 := findings("--update", short); code != 1 || out2 != out {
		t.Fatalf("--update %s: exit %d\n%s", short, code, out2)
	}
	if code, _ := findings("--update", "sha256:abc"); code != 2 {
		t.Fatalf("a 3-digit prefix: exit %d, want 2", code)
	}

	code, out = findings("--update", fleet.HVACSolarWind.Digest(), "-o", "json")
	var rep egress.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 1 {
		t.Fatalf("exit %d, %v", code, err)
	}
	if u := rep.Updates[0]; u.State != "quarantined" || strings.Join(u.Affected, ",") != "HOSP-IOT-HVAC-01,HOSP-IOT-HVAC-02,HOSP-IOT-HVAC-03" || len(u.Installed) != 3 {
		t.Errorf("SolarWinds update: %+v", u)
	}
	if code, out = findings("--update", fleet.PumpBenign.Digest()); code != 0 || !strings.Contains(out, "clean") || !strings.Contains(out, "0 finding(s)") {
		t.Errorf("benign update: exit %d\n%s", code, out)
	}
	if code, _ = findings("--update", "sha256:0000000000000000000000000000000000000000000000000000000000000000"); code != 2 {
		t.Errorf("unknown update: exit %d, want 2", code)
	}
	if code, _ = findings(); code != 1 {
		t.Errorf("all findings: exit %d, want 1", code)
	}
	if code, _, _ := run(t, "egress", "findings", "--state", t.TempDir()); code != 2 {
		t.Errorf("empty state: exit %d, want 2", code)
	}
}

// manifestTrust is a trust configuration in which key is the pump vendor's
// authority (the key the fleet fixture signs its egress manifests with).
func manifestTrust(t *testing.T, key string) string {
	t.Helper()
	abs, err := filepath.Abs(key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "trust.yaml")
	body := "version: 1\nvendors:\n  acme-infusion:\n    products:\n      infusion-pump:\n        device_classes: [infusion-pump]\n        authorities:\n          keys:\n            - path: " + abs + "\n"
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Issue 12, finding 5: an egress manifest silences expected-egress
// findings, so only one the vendor's authorities signed is used: an
// unsigned one, one signed by a key the trust configuration does not give
// the product, or any without --trust is refused.
func TestEgressFindingsManifestMustBeSigned(t *testing.T) {
	state := t.TempDir()
	if code, out, errOut := run(t, "egress", "ingest", "--inventory", filepath.Join(fleetFx, "inventory.json"), "--installs", filepath.Join(fleetFx, "installations.json"),
		"--state", state, filepath.Join(fleetFx, "defender.jsonl")); code != 0 {
		t.Fatalf("ingest: %d %s %s", code, out, errOut)
	}
	signed := filepath.Join(fleetFx, "manifest-infusion-pump-2.4.1.json")
	b, err := os.ReadFile(signed)
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]any
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatal(err)
	}
	env["signatures"] = []any{}
	ub, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	unsigned := filepath.Join(t.TempDir(), "unsigned.json")
	if err := os.WriteFile(unsigned, ub, 0o644); err != nil {
		t.Fatal(err)
	}
	good := manifestTrust(t, filepath.Join(fleetFx, "manifest-signing.pub"))
	other := manifestTrust(t, fx+"/keys/acme-infusion.pub")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no --trust", []string{"--manifest", signed}, "--manifest needs --trust trust.yaml"},
		{"unsigned", []string{"--trust", good, "--manifest", unsigned}, "not a signed envelope (DSSE): an unsigned manifest is refused"},
		{"signed by another key", []string{"--trust", other, "--manifest", signed}, "no authority of the product sha256:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(t, append([]string{"egress", "findings", "--state", state, "--config", filepath.Join(fleetFx, "config.json")}, tc.args...)...)
			if code != 2 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q, want %q\n%s", code, errOut, tc.want, out)
			}
		})
	}
	if code, out, errOut := run(t, "egress", "findings", "--state", state, "--config", filepath.Join(fleetFx, "config.json"), "--trust", good, "--manifest", signed, "-o", "json"); code != 1 {
		t.Fatalf("signed manifest: exit %d %s %s", code, out, errOut)
	}
}

// A list of manifests in the detection configuration is unsigned, so it is
// refused wherever a configuration is read (egress findings --config, and
// the state directory's config.json that admit and serve read), never used
// to silence findings.
func TestEgressConfigManifestsRefused(t *testing.T) {
	t.Setenv("WARDGATE_KEY_PASSWORD", "test-only")
	state := t.TempDir()
	quarantinedFleet(t, state)
	b, err := os.ReadFile(filepath.Join(state, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["manifests"] = []any{map[string]any{"digest": fileDigest(t, fx+"/firmware/infusion-pump-2.4.0.bin"), "destinations": []string{"raw.githubusercontent.com"}}}
	if b, err = json.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
	withManifests := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(withManifests, b, 0o644); err != nil {
		t.Fatal(err)
	}
	const want = "manifests: an egress manifest silences findings, so only one the vendor signed is used"
	if code, out, errOut := run(t, "egress", "findings", "--state", state, "--config", withManifests); code != 2 || !strings.Contains(errOut, want) {
		t.Fatalf("egress findings: exit %d, stderr %q\n%s", code, errOut, out)
	}
	if err := os.WriteFile(filepath.Join(state, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, append(pumpArgs("2.4.0", "--no-scan"), "--state", state)...)
	if code != 2 || !strings.Contains(out+errOut, want) || strings.Contains(out, `"allow": true`) {
		t.Fatalf("admit: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
}
