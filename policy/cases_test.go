package policy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/wardgate/wardgate/evidence"
	"github.com/wardgate/wardgate/policy"
	"github.com/wardgate/wardgate/trust"
)

// policyCase is one file of testdata/cases: an evidence document (a JSON
// merge patch, RFC 7396, over testdata/typical.json), the trust
// configuration to use, and the exact decision wanted.
type policyCase struct {
	Note           string          `yaml:"note"`
	Trust          string          `yaml:"trust"` // file under testdata; default trust.yaml
	Evidence       map[string]any  `yaml:"evidence"`
	WantAllow      bool            `yaml:"want_allow"`
	WantViolations []wantViolation `yaml:"want_violations"`
	WantWarnings   []wantViolation `yaml:"want_warnings"`
	// WantError is the exact error Evaluate must return; the decision is
	// then policy.CouldNotEvaluate(err), checked against WantViolations.
	WantError string `yaml:"want_error"`
}

type wantViolation struct {
	Code     string `yaml:"code"`
	Rule     string `yaml:"rule"`
	Severity string `yaml:"severity"`
	Message  string `yaml:"message"`
}

func readCase(t testing.TB, path string) policyCase {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var c policyCase
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if c.Note == "" {
		t.Fatalf("%s: note is required", path)
	}
	return c
}

// mergePatch applies an RFC 7396 JSON merge patch.
func mergePatch(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, ok := target.(map[string]any)
	if !ok {
		t = map[string]any{}
	}
	for k, v := range p {
		if v == nil {
			delete(t, k)
			continue
		}
		t[k] = mergePatch(t[k], v)
	}
	return t
}

// caseEvidence builds the case's evidence document. It does not validate:
// invalid documents are cases too.
func caseEvidence(t testing.TB, c policyCase) evidence.Evidence {
	t.Helper()
	var base any
	if err := json.Unmarshal(readFile(t, "testdata/typical.json"), &base); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(mergePatch(base, c.Evidence))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var ev evidence.Evidence
	if err := dec.Decode(&ev); err != nil {
		t.Fatalf("evidence patch: %v", err)
	}
	return ev
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	enginesMu sync.Mutex
	engines   = map[string]*policy.Engine{}
)

// engineFor prepares one engine per trust file, shared by the cases.
func engineFor(t testing.TB, trustFile string) *policy.Engine {
	t.Helper()
	enginesMu.Lock()
	defer enginesMu.Unlock()
	if e, ok := engines[trustFile]; ok {
		return e
	}
	cfg, err := trust.Load(filepath.Join("testdata", trustFile))
	if err != nil {
		t.Fatal(err)
	}
	e, err := policy.New(t.Context(), policy.WithTrust(cfg))
	if err != nil {
		t.Fatal(err)
	}
	engines[trustFile] = e
	return e
}

func toWant(vs []policy.Violation) []wantViolation {
	out := make([]wantViolation, 0, len(vs))
	for _, v := range vs {
		out = append(out, wantViolation{Code: string(v.Code), Rule: v.Rule, Severity: v.Severity, Message: v.Message})
	}
	return out
}

// TestCases runs every testdata/cases/*.yaml and checks that every default
// reason code is produced by at least one case.
func TestCases(t *testing.T) {
	files, err := filepath.Glob("testdata/cases/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no cases")
	}
	covered := map[string]bool{}
	allows := 0
	for _, f := range files {
		c := readCase(t, f)
		for _, v := range slices.Concat(c.WantViolations, c.WantWarnings) {
			covered[v.Code] = true
		}
		if c.WantAllow {
			allows++
		}
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			trustFile := c.Trust
			if trustFile == "" {
				trustFile = "trust.yaml"
			}
			e := engineFor(t, trustFile)
			ev := caseEvidence(t, c)
			d, err := e.Evaluate(t.Context(), ev)
			if c.WantError != "" {
				if err == nil || err.Error() != c.WantError {
					t.Fatalf("%s\nerr:\n got %v\nwant %s", c.Note, err, c.WantError)
				}
				if !errors.Is(err, evidence.ErrInvalid) && !errors.Is(err, policy.ErrTimeout) {
					t.Fatalf("error %v is neither invalid evidence nor a timeout", err)
				}
				d = policy.CouldNotEvaluate(err)
			} else if err != nil {
				t.Fatalf("%s: %v", c.Note, err)
			}
			if d.Allow != c.WantAllow {
				t.Errorf("%s\nallow = %v, want %v", c.Note, d.Allow, c.WantAllow)
			}
			want := c.WantViolations
			if want == nil {
				want = []wantViolation{}
			}
			if got := toWant(d.Violations); !reflect.DeepEqual(got, want) {
				t.Errorf("%s\nviolations:\n got %s\nwant %s", c.Note, dump(got), dump(want))
			}
			wantW := c.WantWarnings
			if wantW == nil {
				wantW = []wantViolation{}
			}
			if got := toWant(d.Warnings); !reflect.DeepEqual(got, wantW) {
				t.Errorf("%s\nwarnings:\n got %s\nwant %s", c.Note, dump(got), dump(wantW))
			}
		})
	}
	for _, code := range append(slices.Clone(policy.DefaultCodes), policy.CodeCouldNotEvaluate) {
		if !covered[string(code)] {
			t.Errorf("no case produces %s", code)
		}
	}
	if allows < 3 {
		t.Errorf("%d allow cases, want at least 3", allows)
	}
}

func dump(v any) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%+v (yaml: %v)", v, err)
	}
	return "\n" + string(b)
}
