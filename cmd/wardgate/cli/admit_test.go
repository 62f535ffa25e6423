package cli_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"
)

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
		{name: "metadata expired", args: pumpArgs("2.4.0", "--evaluation-time", time.Now().Add(200*24*time.Hour).UTC().Format(time.RFC3339)), code: 1, want: []string{"metadata-expired"}},
		{name: "metadata from the future", args: pumpArgs("2.4.0", "--evaluation-time", time.Now().Add(-24*time.Hour).UTC().Format(time.RFC3339)), code: 1, want: []string{"metadata-future"}},
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
