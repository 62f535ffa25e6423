package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/wardgate/wardgate/policy"
)

// TestPolicyEvalUnknownRuleCode: a typo in rules: is could-not-evaluate,
// naming the trust file, the line and the field.
func TestPolicyEvalUnknownRuleCode(t *testing.T) {
	body, err := os.ReadFile(filepath.Join(policyTestdata, "trust.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	typo := strings.Replace(string(body), "  downgraded-component: warn\n", "  downgraded-componet: warn\n", 1)
	dir := policyFiles(t, map[string]string{"trust.yaml": typo})
	if err := os.Symlink(mustAbs(t, filepath.Join(policyTestdata, "keys")), filepath.Join(dir, "keys")); err != nil {
		t.Fatal(err)
	}
	trustFile := filepath.Join(dir, "trust.yaml")
	code, out, errOut := run(t, "policy", "eval", "-o", "json", "--input", evidenceFile(t, func(map[string]any) {}), "--config", trustFile)
	wantErr := trustFile + ":7: rules.downgraded-componet: no loaded policy produces this code (known: component-hash-changed, denied-component, " +
		"denied-license, digest-mismatch, downgraded-component, executable-changed-same-version, key-revoked, known-vulnerability, metadata-expired, metadata-future, metadata-mismatch, metadata-missing, metadata-rollback, metadata-untimed, metadata-untrusted, quarantined, rollback, same-version-different-digest, " +
		"sbom-drift, sbom-missing, threshold-not-met, unknown-target, unsigned, untrusted-signer, version-conflict, wrong-device-class)"
	var d policy.Decision
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	if code != 2 || !reflect.DeepEqual(d, policy.CouldNotEvaluate(errorString(wantErr))) || errOut != "wardgate: "+wantErr+"\n" {
		t.Fatalf("exit %d\ndecision %+v\nstderr %q\nwant %q", code, d, errOut, wantErr)
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
