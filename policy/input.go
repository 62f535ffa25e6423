package policy

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// toValue converts a value of the evidence types straight into an OPA AST
// value, with the same result as encoding it to JSON and parsing that with
// ast.ValueFromReader (TestInputMatchesJSON checks this), at a fraction of
// the cost: encoding and re-parsing the input was a quarter of Evaluate.
// It handles what the evidence types use: structs with json tags
// (omitempty), pointers, slices, map[string]int, strings, bools, integers,
// float64 and time.Time (RFC 3339 with nanoseconds, as encoding/json writes it).
//
// It is on the hot path of every evaluation, so it allocates little: the
// field names of each struct type are made into terms once and shared,
// terms come from a slab, and objects are built in one piece.
func toValue(v reflect.Value) (*ast.Term, error) {
	c := converter{}
	return c.term(v)
}

// converter hands out terms from a slab instead of allocating each one.
type converter struct {
	slab []ast.Term
}

func (c *converter) newTerm(v ast.Value) *ast.Term {
	if len(c.slab) == 0 {
		c.slab = make([]ast.Term, 64)
	}
	t := &c.slab[0]
	c.slab = c.slab[1:]
	t.Value = v
	return t
}

func (c *converter) term(v reflect.Value) (*ast.Term, error) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return ast.InternedNullTerm, nil
		}
		return c.term(v.Elem())
	case reflect.String:
		if v.Len() == 0 {
			return ast.InternedEmptyString, nil
		}
		return c.newTerm(ast.String(v.String())), nil
	case reflect.Bool:
		return ast.InternedTerm(v.Bool()), nil
	case reflect.Int, reflect.Int64:
		return ast.InternedTerm(int(v.Int())), nil
	case reflect.Float64:
		// encoding/json's text for the number, so the term is the same.
		b, err := json.Marshal(v.Float())
		if err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
		return c.newTerm(ast.Number(b)), nil
	case reflect.Slice:
		if v.IsNil() {
			return ast.InternedNullTerm, nil
		}
		terms := make([]*ast.Term, v.Len())
		for i := range terms {
			t, err := c.term(v.Index(i))
			if err != nil {
				return nil, err
			}
			terms[i] = t
		}
		return c.newTerm(ast.NewArray(terms...)), nil
	case reflect.Map:
		if v.IsNil() {
			return ast.InternedNullTerm, nil
		}
		kvs := make([][2]*ast.Term, 0, v.Len())
		it := v.MapRange()
		for it.Next() {
			val, err := c.term(it.Value())
			if err != nil {
				return nil, err
			}
			kvs = append(kvs, [2]*ast.Term{c.newTerm(ast.String(it.Key().String())), val})
		}
		return c.newTerm(ast.NewObject(kvs...)), nil
	case reflect.Struct:
		if v.Type() == timeType {
			t := v.Interface().(time.Time)
			return c.newTerm(ast.String(t.Format(time.RFC3339Nano))), nil
		}
		fields := structFields(v.Type())
		kvs := make([][2]*ast.Term, 0, len(fields))
		for _, f := range fields {
			fv := v.Field(f.index)
			if f.omitEmpty && isEmpty(fv) {
				continue
			}
			t, err := c.term(fv)
			if err != nil {
				return nil, err
			}
			kvs = append(kvs, [2]*ast.Term{f.key, t})
		}
		return c.newTerm(ast.NewObject(kvs...)), nil
	}
	return nil, fmt.Errorf("policy: cannot convert %s to OPA input", v.Type())
}

var timeType = reflect.TypeFor[time.Time]()

// isEmpty is encoding/json's omitempty rule (structs are never empty).
func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		return v.IsNil()
	case reflect.String, reflect.Slice, reflect.Map, reflect.Array:
		return v.Len() == 0
	case reflect.Bool:
		return !v.Bool()
	case reflect.Int, reflect.Int64:
		return v.Int() == 0
	case reflect.Float64:
		return v.Float() == 0
	}
	return false
}

type field struct {
	key       *ast.Term // the JSON name, made once and shared by every object of the type
	index     int
	omitEmpty bool
}

var fieldCache sync.Map // reflect.Type -> []field

func structFields(t reflect.Type) []field {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.([]field)
	}
	var fs []field
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		if !sf.IsExported() || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = sf.Name
		}
		fs = append(fs, field{key: ast.StringTerm(name), index: i, omitEmpty: slices.Contains(strings.Split(opts, ","), "omitempty")})
	}
	fieldCache.Store(t, fs)
	return fs
}
