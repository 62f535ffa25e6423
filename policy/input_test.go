package policy

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/wardgate/wardgate/evidence"
)

// TestInputMatchesJSON checks that toValue gives exactly what encoding to
// JSON and parsing with OPA gives, for the typical document and for every
// evidence document of the policy cases' base and the evidence fixtures.
func TestInputMatchesJSON(t *testing.T) {
	files, err := filepath.Glob("../evidence/testdata/*.json")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "testdata/typical.json")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := evidence.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		// Exercise fractional times and empty-but-present sections too.
		ev.EvaluatedAt = ev.EvaluatedAt.Add(123456789)
		checkInput(t, f, ev)
		ev.Fleet.Findings = []evidence.Finding{}
		ev.Attestations = nil
		checkInput(t, f+" (edited)", ev)
	}
}

func checkInput(t *testing.T, name string, ev evidence.Evidence) {
	t.Helper()
	j, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ast.ValueFromReader(bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	got, err := toValue(reflect.ValueOf(ev))
	if err != nil {
		t.Fatal(err)
	}
	if got.Value.Compare(want) != 0 {
		t.Fatalf("%s: toValue differs from JSON:\n got %v\nwant %v", name, got.Value, want)
	}
}
