package sbom

import (
	"encoding"
	"encoding/json"
	"reflect"
	"strings"
	"unicode"
)

// A shape says which JSON values encoding/json (v1) accepts for a Go type
// without an error. The fast CycloneDX reader checks the fields it does not
// keep against the shape of cyclonedx-go's types, so that it accepts exactly
// the documents cyclonedx-go accepts. Whatever the shape cannot express
// (custom unmarshalers, embedded structs, ",string", []byte, arrays, odd map
// keys) is shapeExact: that value is handed to encoding/json itself.
type shape struct {
	kind   shapeKind
	bits   int          // int, uint, float sizes
	typ    reflect.Type // shapeExact: the type to unmarshal into
	elem   *shape       // slice and map values
	fields map[string]*shapeField
	folded map[string]*shapeField // ASCII upper-cased name, as encoding/json folds it
}

type shapeKind uint8

const (
	shapeAny shapeKind = iota // interface{}: any value; numbers must fit a float64
	shapeString
	shapeBool
	shapeInt
	shapeUint
	shapeFloat
	shapeStruct
	shapeSlice
	shapeMap
	shapeExact
)

type shapeField struct {
	shape *shape
	// read fields are decoded by the fast reader itself; a key that only
	// case-folds to one is left to cyclonedx-go.
	read bool
}

var (
	jsonUnmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	jsonNumberType      = reflect.TypeFor[json.Number]()
)

func unmarshaler(t reflect.Type) bool {
	return t.Implements(jsonUnmarshalerType) || t.Implements(textUnmarshalerType) ||
		reflect.PointerTo(t).Implements(jsonUnmarshalerType) || reflect.PointerTo(t).Implements(textUnmarshalerType)
}

// shapeOf builds the shape of t; cache breaks the cycles of recursive types.
func shapeOf(t reflect.Type, cache map[reflect.Type]*shape) *shape {
	if sh, ok := cache[t]; ok {
		return sh
	}
	if t.Kind() == reflect.Pointer && !unmarshaler(t) && !unmarshaler(t.Elem()) {
		// null sets a pointer to nil, and everything else reaches *t.
		return shapeOf(t.Elem(), cache)
	}
	sh := &shape{}
	cache[t] = sh
	exact := func() *shape { *sh = shape{kind: shapeExact, typ: t}; return sh }
	if unmarshaler(t) || t == jsonNumberType {
		return exact()
	}
	switch t.Kind() {
	case reflect.Pointer: // to an unmarshaler
		return exact()
	case reflect.Interface:
		if t.NumMethod() != 0 {
			return exact()
		}
		sh.kind = shapeAny
	case reflect.String:
		sh.kind = shapeString
	case reflect.Bool:
		sh.kind = shapeBool
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		sh.kind, sh.bits = shapeInt, t.Bits()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		sh.kind, sh.bits = shapeUint, t.Bits()
	case reflect.Float32, reflect.Float64:
		sh.kind, sh.bits = shapeFloat, t.Bits()
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return exact() // base64
		}
		sh.kind, sh.elem = shapeSlice, shapeOf(t.Elem(), cache)
	case reflect.Map:
		if t.Key().Kind() != reflect.String || unmarshaler(t.Key()) {
			return exact()
		}
		sh.kind, sh.elem = shapeMap, shapeOf(t.Elem(), cache)
	case reflect.Struct:
		sh.kind = shapeStruct
		sh.fields = map[string]*shapeField{}
		sh.folded = map[string]*shapeField{}
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Anonymous {
				return exact() // embedded fields promote by encoding/json's rules
			}
			if !f.IsExported() {
				continue
			}
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			if !validJSONTag(name) {
				name = f.Name
			}
			fs := &shapeField{}
			if strings.Contains(","+opts+",", ",string,") {
				fs.shape = &shape{kind: shapeExact, typ: f.Type}
			} else {
				fs.shape = shapeOf(f.Type, cache)
			}
			fold := asciiUpper(name)
			if _, dup := sh.folded[fold]; dup {
				return exact() // encoding/json's tie-breaking rules
			}
			sh.fields[name], sh.folded[fold] = fs, fs
		}
	default: // arrays, complex numbers, channels, funcs
		return exact()
	}
	return sh
}

// markRead marks names as fields the fast reader decodes itself.
func (sh *shape) markRead(names ...string) *shape {
	for _, n := range names {
		f, ok := sh.fields[n]
		if !ok {
			panic("sbom: shape has no field " + n)
		}
		f.read = true
	}
	return sh
}

// validJSONTag is encoding/json's isValidTag.
func validJSONTag(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		switch {
		case strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c):
		case !unicode.IsLetter(c) && !unicode.IsDigit(c):
			return false
		}
	}
	return true
}

// asciiUpper folds as encoding/json does for an ASCII name.
func asciiUpper(s string) string {
	for i := range len(s) {
		if c := s[i]; 'a' <= c && c <= 'z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'a' <= b[j] && b[j] <= 'z' {
					b[j] -= 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
