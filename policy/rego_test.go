package policy_test

import (
	"strings"
	"testing"

	"github.com/wardgate/wardgate/policy"
)

// TestDefaultRegoTests runs the default policies' _test.rego files with
// OPA's tester; any failing Rego test fails this test.
func TestDefaultRegoTests(t *testing.T) {
	rep, err := policy.RunTests(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		if r.Failed() {
			t.Errorf("%s:%d: %s.%s failed %s", r.File, r.Line, r.Package, r.Name, r.Error)
		}
	}
	if rep.Failed != 0 || rep.Passed < 40 {
		t.Fatalf("%s; want 0 failed and at least 40 passed", rep)
	}
	if got := rep.String(); got != strings.TrimSpace(got) || !strings.HasSuffix(got, " passed, 0 failed") {
		t.Fatalf("summary %q", got)
	}
}
