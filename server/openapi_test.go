package server

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

type openapiDoc struct {
	Paths map[string]map[string]struct {
		Roles     []string          `yaml:"x-roles"`
		Security  *[]map[string]any `yaml:"security"`
		Responses map[string]any    `yaml:"responses"`
	} `yaml:"paths"`
}

func loadOpenAPI(t testing.TB) openapiDoc {
	t.Helper()
	b, err := os.ReadFile("../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var d openapiDoc
	if err := yaml.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// Every route registered in the mux is in docs/openapi.yaml with the same
// roles, and the document has no route the mux lacks.
func TestOpenAPIRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	e := newEnv(t)
	registered := map[string]Route{}
	for _, r := range e.srv.Routes() {
		registered[r.Method+" "+r.Path] = r
	}
	documented := map[string]bool{}
	for p, ops := range doc.Paths {
		for m, op := range ops {
			k := strings.ToUpper(m) + " " + p
			documented[k] = true
			r, ok := registered[k]
			if !ok {
				t.Errorf("%s is documented but not registered", k)
				continue
			}
			var roles []string
			for _, ro := range r.Roles {
				roles = append(roles, string(ro))
			}
			if !slices.Equal(roles, op.Roles) {
				t.Errorf("%s: roles %v registered, %v documented", k, roles, op.Roles)
			}
			open := op.Security != nil && len(*op.Security) == 0
			if open != (r.Roles == nil) {
				t.Errorf("%s: open to all %v documented, %v registered", k, open, r.Roles == nil)
			}
		}
	}
	for k := range registered {
		if !documented[k] {
			t.Errorf("%s is registered but not in docs/openapi.yaml", k)
		}
	}
}

// notProvoked are documented statuses the tests need not produce on every
// route: they come from the shared adapter (rate limits, internal errors,
// unavailable stores) and are tested on one route each.
var notProvoked = []int{429, 500, 503}

// checkStatuses compares the statuses the tests saw with the document:
// every status seen is documented, and every documented status but
// notProvoked was seen.
func checkStatuses(doc openapiDoc) []string {
	var problems []string
	for p, ops := range doc.Paths {
		for m, op := range ops {
			k := strings.ToUpper(m) + " " + p
			seen := map[int]bool{}
			obsMu.Lock()
			if v, ok := observed.Load(k); ok {
				maps.Copy(seen, v.(map[int]bool))
			}
			obsMu.Unlock()
			doc := map[int]bool{}
			for c := range op.Responses {
				n, err := strconv.Atoi(c)
				if err != nil {
					problems = append(problems, fmt.Sprintf("%s: response %q is not a status", k, c))
					continue
				}
				doc[n] = true
			}
			for _, c := range slices.Sorted(maps.Keys(seen)) {
				if !doc[c] {
					problems = append(problems, fmt.Sprintf("%s returned %d, which docs/openapi.yaml does not document", k, c))
				}
			}
			for _, c := range slices.Sorted(maps.Keys(doc)) {
				if !seen[c] && !slices.Contains(notProvoked, c) {
					problems = append(problems, fmt.Sprintf("%s documents %d, which no test produced", k, c))
				}
			}
		}
	}
	slices.Sort(problems)
	return problems
}

// TestMain runs the tests, then checks the statuses they saw against the
// document (only on a full run: a -run subset sees only some statuses).
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 && !partialRun() {
		var d openapiDoc
		b, err := os.ReadFile("../docs/openapi.yaml")
		if err == nil {
			err = yaml.Unmarshal(b, &d)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "openapi:", err)
			os.Exit(1)
		}
		if problems := checkStatuses(d); len(problems) > 0 {
			fmt.Fprintln(os.Stderr, "FAIL: documented statuses differ from what the handlers return:\n  "+strings.Join(problems, "\n  "))
			os.Exit(1)
		}
	}
	os.Exit(code)
}

func partialRun() bool {
	for _, a := range os.Args[1:] {
		if strings.HasPrefix(a, "-test.run") || strings.HasPrefix(a, "-test.skip") || strings.HasPrefix(a, "-test.bench") {
			return true
		}
	}
	return false
}
