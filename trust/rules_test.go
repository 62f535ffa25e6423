package trust_test

import (
	"errors"
	"testing"

	"github.com/wardgate/wardgate/trust"
)

const keylessProduct = "vendors:\n  v: {products: {p: {device_classes: [c], authorities: {keyless: [{identity: a@b, issuer: https://i}]}}}}\n"

func TestRuleErrorNamesTheLineOfTheKey(t *testing.T) {
	c, err := trust.Parse("t.yaml", []byte("version: 1\nrules:\n  rollback: warn\n\n  sbom-drift: off\n"+keylessProduct))
	if err != nil {
		t.Fatal(err)
	}
	for code, want := range map[string]string{
		"rollback":   "t.yaml:3: rules.rollback: not produced (known: a, b)",
		"sbom-drift": "t.yaml:5: rules.sbom-drift: not produced (known: a, b)",
		"absent":     "t.yaml: rules.absent: not produced (known: a, b)",
	} {
		err := c.RuleError(code, "not produced (known: %s)", "a, b")
		if err.Error() != want || !errors.Is(err, trust.ErrInvalid) {
			t.Errorf("RuleError(%s) = %v, want %s", code, err, want)
		}
	}
	built := &trust.Config{Rules: map[string]trust.Enforcement{"rollback": trust.Warn}}
	if err := built.RuleError("rollback", "x"); err.Error() != "trust configuration: rules.rollback: x" {
		t.Errorf("RuleError of a configuration built in Go = %v", err)
	}
	same, err := trust.Parse("t.yaml", []byte("version: 1\nrules: {sbom-drift: off, rollback: warn}\n"+keylessProduct))
	if err != nil {
		t.Fatal(err)
	}
	if same.Digest() != c.Digest() {
		t.Fatal("the lines of rules: changed the digest")
	}
}
