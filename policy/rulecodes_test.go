package policy_test

import (
	"bytes"
	"errors"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/wardgate/wardgate/policy"
	"github.com/wardgate/wardgate/trust"
)

// defaultKnown is the "known" list of an engine with the default rules only.
const defaultKnown = "component-hash-changed, denied-component, denied-license, digest-mismatch, downgraded-component, " +
	"executable-changed-same-version, key-revoked, known-vulnerability, metadata-expired, metadata-future, metadata-mismatch, metadata-missing, metadata-rollback, metadata-untimed, metadata-untrusted, quarantined, rollback, same-version-different-digest, sbom-drift, sbom-missing, " +
	"threshold-not-met, unknown-target, unsigned, untrusted-signer, version-conflict, wrong-device-class"

// rulesTrust parses a trust configuration (as trust.yaml) whose rules:
// section is rules, one "code: level" per line, from line 3 on.
func rulesTrust(t testing.TB, rules ...string) *trust.Config {
	t.Helper()
	body := "version: 1\nrules:\n"
	for _, r := range rules {
		body += "  " + r + "\n"
	}
	body += "vendors:\n  v: {products: {p: {device_classes: [c], authorities: {keyless: [{identity: a@b, issuer: https://i}]}}}}\n"
	c, err := trust.Parse("trust.yaml", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestUnknownRuleCode(t *testing.T) {
	_, err := policy.New(t.Context(), policy.WithTrust(rulesTrust(t, "rollback: warn", "downgraded-componet: warn")))
	want := "trust.yaml:4: rules.downgraded-componet: no loaded policy produces this code (known: " + defaultKnown + ")"
	if err == nil || err.Error() != want {
		t.Fatalf("err:\n got %v\nwant %s", err, want)
	}
	var ce *trust.ConfigError
	if !errors.Is(err, trust.ErrInvalid) || !errors.As(err, &ce) || ce.Line != 4 || ce.Field != "rules.downgraded-componet" {
		t.Fatalf("err %#v, want a trust.ConfigError at line 4", err)
	}
}

func TestUnknownRuleCodesAllNamedInLineOrder(t *testing.T) {
	_, err := policy.New(t.Context(), policy.WithTrust(rulesTrust(t, "sbom-drfit: off", "rollback: warn", "could-not-evaluate: warn", "quarantine: warn")))
	want := "trust.yaml:3: rules.sbom-drfit: no loaded policy produces this code (known: " + defaultKnown + ")\n" +
		"trust.yaml:5: rules.could-not-evaluate: never produced by a rule: it is the deny when no decision could be made, always enforced\n" +
		"trust.yaml:6: rules.quarantine: no loaded policy produces this code (known: " + defaultKnown + ")"
	if err == nil || err.Error() != want {
		t.Fatalf("err:\n got %v\nwant %s", err, want)
	}
}

func TestUserRuleConstantCodeIsKnown(t *testing.T) {
	cfg := rulesTrust(t, "change-freeze: warn")
	if _, err := policy.New(t.Context(), policy.WithTrust(cfg)); err == nil ||
		err.Error() != "trust.yaml:3: rules.change-freeze: no loaded policy produces this code (known: "+defaultKnown+")" {
		t.Fatalf("without the user policy: err = %v", err)
	}
	dir := writeFiles(t, map[string]string{"hospital.rego": strings.ReplaceAll(fridayRule, "data.freeze.vendor", `"acme-infusion"`)})
	e, err := policy.New(t.Context(), policy.WithTrust(cfg), policy.WithPolicyDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	// (rulesTrust trusts no product of the evidence: untrusted-signer.)
	d := evaluate(t, e, typical(t))
	if !reflect.DeepEqual(d.Codes(), []policy.Code{policy.CodeUntrustedSigner}) || !reflect.DeepEqual(d.Warnings, []policy.Violation{{Code: "change-freeze", Rule: "hospital", Severity: "high", Message: "acme-infusion updates are frozen during the audit"}}) {
		t.Fatalf("change-freeze: warn: decision %+v", d)
	}
}

// computedFreeze reports a code made from the bundle data, which cannot be
// read from the source.
const computedFreeze = `package wardgate.rules.freeze

deny contains {"code": concat("-", ["freeze", input.artifact.vendor]), "severity": "high", "message": "frozen"} if {
	input.artifact.vendor == "acme-infusion"
}
`

func TestDeclaredCodesAreKnown(t *testing.T) {
	dir := writeFiles(t, map[string]string{"freeze.rego": "# METADATA\n# custom:\n#   codes: [freeze-acme-infusion, freeze-medimaging]\n" + computedFreeze})
	e, err := policy.New(t.Context(), policy.WithTrust(rulesTrust(t, "freeze-acme-infusion: warn")), policy.WithPolicyDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	if d := evaluate(t, e, typical(t)); !reflect.DeepEqual(d.Codes(), []policy.Code{policy.CodeUntrustedSigner}) ||
		!reflect.DeepEqual(d.Warnings, []policy.Violation{{Code: "freeze-acme-infusion", Rule: "freeze", Severity: "high", Message: "frozen"}}) {
		t.Fatalf("decision %+v", d)
	}
	_, err = policy.New(t.Context(), policy.WithTrust(rulesTrust(t, "freeze-acme: warn")), policy.WithPolicyDir(dir))
	want := "trust.yaml:3: rules.freeze-acme: no loaded policy produces this code (known: component-hash-changed, denied-component, denied-license, digest-mismatch, downgraded-component, " +
		"executable-changed-same-version, freeze-acme-infusion, freeze-medimaging, key-revoked, known-vulnerability, metadata-expired, metadata-future, metadata-mismatch, metadata-missing, metadata-rollback, metadata-untimed, metadata-untrusted, quarantined, rollback, same-version-different-digest, sbom-drift, sbom-missing, " +
		"threshold-not-met, unknown-target, unsigned, untrusted-signer, version-conflict, wrong-device-class)"
	if err == nil || err.Error() != want {
		t.Fatalf("err:\n got %v\nwant %s", err, want)
	}
}

func TestComputedCodeUndeclaredDisablesTheCheck(t *testing.T) {
	dir := writeFiles(t, map[string]string{"freeze.rego": computedFreeze})
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	_, err := policy.New(t.Context(), policy.WithTrust(rulesTrust(t, "freeze-acme: warn")), policy.WithPolicyDir(dir), policy.WithLogger(logger))
	if err != nil {
		t.Fatalf("a computed, undeclared code: %v", err)
	}
	want := `level=WARN msg="rule codes in the trust configuration not checked: a deny rule computes its code and its package declares none (METADATA custom: {codes: [...]})" ` +
		`policy.code=freeze-acme policy.rule=` + filepath.Join(dir, "freeze.rego") + ":3\n"
	if logs.String() != want {
		t.Fatalf("log:\n got %s\nwant %s", logs.String(), want)
	}
	// could-not-evaluate is refused all the same.
	_, err = policy.New(t.Context(), policy.WithTrust(rulesTrust(t, "could-not-evaluate: off")), policy.WithPolicyDir(dir))
	if err == nil || err.Error() != "trust.yaml:3: rules.could-not-evaluate: never produced by a rule: it is the deny when no decision could be made, always enforced" {
		t.Fatalf("err = %v", err)
	}
}

func TestDeclaredCodesMustBeAList(t *testing.T) {
	dir := writeFiles(t, map[string]string{"freeze.rego": "# METADATA\n# custom:\n#   codes: freeze-acme\n" + computedFreeze})
	_, err := policy.New(t.Context(), policy.WithTrust(rulesTrust(t, "rollback: warn")), policy.WithPolicyDir(dir))
	var ce *policy.CompileError
	want := filepath.Join(dir, "freeze.rego") + ":1: METADATA custom.codes: want a list of reason codes such as [change-freeze], got freeze-acme"
	if !errors.As(err, &ce) || err.Error() != want {
		t.Fatalf("err:\n got %v\nwant %s", err, want)
	}
}

func TestOverrideDropsItsCodes(t *testing.T) {
	// A ledger override whose deny is an empty set produces no
	// same-version-different-digest (nor version-conflict; rollback stays,
	// the version rule set produces it too).
	dir := writeFiles(t, map[string]string{"ledger.rego": strings.Replace(versionOverrideDeclared, "wardgate.rules.version", "wardgate.rules.ledger", 1)})
	_, err := policy.New(t.Context(), policy.WithTrust(rulesTrust(t, "same-version-different-digest: warn")), policy.WithPolicyDir(dir))
	want := "trust.yaml:3: rules.same-version-different-digest: no loaded policy produces this code (known: component-hash-changed, denied-component, denied-license, digest-mismatch, downgraded-component, " +
		"executable-changed-same-version, key-revoked, known-vulnerability, metadata-expired, metadata-future, metadata-mismatch, metadata-missing, metadata-rollback, metadata-untimed, metadata-untrusted, quarantined, rollback, sbom-drift, sbom-missing, threshold-not-met, unknown-target, unsigned, untrusted-signer, wrong-device-class)"
	if err == nil || err.Error() != want {
		t.Fatalf("err:\n got %v\nwant %s", err, want)
	}
}
