package policy

import (
	"slices"
	"testing"
)

// TestDefaultModulesCodes cross-checks DefaultCodes against the default
// rules: the codes read statically from their deny rules are exactly
// DefaultCodes, and every one of them is a constant.
func TestDefaultModulesCodes(t *testing.T) {
	ms, err := defaultModules(false)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := collectCodes(ms)
	if err != nil {
		t.Fatal(err)
	}
	if rc.unchecked != "" {
		t.Fatalf("a default deny rule computes its code: %s", rc.unchecked)
	}
	got := make([]Code, 0, len(rc.known))
	for c := range rc.known {
		// The vulnerability rules report could-not-evaluate for evidence
		// they cannot trust; it is no rule's own code.
		if c != CodeCouldNotEvaluate {
			got = append(got, c)
		}
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(DefaultCodes))
	if !slices.Equal(got, want) {
		t.Fatalf("codes of the default rules:\n got %v\nwant %v (DefaultCodes)", got, want)
	}
}
