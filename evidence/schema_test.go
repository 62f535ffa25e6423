package evidence_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/wardgate/wardgate/evidence"
)

const schemaPath = "../docs/evidence.schema.json"

func loadSchema(t testing.TB) map[string]any {
	t.Helper()
	var s map[string]any
	if err := json.Unmarshal(readFile(t, schemaPath), &s); err != nil {
		t.Fatalf("%s: %v", schemaPath, err)
	}
	return s
}

// TestSchemaMatchesType walks the Go type and the JSON Schema together:
// every JSON field of every struct is a schema property and the other way
// round, a field is required in the schema exactly when its tag has no
// omitempty, and leaf types agree.
func TestSchemaMatchesType(t *testing.T) {
	root := loadSchema(t)
	var problems []string
	walkSchema(root, "$", reflect.TypeFor[evidence.Evidence](), root, &problems)
	if len(problems) > 0 {
		t.Fatalf("Go type and %s disagree:\n%s", schemaPath, strings.Join(problems, "\n"))
	}
}

func resolve(root, s map[string]any) map[string]any {
	ref, ok := s["$ref"].(string)
	if !ok {
		return s
	}
	cur := root
	for _, p := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		cur = cur[p].(map[string]any)
	}
	return cur
}

func walkSchema(root map[string]any, path string, typ reflect.Type, s map[string]any, problems *[]string) {
	bad := func(format string, args ...any) {
		*problems = append(*problems, path+": "+fmt.Sprintf(format, args...))
	}
	s = resolve(root, s)
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	switch {
	case typ == reflect.TypeFor[time.Time]():
		if s["type"] != "string" || s["format"] != "date-time" {
			bad("time.Time wants {type: string, format: date-time}, schema has %v", s)
		}
	case typ.Kind() == reflect.Struct:
		props, _ := s["properties"].(map[string]any)
		if s["type"] != "object" || props == nil || s["additionalProperties"] != false {
			bad("struct %s wants an object schema with properties and additionalProperties false", typ)
			return
		}
		var required []string
		for _, r := range s["required"].([]any) {
			required = append(required, r.(string))
		}
		seen := map[string]bool{}
		for f := range typ.Fields() {
			tag := f.Tag.Get("json")
			name, opts, _ := strings.Cut(tag, ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			seen[name] = true
			ps, ok := props[name].(map[string]any)
			if !ok {
				bad("Go field %s.%s (%q) is not in the schema", typ.Name(), f.Name, name)
				continue
			}
			omit := strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero")
			if req := slices.Contains(required, name); req == omit {
				bad("field %q: omitempty=%v but schema required=%v", name, omit, req)
			}
			walkSchema(root, path+"."+name, f.Type, ps, problems)
		}
		for name := range props {
			if !seen[name] {
				bad("schema property %q has no Go field in %s", name, typ)
			}
		}
	case typ.Kind() == reflect.Slice:
		items, ok := s["items"].(map[string]any)
		if s["type"] != "array" || !ok {
			bad("slice wants an array schema with items")
			return
		}
		walkSchema(root, path+"[]", typ.Elem(), items, problems)
	case typ.Kind() == reflect.Map:
		if s["type"] != "object" {
			bad("map wants an object schema")
		}
	case typ.Kind() == reflect.String:
		if s["type"] != "string" && s["const"] == nil && s["enum"] == nil {
			bad("string wants type string, const or enum")
		}
	case typ.Kind() == reflect.Bool:
		if s["type"] != "boolean" {
			bad("bool wants type boolean")
		}
	case typ.Kind() == reflect.Int, typ.Kind() == reflect.Int64:
		if s["type"] != "integer" {
			bad("integer wants type integer")
		}
	case typ.Kind() == reflect.Float64:
		if s["type"] != "number" {
			bad("float64 wants type number")
		}
	default:
		bad("unhandled Go type %s", typ)
	}
}

// matchSchema validates doc against the schema with OPA's json.match_schema
// (gojsonschema inside OPA), an implementation independent of Validate.
func matchSchema(t testing.TB, doc []byte) (bool, []any) {
	t.Helper()
	var d any
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	rs, err := rego.New(
		rego.Query(`r := json.match_schema(input.doc, input.schema)`),
		rego.Input(map[string]any{"doc": d, "schema": loadSchema(t)}),
		rego.StrictBuiltinErrors(true),
	).Eval(t.Context())
	if err != nil {
		t.Fatalf("json.match_schema: %v", err)
	}
	r := rs[0].Bindings["r"].([]any)
	errs, _ := r[1].([]any)
	return r[0].(bool), errs
}

func TestFixturesMatchSchema(t *testing.T) {
	for _, f := range []string{"testdata/typical.json", "testdata/minimal.json", "testdata/vulnerabilities.json"} {
		if ok, errs := matchSchema(t, readFile(t, f)); !ok {
			t.Errorf("%s does not match the schema: %v", f, errs)
		}
	}
}

// TestSchemaRejectsBadDocuments checks that every document Validate rejects
// is rejected by the JSON Schema too.
func TestSchemaRejectsBadDocuments(t *testing.T) {
	for _, tc := range badDocuments {
		t.Run(tc.name, func(t *testing.T) {
			if ok, _ := matchSchema(t, mutate(t, tc.mutate)); ok {
				t.Fatalf("schema accepts a document Validate rejects with %s", tc.wantErr)
			}
		})
	}
}
