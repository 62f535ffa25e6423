package evidence_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/wardgate/wardgate/evidence"
)

func TestVulnerabilitiesRoundTrip(t *testing.T) {
	ev, err := evidence.Decode(bytes.NewReader(readFile(t, "testdata/vulnerabilities.json")))
	if err != nil {
		t.Fatal(err)
	}
	v := ev.Vulnerabilities
	if v == nil || len(v.Matches) != 2 || v.Matches[0].CVSS.Score != 9.1 || v.Database.AgeSeconds != 1000000 || v.Unchecked[0].Reason != evidence.UncheckedNoEcosystem {
		t.Fatalf("decoded %+v", v)
	}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	back, err := evidence.Decode(bytes.NewReader(b))
	if err != nil || !reflect.DeepEqual(ev, back) {
		t.Fatalf("round trip: %v", err)
	}
}

// Documents with a broken vulnerabilities section: Validate and the JSON
// Schema both reject them.
func TestVulnerabilitiesRejects(t *testing.T) {
	mut := func(f func(v map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(readFile(t, "testdata/vulnerabilities.json"), &m); err != nil {
			t.Fatal(err)
		}
		f(sub(m, "vulnerabilities"))
		b, _ := json.Marshal(m)
		return b
	}
	match := func(v map[string]any) map[string]any { return v["matches"].([]any)[0].(map[string]any) }
	cases := []struct {
		name string
		doc  []byte
		want string
	}{
		{"bad severity", mut(func(v map[string]any) { match(v)["severity"] = "severe" }),
			`evidence: vulnerabilities.matches[0].severity: want one of critical, high, medium, low, unknown, got "severe"`},
		{"score above 10", mut(func(v map[string]any) { match(v)["cvss"].(map[string]any)["score"] = 11.5 }),
			`evidence: vulnerabilities.matches[0].cvss.score: want 0 to 10, got 11.5`},
		{"null fixedIn", mut(func(v map[string]any) { match(v)["fixedIn"] = nil }),
			`evidence: vulnerabilities.matches[0].fixedIn: required (may be empty)`},
		{"bad database digest", mut(func(v map[string]any) { sub(v, "database")["digest"] = "md5:x" }),
			`evidence: vulnerabilities.database.digest: want sha256:<64 lowercase hex digits>, got "md5:x"`},
		{"unknown unchecked reason", mut(func(v map[string]any) { v["unchecked"].([]any)[0].(map[string]any)["reason"] = "lazy" }),
			`evidence: vulnerabilities.unchecked[0].reason: want one of no-ecosystem, no-version, bad-version, got "lazy"`},
		{"null matches", mut(func(v map[string]any) { v["matches"] = nil }),
			`evidence: vulnerabilities.matches: required (may be empty)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := evidence.Decode(bytes.NewReader(tc.doc))
			if !errors.Is(err, evidence.ErrInvalid) || err.Error() != tc.want {
				t.Fatalf("err:\n got %v\nwant %s", err, tc.want)
			}
			if ok, _ := matchSchema(t, tc.doc); ok {
				t.Fatal("the schema accepts it")
			}
		})
	}
}
