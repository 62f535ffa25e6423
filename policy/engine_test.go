package policy_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/evidence"
	"github.com/wardgate/wardgate/policy"
	"github.com/wardgate/wardgate/trust"
)

func loadTrust(t testing.TB, path string) *trust.Config {
	t.Helper()
	c, err := trust.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func typical(t testing.TB) evidence.Evidence {
	t.Helper()
	ev, err := evidence.Decode(bytes.NewReader(readFile(t, "testdata/typical.json")))
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func newEngine(t testing.TB, opts ...policy.Option) *policy.Engine {
	t.Helper()
	e, err := policy.New(t.Context(), append([]policy.Option{policy.WithTrust(loadTrust(t, "testdata/trust.yaml"))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func evaluate(t testing.TB, e *policy.Engine, ev evidence.Evidence) policy.Decision {
	t.Helper()
	d, err := e.Evaluate(t.Context(), ev)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// writeFiles writes name -> content under a new temporary directory.
func writeFiles(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const fridayRule = `package wardgate.rules.hospital

deny contains {
	"code": "change-freeze",
	"severity": "high",
	"message": sprintf("%s updates are frozen during the audit", [input.artifact.vendor]),
} if {
	input.artifact.vendor == data.freeze.vendor
}
`

func TestUserPolicyDirAddsRule(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"hospital.rego": strings.ReplaceAll(fridayRule, "data.freeze.vendor", `"acme-infusion"`),
		"hospital_test.rego": `package wardgate.rules.hospital_test
test_ignored_by_engine if false
`,
	})
	plain := newEngine(t)
	e := newEngine(t, policy.WithPolicyDir(dir))
	d := evaluate(t, e, typical(t))
	want := []policy.Violation{{Code: "change-freeze", Rule: "hospital", Severity: "high", Message: "acme-infusion updates are frozen during the audit"}}
	if d.Allow || !reflect.DeepEqual(d.Violations, want) {
		t.Fatalf("decision %+v", d)
	}
	if d.PolicyDigest == plain.PolicyDigest() || d.DataDigest != plain.DataDigest() {
		t.Fatalf("digests: user %s %s, plain %s %s", d.PolicyDigest, d.DataDigest, plain.PolicyDigest(), plain.DataDigest())
	}
	if got := e.Modules(); got[len(got)-1] != filepath.Join(dir, "hospital.rego") || len(got) != len(plain.Modules())+1 {
		t.Fatalf("modules %v", got)
	}
}

const versionOverride = `package wardgate.rules.version

# Devices in this hospital are reflashed by hand: no rollback rule.
deny := set()
`

const versionOverrideDeclared = `# METADATA
# custom:
#   override: true
package wardgate.rules.version

deny := set()
`

func rollbackEvidence(t testing.TB) evidence.Evidence {
	ev := typical(t)
	ev.Device.InstalledVersion = "9.0.0"
	return ev
}

func TestOverrideNeedsPermission(t *testing.T) {
	dir := writeFiles(t, map[string]string{"version.rego": versionOverride})
	_, err := policy.New(t.Context(), policy.WithTrust(loadTrust(t, "testdata/trust.yaml")), policy.WithPolicyDir(dir))
	var oe *policy.OverrideError
	if !errors.As(err, &oe) || oe.Package != "wardgate.rules.version" || oe.File != filepath.Join(dir, "version.rego") {
		t.Fatalf("err = %v, want OverrideError", err)
	}
	want := filepath.Join(dir, "version.rego") + ": package wardgate.rules.version replaces a default policy; declare it in the module (a package METADATA block with custom: {override: true}) or set allow_override: true in the trust configuration"
	if err.Error() != want {
		t.Fatalf("err:\n got %s\nwant %s", err, want)
	}
}

func TestOverrideDeclaredInModule(t *testing.T) {
	if d := evaluate(t, newEngine(t), rollbackEvidence(t)); !reflect.DeepEqual(d.Codes(), []policy.Code{policy.CodeRollback}) {
		t.Fatalf("default engine: %v", d.Codes())
	}
	dir := writeFiles(t, map[string]string{"version.rego": versionOverrideDeclared})
	d := evaluate(t, newEngine(t, policy.WithPolicyDir(dir)), rollbackEvidence(t))
	if !d.Allow {
		t.Fatalf("override did not replace the version rules: %+v", d)
	}
}

func TestOverrideAllowedByTrustConfig(t *testing.T) {
	body := strings.Replace(string(readFile(t, "testdata/trust.yaml")), "version: 1\n", "version: 1\nallow_override: true\n", 1)
	cfgDir := writeFiles(t, map[string]string{"trust.yaml": body})
	if err := os.Symlink(filepath.Join(mustAbs(t, "testdata"), "keys"), filepath.Join(cfgDir, "keys")); err != nil {
		t.Fatal(err)
	}
	dir := writeFiles(t, map[string]string{"version.rego": versionOverride})
	e, err := policy.New(t.Context(), policy.WithTrust(loadTrust(t, filepath.Join(cfgDir, "trust.yaml"))), policy.WithPolicyDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	if d := evaluate(t, e, rollbackEvidence(t)); !d.Allow {
		t.Fatalf("decision %+v", d)
	}
}

func mustAbs(t testing.TB, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// writeBundle writes an OPA bundle (.tar.gz) with the given files.
func writeBundle(t testing.TB, files map[string]string) string {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, content := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "bundle.tar.gz")
	if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBundleAddsRuleAndData(t *testing.T) {
	b := writeBundle(t, map[string]string{
		"/hospital/policy.rego": fridayRule,
		"/freeze/data.json":     `{"vendor": "acme-infusion"}`,
	})
	e := newEngine(t, policy.WithBundle(b))
	d := evaluate(t, e, typical(t))
	if d.Allow || !reflect.DeepEqual(d.Codes(), []policy.Code{"change-freeze"}) {
		t.Fatalf("decision %+v", d)
	}
	if d.DataDigest == newEngine(t).DataDigest() {
		t.Fatal("bundle data did not change the data digest")
	}
}

func TestBundleOverrideNeedsPermission(t *testing.T) {
	b := writeBundle(t, map[string]string{"/x/version.rego": versionOverride})
	_, err := policy.New(t.Context(), policy.WithBundle(b))
	var oe *policy.OverrideError
	if !errors.As(err, &oe) || oe.File != b+":/x/version.rego" {
		t.Fatalf("err = %v", err)
	}
}

func TestBundleReservedData(t *testing.T) {
	b := writeBundle(t, map[string]string{"/trust/data.json": `{"vendors": {}}`})
	_, err := policy.New(t.Context(), policy.WithBundle(b))
	if err == nil || err.Error() != "bundle "+b+": data.trust is reserved; bundle data may not set it" {
		t.Fatalf("err = %v", err)
	}
}

func TestCompileErrorNamesFileAndLine(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		line      int
		msg       string
	}{
		{"parse", "package wardgate.rules.bad\n\ndeny contains x if {\n\tx :=\n}\n", 5, "rego_parse_error: unexpected } token"},
		{"type", "package wardgate.rules.bad\n\ndeny contains x if {\n\tx := no_such_function(1)\n}\n", 4, "rego_type_error: undefined function no_such_function"},
		{"network", "package wardgate.rules.bad\n\ndeny contains x if {\n\tx := http.send({\"method\": \"get\", \"url\": \"http://example.com\"})\n}\n", 4, "rego_type_error: undefined function http.send"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{"bad.rego": tc.src})
			_, err := policy.New(t.Context(), policy.WithPolicyDir(dir))
			var ce *policy.CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want CompileError", err)
			}
			file := filepath.Join(dir, "bad.rego")
			if ce.File != file || ce.Line != tc.line || !strings.HasPrefix(ce.Message, tc.msg) {
				t.Fatalf("CompileError %+v, want %s:%d: %s", ce, file, tc.line, tc.msg)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("%s:%d: %s", file, tc.line, tc.msg)) {
				t.Fatalf("error text %q does not name file:line", err)
			}
		})
	}
}

func TestSlowPolicyTimesOut(t *testing.T) {
	dir := writeFiles(t, map[string]string{"slow.rego": `package wardgate.rules.slow

deny contains {"code": "never", "severity": "low", "message": "never"} if {
	some i in numbers.range(1, 100000)
	some j in numbers.range(1, 100000)
	i * j == -1
}
`})
	e := newEngine(t, policy.WithPolicyDir(dir), policy.WithTimeout(200*time.Millisecond))
	start := time.Now()
	_, err := e.Evaluate(t.Context(), typical(t))
	if !errors.Is(err, policy.ErrTimeout) || err.Error() != "policy: evaluation timed out after 200ms" {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("timeout took %s", el)
	}
	d := policy.CouldNotEvaluate(err)
	want := []policy.Violation{{Code: policy.CodeCouldNotEvaluate, Rule: "engine", Message: "policy: evaluation timed out after 200ms", Severity: "critical"}}
	if d.Allow || !reflect.DeepEqual(d.Violations, want) {
		t.Fatalf("fail-closed decision %+v", d)
	}
}

func TestMalformedViolation(t *testing.T) {
	dir := writeFiles(t, map[string]string{"sloppy.rego": `package wardgate.rules.sloppy

deny contains {"code": "sloppy", "message": "no severity"}
`})
	_, err := newEngine(t, policy.WithPolicyDir(dir)).Evaluate(t.Context(), typical(t))
	if !errors.Is(err, policy.ErrMalformedDecision) || err.Error() != `policy: malformed decision: rule set "sloppy" reported sloppy with severity ""; want critical, high, medium or low` {
		t.Fatalf("err = %v", err)
	}
}

func TestEnforcementOff(t *testing.T) {
	body := strings.Replace(string(readFile(t, "testdata/trust.yaml")), "rules:\n", "rules:\n  sbom-missing: off\n  rollback: warn\n", 1)
	dir := writeFiles(t, map[string]string{"trust.yaml": body})
	if err := os.Symlink(filepath.Join(mustAbs(t, "testdata"), "keys"), filepath.Join(dir, "keys")); err != nil {
		t.Fatal(err)
	}
	e, err := policy.New(t.Context(), policy.WithTrust(loadTrust(t, filepath.Join(dir, "trust.yaml"))))
	if err != nil {
		t.Fatal(err)
	}
	ev := rollbackEvidence(t)
	ev.SBOM = nil
	d := evaluate(t, e, ev)
	if !d.Allow || len(d.Violations) != 0 || !reflect.DeepEqual(d.Warnings, []policy.Violation{{
		Code: "rollback", Rule: "version", Severity: "high",
		Message: "version 2.4.0 is older than 9.0.0 installed on device pump-icu-0042; a rollback reinstates fixed vulnerabilities, install 9.0.0 or newer",
	}}) {
		t.Fatalf("decision %+v", d)
	}
}

func TestEvalTimeIsPinned(t *testing.T) {
	e := newEngine(t)
	ev := typical(t)
	ev.EvaluatedAt = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	d := evaluate(t, e, ev)
	if !reflect.DeepEqual(d.Codes(), []policy.Code{policy.CodeMetadataExpired, policy.CodeMetadataExpired}) {
		t.Fatalf("evaluated in 2030: %v", d.Codes())
	}
	ev.EvaluatedAt = time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	if d := evaluate(t, e, ev); !reflect.DeepEqual(d.Codes(), []policy.Code{policy.CodeMetadataFuture}) {
		t.Fatalf("evaluated before signing: %v", d.Codes())
	}
}

func TestNoTrustDeniesEverything(t *testing.T) {
	e, err := policy.New(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	d := evaluate(t, e, typical(t))
	want := []policy.Violation{{Code: "untrusted-signer", Rule: "signature", Severity: "critical",
		Message: "acme-infusion/infusion-pump is not in the trust configuration, so no signer is trusted for it; add the product and its authorities to the trust configuration if it is expected"}}
	if d.Allow || !reflect.DeepEqual(d.Violations, want) {
		t.Fatalf("decision %+v", d)
	}
}

func TestInvalidEvidenceIsAnError(t *testing.T) {
	ev := typical(t)
	ev.Schema = "v0"
	_, err := newEngine(t).Evaluate(t.Context(), ev)
	if !errors.Is(err, evidence.ErrInvalid) || err.Error() != `policy: evidence: schema: want "wardgate.dev/evidence/v1", got "v0"` {
		t.Fatalf("err = %v", err)
	}
}

func TestOptionErrors(t *testing.T) {
	for _, tc := range []struct {
		opt  policy.Option
		want string
	}{
		{policy.WithTrust(nil), "policy: nil trust configuration"},
		{policy.WithTimeout(0), "policy: timeout must be positive, got 0s"},
		{policy.WithPolicyDir(""), "policy: empty policy directory"},
		{policy.WithBundle(""), "policy: empty bundle path"},
		{policy.WithLogger(nil), "policy: nil logger"},
		{policy.WithPolicyDir("testdata/nope"), "policy directory testdata/nope: lstat testdata/nope: no such file or directory"},
	} {
		if _, err := policy.New(t.Context(), tc.opt); err == nil || err.Error() != tc.want {
			t.Errorf("err = %v, want %s", err, tc.want)
		}
	}
}

func TestRunTestsUserDir(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"hospital.rego": strings.ReplaceAll(fridayRule, "data.freeze.vendor", `"acme-infusion"`),
		"hospital_test.rego": `package wardgate.rules.hospital_test

import data.wardgate.rules.hospital

test_freezes_acme if {
	count(hospital.deny) == 1 with input as {"artifact": {"vendor": "acme-infusion"}}
}

test_wrong_on_purpose if {
	count(hospital.deny) == 1 with input as {"artifact": {"vendor": "medimaging"}}
}

test_uses_default_lib if {
	data.wardgate.lib.version_compare("1.10", "1.9") == 1
}
`,
	})
	rep, err := policy.RunTests(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.String() != "2 passed, 1 failed" {
		t.Fatalf("report %s: %+v", rep, rep.Results)
	}
	failed := rep.Results[1]
	if failed.Name != "test_wrong_on_purpose" || failed.Line != 9 || failed.File != filepath.Join(dir, "hospital_test.rego") || !failed.Fail {
		t.Fatalf("failed result %+v", failed)
	}
}

func TestRunTestsOnDefaultsCopy(t *testing.T) {
	// policy test policy/rego: the files are the defaults, not overrides.
	rep, err := policy.RunTests(t.Context(), "rego")
	if err != nil {
		t.Fatal(err)
	}
	def, err := policy.RunTests(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed != 0 || rep.Passed != def.Passed {
		t.Fatalf("copy: %s, defaults: %s", rep, def)
	}
}

// TestDeps enforces the dependency direction of STYLE.md section 1.
func TestDeps(t *testing.T) {
	deps := func(pkg string) map[string]bool {
		t.Helper()
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		m := map[string]bool{}
		for _, l := range strings.Fields(string(out)) {
			m[l] = true
		}
		return m
	}
	const mod = "github.com/wardgate/wardgate/"
	for _, pkg := range []string{mod + "evidence", mod + "trust"} {
		for d := range deps(pkg) {
			std := !strings.Contains(strings.Split(d, "/")[0], ".")
			if !std && d != pkg && d != "go.yaml.in/yaml/v3" {
				t.Errorf("%s imports %s; it may import only the standard library (and trust yaml)", pkg, d)
			}
		}
	}
	pd := deps(mod + "policy")
	for _, bad := range []string{"github.com/spf13/cobra", mod + "server", mod + "store", mod + "verify", mod + "sbom",
		"github.com/sigstore/sigstore-go/pkg/verify", "github.com/CycloneDX/cyclonedx-go"} {
		if pd[bad] {
			t.Errorf("policy imports %s", bad)
		}
	}
}

// TestTypicalEvidenceNamesItsTrustConfig keeps the benchmark document
// coherent: it was gathered under testdata/trust.yaml.
func TestTypicalEvidenceNamesItsTrustConfig(t *testing.T) {
	if got, want := typical(t).TrustConfigDigest, loadTrust(t, "testdata/trust.yaml").Digest(); got != want {
		t.Fatalf("testdata/typical.json trustConfigDigest %s, trust.yaml digest %s", got, want)
	}
}
