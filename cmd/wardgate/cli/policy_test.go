package cli_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/wardgate/wardgate/policy"
)

const policyTestdata = "../../../policy/testdata"

// policyFiles writes name -> content under a new temporary directory.
func policyFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// evidenceFile writes the typical evidence document with edit applied.
func evidenceFile(t *testing.T, edit func(m map[string]any)) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(policyTestdata, "typical.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	if b, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(policyFiles(t, map[string]string{"evidence.json": string(b)}), "evidence.json")
}

func TestPolicyTestDefaults(t *testing.T) {
	want, err := policy.RunTests(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, "policy", "test", "../../../policy/rego")
	if code != 0 || out != want.String()+"\n" || errOut != "" || want.Failed != 0 {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 0, %q", code, out, errOut, want.String()+"\n")
	}
}

func TestPolicyTestFailure(t *testing.T) {
	dir := policyFiles(t, map[string]string{"x_test.rego": `package x_test

test_ok if true

test_bad if 1 == 2
`})
	code, out, errOut := run(t, "policy", "test", dir)
	if code != 1 || out != "1 passed, 1 failed\n" {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	if want := filepath.Join(dir, "x_test.rego") + ":5: data.x_test.test_bad: FAIL\n"; errOut != want {
		t.Fatalf("stderr %q, want %q", errOut, want)
	}
}

func TestPolicyTestCompileError(t *testing.T) {
	dir := policyFiles(t, map[string]string{"bad_test.rego": "package bad_test\n\ntest_x if {\n\tnope(1)\n}\n"})
	code, out, errOut := run(t, "policy", "test", dir)
	want := "wardgate: policy test: " + filepath.Join(dir, "bad_test.rego") + ":4: rego_type_error: undefined function nope\n"
	if code != 2 || out != "" || errOut != want {
		t.Fatalf("exit %d, stdout %q, stderr %q; want %q", code, out, errOut, want)
	}
}

func TestPolicyEvalAllow(t *testing.T) {
	ev := evidenceFile(t, func(map[string]any) {})
	code, out, errOut := run(t, "policy", "eval", "--input", ev, "--config", filepath.Join(policyTestdata, "trust.yaml"))
	if code != 0 || out != "ALLOWED  0 violations, 0 warnings\n" || errOut != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestPolicyEvalDenyText(t *testing.T) {
	ev := evidenceFile(t, func(m map[string]any) {
		m["device"].(map[string]any)["installedVersion"] = "2.5.0"
		m["fleet"] = map[string]any{"riskState": "quarantined"}
	})
	code, out, _ := run(t, "policy", "eval", "--input", ev, "--config", filepath.Join(policyTestdata, "trust.yaml"))
	want := "DENIED  2 violations, 0 warnings\n" +
		"  critical quarantined: fleet telemetry has quarantined infusion-pump 2.4.0 (no findings recorded); do not install it until the quarantine is lifted\n" +
		"  high     rollback: version 2.4.0 is older than 2.5.0 installed on device pump-icu-0042; a rollback reinstates fixed vulnerabilities, install 2.5.0 or newer\n"
	if code != 1 || out != want {
		t.Fatalf("exit %d, stdout:\n%s\nwant:\n%s", code, out, want)
	}
}

func TestPolicyEvalDenyJSONWithUserPolicy(t *testing.T) {
	dir := policyFiles(t, map[string]string{"freeze.rego": `package wardgate.rules.freeze

deny contains {"code": "change-freeze", "severity": "medium", "message": "no updates during the audit"}
`})
	ev := evidenceFile(t, func(map[string]any) {})
	code, out, _ := run(t, "policy", "eval", "--input", ev, "--config", filepath.Join(policyTestdata, "trust.yaml"), "--policy", dir, "-o", "json")
	var d policy.Decision
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := []policy.Violation{{Code: "change-freeze", Rule: "freeze", Message: "no updates during the audit", Severity: "medium"}}
	if code != 1 || d.Allow || !reflect.DeepEqual(d.Violations, want) || !strings.HasPrefix(d.PolicyDigest, "sha256:") || !strings.HasPrefix(d.DataDigest, "sha256:") {
		t.Fatalf("exit %d, decision %+v", code, d)
	}
}

func TestPolicyEvalCouldNotEvaluate(t *testing.T) {
	slow := policyFiles(t, map[string]string{"slow.rego": `package wardgate.rules.slow

deny contains {"code": "never", "severity": "low", "message": "never"} if {
	some i in numbers.range(1, 100000)
	some j in numbers.range(1, 100000)
	i * j == -1
}
`})
	badEvidence := evidenceFile(t, func(m map[string]any) { m["schema"] = "v0" })
	good := evidenceFile(t, func(map[string]any) {})
	trustFile := filepath.Join(policyTestdata, "trust.yaml")
	badTrust := filepath.Join(policyFiles(t, map[string]string{"trust.yaml": "version: 1\nvendors: [\n"}), "trust.yaml")
	override := policyFiles(t, map[string]string{"version.rego": "package wardgate.rules.version\n\ndeny := set()\n"})
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"invalid evidence", []string{"--input", badEvidence}, badEvidence + `: evidence: schema: want "wardgate.dev/evidence/v1", got "v0"`},
		{"missing evidence", []string{"--input", "nope.json"}, "open nope.json: no such file or directory"},
		{"timeout", []string{"--input", good, "--config", trustFile, "--policy", slow, "--timeout", "150ms"}, "policy: evaluation timed out after 150ms"},
		{"override", []string{"--input", good, "--policy", override}, filepath.Join(override, "version.rego") + ": package wardgate.rules.version replaces a default policy; declare it in the module (a package METADATA block with custom: {override: true}) or set allow_override: true in the trust configuration"},
		{"bad config", []string{"--input", good, "--config", badTrust}, badTrust + ":2: YAML: did not find expected node content"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(t, append([]string{"policy", "eval", "-o", "json"}, tc.args...)...)
			var d policy.Decision
			if err := json.Unmarshal([]byte(out), &d); err != nil {
				t.Fatalf("%v: %q", err, out)
			}
			want := policy.CouldNotEvaluate(errorString(tc.wantErr))
			if code != 2 || !reflect.DeepEqual(d, want) || errOut != "wardgate: "+tc.wantErr+"\n" {
				t.Fatalf("exit %d\ndecision %+v\nstderr %q\nwant %q", code, d, errOut, tc.wantErr)
			}
		})
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

func TestPolicyEvalUsage(t *testing.T) {
	code, out, errOut := run(t, "policy", "eval")
	if code != 2 || out != "" || errOut != "wardgate: --input (-i) is required: the evidence document\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, _, errOut = run(t, "policy", "eval", "--input", "x.json", "-o", "yaml")
	if code != 2 || errOut != "wardgate: -o yaml: want text or json\n" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

// TestPolicyTestLikeOPA: what opa test takes for the same job: several
// paths (a directory, a .rego file, an OPA bundle), -v, --run.
func TestPolicyTestLikeOPA(t *testing.T) {
	dir := policyFiles(t, map[string]string{"a_test.rego": "package a_test\n\ntest_one if true\n\ntest_two if true\n"})
	file := filepath.Join(policyFiles(t, map[string]string{"b_test.rego": "package b_test\n\ntest_three if 1 == 2\n"}), "b_test.rego")
	b := bundle.Bundle{Data: map[string]any{}, Modules: []bundle.ModuleFile{{URL: "/c/c_test.rego", Path: "/c/c_test.rego", Raw: []byte("package c_test\n\ntest_four if true\n")}}}
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(b); err != nil {
		t.Fatal(err)
	}
	tgz := filepath.Join(t.TempDir(), "c.tar.gz")
	if err := os.WriteFile(tgz, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, "policy", "test", dir, file, tgz)
	if code != 1 || out != "3 passed, 1 failed\n" || errOut != file+":3: data.b_test.test_three: FAIL\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, _ = run(t, "policy", "test", dir, tgz, "-v")
	want := filepath.Join(dir, "a_test.rego") + ":3: data.a_test.test_one: PASS\n" +
		filepath.Join(dir, "a_test.rego") + ":5: data.a_test.test_two: PASS\n" +
		tgz + ":/c/c_test.rego:3: data.c_test.test_four: PASS\n3 passed, 0 failed\n"
	if code != 0 || out != want {
		t.Fatalf("-v: exit %d\n got %q\nwant %q", code, out, want)
	}
	code, out, _ = run(t, "policy", "test", dir, file, tgz, "--run", "test_(one|four)$")
	if code != 0 || out != "2 passed, 0 failed\n" {
		t.Fatalf("--run: exit %d %q", code, out)
	}
	if code, _, errOut := run(t, "policy", "test", dir, "--run", "("); code != 2 || !strings.Contains(errOut, `--run "(": error parsing regexp`) {
		t.Fatalf("bad --run: %d %s", code, errOut)
	}
}

// TestPolicyEvalLikeOPA: -i and -d as opa eval names them, a bundle given
// with --policy, and a query.
func TestPolicyEvalLikeOPA(t *testing.T) {
	ev := evidenceFile(t, func(map[string]any) {})
	dir := policyFiles(t, map[string]string{"extra.rego": "package hospital\n\nanswer := 42\n\nvendor := input.artifact.vendor\n"})
	code, out, errOut := run(t, "policy", "eval", "-i", ev, "-d", dir, "--config", filepath.Join(policyTestdata, "trust.yaml"))
	if code != 0 || out != "ALLOWED  0 violations, 0 warnings\n" {
		t.Fatalf("exit %d %q %s", code, out, errOut)
	}
	code, out, errOut = run(t, "policy", "eval", "-i", ev, "-d", dir, "-o", "json", "data.hospital.answer")
	if code != 0 || out != `{"result":[{"expressions":[{"value":42,"text":"data.hospital.answer","location":{"row":1,"col":1}}]}]}`+"\n" {
		t.Fatalf("query: exit %d %q %s", code, out, errOut)
	}
	code, out, _ = run(t, "policy", "eval", "-i", ev, "-d", dir, "-o", "json", "data.hospital.nothing")
	if code != 0 || out != `{"result":[]}`+"\n" {
		t.Fatalf("undefined query: exit %d %q", code, out)
	}
	if code, _, errOut := run(t, "policy", "eval", "-i", ev, "--bundle", dir); code != 2 || !strings.Contains(errOut, "unknown flag: --bundle") {
		t.Fatalf("--bundle is for Sigstore bundles only: %d %s", code, errOut)
	}
}
