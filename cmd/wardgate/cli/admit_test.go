package cli_test

import (
	"encoding/json"
	"io"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"net/http/httptest"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/wardgate/wardgate/internal/ocisign"
	"github.com/wardgate/wardgate/store"
)

// admitResult is the part of admit's JSON output the tests read.
type admitResult struct {
	Allow     bool `json:"allow"`
	Evaluated bool `json:"evaluated"`
	Decision  struct {
		Violations []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"violations"`
		Warnings []struct {
			Code string `json:"code"`
		} `json:"warnings"`
	} `json:"decision"`
	LogEntry *struct {
		Index int `json:"index"`
	} `json:"logEntry"`
	Evidence struct {
		Artifact struct {
			Digest         string   `json:"digest"`
			ExpectedDigest string   `json:"expectedDigest"`
			Version        string   `json:"version"`
			DeviceClasses  []string `json:"deviceClasses"`
		} `json:"artifact"`
		Metadata struct {
			Expires *time.Time `json:"expires"`
			TUF     *struct {
				Verified bool   `json:"verified"`
				Reason   string `json:"reason"`
				Detail   string `json:"detail"`
				Target   string `json:"target"`
				Roles    []struct {
					Name    string `json:"name"`
					Version int64  `json:"version"`
				} `json:"roles"`
			} `json:"tuf"`
		} `json:"metadata"`
		Fleet struct {
			RiskState string `json:"riskState"`
			Findings  []struct {
				Code         string    `json:"code"`
				Devices      []string  `json:"devices"`
				Destinations []string  `json:"destinations"`
				FirstSeen    time.Time `json:"firstSeen"`
				LastSeen     time.Time `json:"lastSeen"`
			} `json:"findings"`
		} `json:"fleet"`
	} `json:"evidence"`
	Error string `json:"error"`
}

func (r admitResult) codes() []string {
	var out []string
	for _, v := range r.Decision.Violations {
		out = append(out, v.Code)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// pumpArgs are the arguments of a genuine pump release: both trusted
// signers (the release key and the keyless release identity) and the
// vendor SBOM.
func pumpArgs(version string, extra ...string) []string {
	file := version
	args := []string{"admit", fx + "/firmware/infusion-pump-" + file + ".bin", "--config", "../../../fixtures/trust.yaml",
		"--vendor", "acme-infusion", "--product", "infusion-pump", "--version", version,
		"--signature", fx + "/sig/infusion-pump-" + file + ".bin.sig",
		"--bundle", fx + "/keyless/infusion-pump-" + file + ".bin.v0.3.sigstore.json",
		"--sbom", fx + "/sbom/infusion-pump-" + file + ".cdx.json", "--no-log", "-o", "json"}
	return append(args, extra...)
}

// replace swaps the value of flag in args (the first occurrence).
func replace(args []string, flag, value string) []string {
	out := slices.Clone(args)
	for i := range out {
		if out[i] == flag {
			out[i+1] = value
			return out
		}
	}
	return append(out, flag, value)
}

// without drops a flag and its value.
func without(args []string, flag string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		if args[i] == flag {
			i++
			continue
		}
		out = append(out, args[i])
	}
	return out
}

func admit(t *testing.T, state string, args []string) (int, admitResult) {
	t.Helper()
	code, out, errOut := run(t, append(args, "--state", state)...)
	var r admitResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("exit %d, output is not JSON: %v\nstdout: %s\nstderr: %s", code, err, out, errOut)
	}
	return code, r
}

// Every reason code of the default policy, produced through wardgate admit
// from the fixtures.
func TestAdmitReasonCodes(t *testing.T) {
	sbomDir := fx + "/sbom/"
	cases := []struct {
		name  string
		prior [][]string // admitted first, each must be allowed
		args  []string
		code  int
		want  []string // violation codes, sorted; nil for allow
		warn  string
	}{
		{name: "genuine release", args: pumpArgs("2.4.0"), code: 0},
		{name: "unsigned", args: without(without(pumpArgs("2.4.0"), "--signature"), "--bundle"), code: 1, want: []string{"unsigned"}},
		{name: "untrusted signer", args: replace(replace(pumpArgs("2.4.0"), "--signature", fx+"/tampered/infusion-pump-2.4.0.bin.wrongkey.sig"), "--bundle", fx+"/tampered/infusion-pump-2.4.0.bin.intruder.sigstore.json"), code: 1, want: []string{"untrusted-signer"}},
		{name: "threshold not met", args: without(pumpArgs("2.4.0"), "--bundle"), code: 1, want: []string{"threshold-not-met"}},
		{name: "digest mismatch", args: flipped(), code: 1, want: []string{"digest-mismatch", "untrusted-signer"}},
		{name: "rollback below the minimum", args: replace(pumpArgs("2.3.0"), "--version", "2.2.9"), code: 1, want: []string{"rollback"}},
		{name: "rollback below the installed version", args: pumpArgs("2.4.0", "--device", "pump-007", "--device-class", "infusion-pump", "--installed-version", "2.5.1"), code: 1, want: []string{"rollback"}},
		{name: "wrong device class", args: pumpArgs("2.4.0", "--device", "mri-001", "--device-class", "mri-console"), code: 1, want: []string{"wrong-device-class"}},
		{name: "same version, different digest", prior: [][]string{pumpArgs("2.4.0")}, args: replace(pumpArgs("2.3.0"), "--version", "2.4.0"), code: 1, want: []string{"same-version-different-digest"}},
		{name: "sbom missing", args: without(pumpArgs("2.4.0", "--no-scan"), "--sbom"), code: 1, want: []string{"sbom-missing"}},
		{name: "sbom drift", args: replace(pumpArgs("2.4.0"), "--sbom", sbomDir+"infusion-pump-2.4.0.padded.cdx.json"), code: 1, want: []string{"sbom-drift"}},
		{name: "denied license", args: replace(pumpArgs("2.4.0"), "--sbom", sbomDir+"infusion-pump-2.4.0.agpl.cdx.json"), code: 1, want: []string{"denied-license"}},
		{name: "denied component", args: replace(pumpArgs("2.4.0", "--no-scan"), "--sbom", sbomDir+"infusion-pump-2.4.0.vulnerable.cdx.json"), code: 1, want: []string{"denied-component"}},
		{name: "downgraded component (warn)", prior: [][]string{pumpArgs("2.3.0")}, args: replace(pumpArgs("2.4.0", "--no-scan"), "--sbom", sbomDir+"infusion-pump-2.4.0.downgrade.cdx.json"), code: 0, warn: "downgraded-component"},
		{name: "component hash changed", prior: [][]string{pumpArgs("2.3.0")}, args: replace(pumpArgs("2.4.0", "--no-scan"), "--sbom", sbomDir+"infusion-pump-2.4.0.rebuilt.cdx.json"), code: 1, want: []string{"component-hash-changed"}},
		{name: "metadata expired", args: pumpArgs("2.4.0", "--evaluation-time", time.Now().AddDate(11, 0, 0).UTC().Format(time.RFC3339)), code: 1, want: []string{"metadata-expired"}},
		{name: "metadata from the future", args: pumpArgs("2.4.0", "--evaluation-time", "2026-01-01T00:00:00Z"), code: 1, want: []string{"metadata-future"}},
		{name: "could not evaluate", args: replace(pumpArgs("2.4.0"), "--sbom", sbomDir+"malformed.cdx.json"), code: 2, want: []string{"could-not-evaluate"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			state := t.TempDir()
			for _, p := range tc.prior {
				if code, r := admit(t, state, p); code != 0 {
					t.Fatalf("prior admit: exit %d %+v", code, r)
				}
			}
			code, r := admit(t, state, tc.args)
			if code != tc.code {
				t.Fatalf("exit %d, want %d: %+v", code, tc.code, r)
			}
			if tc.want == nil {
				if !r.Allow || len(r.Decision.Violations) != 0 {
					t.Fatalf("want allow, got %+v", r)
				}
			} else if !slices.Equal(r.codes(), tc.want) {
				t.Fatalf("violations = %v, want %v\n%+v", r.codes(), tc.want, r.Decision.Violations)
			}
			if tc.warn != "" && (len(r.Decision.Warnings) != 1 || r.Decision.Warnings[0].Code != tc.warn) {
				t.Fatalf("warnings = %+v, want %s", r.Decision.Warnings, tc.warn)
			}
		})
	}
}

// flipped is the pump firmware with one byte flipped, with the vendor's
// key-signed bundle (which names the real digest) and the keyless bundle:
// both name another digest, so no signer verifies either.
func flipped() []string {
	args := replace(pumpArgs("2.4.0"), "--signature", fx+"/sig/infusion-pump-2.4.0.bin.sigstore.json")
	args[1] = fx + "/tampered/infusion-pump-2.4.0-flipped.bin"
	return args
}

// A signed, otherwise clean update that fleet telemetry has quarantined is
// denied: the devices that installed it (the 3CX-like scenario of the fleet
// fixture, relabelled with the pump 2.4.0 firmware's digest) fetch a payload
// from a code-hosting site.
func TestAdmitQuarantined(t *testing.T) {
	state := t.TempDir()
	quarantinedFleet(t, state)
	code, r := admit(t, state, pumpArgs("2.4.0"))
	if code != 1 || !slices.Equal(r.codes(), []string{"quarantined"}) {
		t.Fatalf("exit %d, violations %+v", code, r.Decision.Violations)
	}
	if !strings.Contains(r.Decision.Violations[0].Message, "raw.githubusercontent.com") {
		t.Fatalf("message does not name the destination: %s", r.Decision.Violations[0].Message)
	}
	fl := r.Evidence.Fleet
	if fl.RiskState != "quarantined" || len(fl.Findings) == 0 || !slices.Equal(fl.Findings[0].Destinations, []string{"raw.githubusercontent.com"}) ||
		!slices.Equal(fl.Findings[0].Devices, []string{"HOSP-IOT-PUMP-01", "HOSP-IOT-PUMP-02", "HOSP-IOT-PUMP-03", "HOSP-IOT-PUMP-04"}) ||
		fl.Findings[0].FirstSeen.IsZero() || fl.Findings[0].LastSeen.Before(fl.Findings[0].FirstSeen) {
		t.Fatalf("fleet evidence = %+v", fl)
	}
	// The benign pump update of the same fleet stays admissible.
	code, r = admit(t, t.TempDir(), pumpArgs("2.4.0"))
	if code != 0 {
		t.Fatalf("clean state: exit %d %+v", code, r)
	}
}

// A device admitted an update is recorded as having installed it, so its
// telemetry is joined with the update.
func TestAdmitRecordsInstallation(t *testing.T) {
	state := t.TempDir()
	if code, r := admit(t, state, pumpArgs("2.4.0")); code != 0 {
		t.Fatalf("release: %d %+v", code, r)
	}
	if code, r := admit(t, state, pumpArgs("2.4.0", "--device", "HOSP-IOT-PUMP-09", "--device-class", "infusion-pump", "--installed-version", "2.3.0")); code != 0 {
		t.Fatalf("device: %d %+v", code, r)
	}
	db, err := store.Open(t.Context(), state)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ins, err := db.Installations(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) != 1 || ins[0].Device != "HOSP-IOT-PUMP-09" || ins[0].Version != "2.4.0" || ins[0].Product != "infusion-pump" {
		t.Fatalf("installations = %+v", ins)
	}
}

// An image evaluated with --attach carries its signed verdict in the
// registry, where `wardgate verify attestation --image` (and cosign) find it.
func TestAdmitAttachToImage(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	signer, err := ocisign.LoadSigner(fx + "/keys/acme-infusion.key")
	if err != nil {
		t.Fatal(err)
	}
	tag := host + "/acme/pump-agent:2.4.0"
	d, err := ocisign.PushSignedImage(t.Context(), tag, signer)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := filepath.Abs(fx + "/keys/acme-infusion.pub")
	dir := t.TempDir()
	trustPath := filepath.Join(dir, "trust.yaml")
	if err := os.WriteFile(trustPath, []byte("version: 1\nsbom:\n  required: false\nvendors:\n  acme-infusion:\n    products:\n      pump-agent:\n        device_classes: [infusion-pump]\n        authorities:\n          keys:\n            - path: "+pub+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	t.Setenv("WARDGATE_KEY_PASSWORD", "test-only")
	code, out, errOut := run(t, "admit", tag, "--config", trustPath, "--vendor", "acme-infusion", "--product", "pump-agent", "--version", "2.4.0",
		"--no-scan", "--attach", "--state", state, "-o", "json")
	if code != 0 {
		t.Fatalf("admit: %d %s %s", code, out, errOut)
	}
	code, out, errOut = run(t, "verify", "attestation", "--image", d.String(), "--type", "https://slsa.dev/verification_summary/v1",
		"--key", filepath.Join(state, "signing.pub"), "-o", "json")
	if code != 0 || !strings.Contains(out, `"verified":true`) {
		t.Fatalf("verify attestation: %d %s %s", code, out, errOut)
	}
	// The vendor's key is not the service key: the verdict is not the vendor's.
	if code, _, _ := run(t, "verify", "attestation", "--image", d.String(), "--type", "https://slsa.dev/verification_summary/v1", "--key", pub); code != 1 {
		t.Fatalf("vendor key accepted the service's verdict: exit %d", code)
	}
}

// TestAdmitBadConfigurationNamesTheRelease: a deny before the pipeline ran
// names the release as the flags give it, not "/  ()".
func TestAdmitBadConfigurationNamesTheRelease(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	args := []string{"admit", fx + "/firmware/infusion-pump-2.4.0.bin", "--config", filepath.Join(t.TempDir(), "missing.yaml"),
		"--vendor", "acme-infusion", "--product", "infusion-pump", "--version", "2.4.0", "--state", state}
	code, out, _ := run(t, args...)
	if code != 2 || !strings.HasPrefix(out, "DENY   acme-infusion/infusion-pump 2.4.0: could not evaluate\n  [could-not-evaluate] ") {
		t.Fatalf("exit %d: %q", code, out)
	}
	// --device-class without --device fails before anything runs: no
	// state directory, no scan, no log.
	args = []string{"admit", fx + "/firmware/infusion-pump-2.4.0.bin", "--config", "../../../fixtures/trust.yaml",
		"--vendor", "acme-infusion", "--product", "infusion-pump", "--version", "2.4.0", "--state", state, "--device-class", "infusion-pump"}
	code, out, _ = run(t, args...)
	if code != 2 || !strings.Contains(out, "[could-not-evaluate] --device-class, --installed-version and --segment describe one device: give its ID with --device") {
		t.Fatalf("exit %d: %q", code, out)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Fatalf("state directory made before the flags were checked: %v", err)
	}
}
