package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"unicode/utf8"
)

// Strict JSON. encoding/json matches object keys to struct fields without
// regard to case ("DIGEST" fills Digest) and lets a repeated key silently
// replace the earlier value, so two readers of the same body can disagree
// about what it says. Request bodies are first walked on encoding/json's
// token stream beside the type they decode into: a repeated key at any
// depth, a key that names a field only when case is ignored, invalid UTF-8
// (which encoding/json turns into U+FFFD) and nesting deeper than
// limits.max_json_depth are refused before the body is decoded.

// strictError is a body the strict walk refused; its message is safe to
// show.
type strictError struct{ msg, limit string }

func (e *strictError) Error() string { return e.msg }

// checkStrictJSON walks the JSON value in b beside type t.
// Nesting (objects and arrays) past maxDepth is refused.
func checkStrictJSON(b []byte, t reflect.Type, maxDepth int) error {
	if !utf8.Valid(b) {
		return &strictError{msg: "the body is not valid UTF-8"}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return walkJSON(dec, t, "", 0, maxDepth)
}

var (
	rawMessageType  = reflect.TypeFor[json.RawMessage]()
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
)

// opaque reports whether values of t decode themselves (json.RawMessage,
// time.Time...): their keys are checked for repeats but not named.
func opaque(t reflect.Type) bool {
	if t == nil {
		return true
	}
	if t == rawMessageType || t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType) {
		return true
	}
	return t.Kind() == reflect.Interface
}

func walkJSON(dec *json.Decoder, t reflect.Type, at string, depth, maxDepth int) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil // a scalar; its type is checked by the decoder
	}
	if depth++; depth > maxDepth {
		return &strictError{msg: fmt.Sprintf("JSON nested deeper than %d levels", maxDepth), limit: limitJSONDepth}
	}
	switch d {
	case '[':
		var elem reflect.Type
		if t != nil && !opaque(t) && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := walkJSON(dec, elem, fmt.Sprintf("%s[%d]", at, i), depth, maxDepth); err != nil {
				return err
			}
		}
	case '{':
		var fields map[string]reflect.Type
		var elem reflect.Type
		switch {
		case opaque(t):
		case t.Kind() == reflect.Struct:
			fields = structFields(t)
		case t.Kind() == reflect.Map:
			elem = t.Elem()
		}
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return err
			}
			k, _ := kt.(string)
			path := k
			if at != "" {
				path = at + "." + k
			}
			if seen[k] {
				return &strictError{msg: fmt.Sprintf("key %q appears more than once", path)}
			}
			seen[k] = true
			vt := elem
			if fields != nil {
				ft, ok := fields[k]
				if !ok {
					for name := range fields {
						if strings.EqualFold(name, k) {
							return &strictError{msg: fmt.Sprintf("key %q: keys are case-sensitive; the field is %q", path, joinPath(at, name))}
						}
					}
					return &strictError{msg: fmt.Sprintf("unknown field %q", path)}
				}
				vt = ft
			}
			if err := walkJSON(dec, vt, path, depth, maxDepth); err != nil {
				return err
			}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing delimiter
		return err
	}
	return nil
}

func joinPath(at, k string) string {
	if at == "" {
		return k
	}
	return at + "." + k
}

var fieldCache sync.Map // reflect.Type -> map[string]reflect.Type

// structFields maps the JSON names of t's fields, as encoding/json sees
// them (tags, "-", embedded structs), to their types.
func structFields(t reflect.Type) map[string]reflect.Type {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	m := map[string]reflect.Type{}
	var add func(t reflect.Type)
	add = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			ft := f.Type
			if f.Anonymous && name == "" {
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if ft.Kind() == reflect.Struct {
					add(ft)
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if _, dup := m[name]; !dup {
				m[name] = ft
			}
		}
	}
	add(t)
	fieldCache.Store(t, m)
	return m
}

// decodeStrict decodes the JSON object in b into v after the strict walk:
// no unknown fields, no trailing data.
func decodeStrict(b []byte, v any, maxDepth int) error {
	if err := checkStrictJSON(b, reflect.TypeOf(v), maxDepth); err != nil {
		return jsonError(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return jsonError(err)
		}
		return badRequest("malformed JSON: data after the object")
	}
	return nil
}
