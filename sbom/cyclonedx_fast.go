package sbom

import (
	"encoding/json"
	"reflect"
	"strconv"
	"sync"
	"unicode/utf8"

	cdx "github.com/CycloneDX/cyclonedx-go"
)

// The fast JSON reader.
//
// cyclonedx-go decodes a CycloneDX document with encoding/json into some
// 130 types, of which wardgate keeps a dozen fields; on a 50,000-component
// SBOM that costs most of the time and memory of a diff. fastJSON reads the
// document in one pass over a string: it decodes the fields the model needs
// (components, nested ones too, with bom-ref, type, name, group, version,
// purl, hashes, licenses, supplier; metadata.component; dependencies; and
// the detection fields bomFormat, specVersion, spdxVersion) into
// cyclonedx-go's own types, so the conversion to the model is the same code
// (fromCycloneDX), and it checks every other value against the shape of the
// cyclonedx-go field it would land in (see shape). Strings are sub-strings
// of the document, not copies.
//
// It gives up (and Decode runs the reference path: detection with
// encoding/json, then cyclonedx-go) on anything it does not handle exactly
// as encoding/json does: a syntax error, a type error, a duplicate or
// case-folded key of a field it decodes, a key with escapes or non-ASCII
// bytes, a null inside an array it decodes, nesting deeper than the model
// allows. TestFastJSONMatchesReference and FuzzFastJSON hold the two paths
// to the same Document.

// fastRoute says what fastJSON found.
type fastRoute int

const (
	routeReference fastRoute = iota // not handled: use the reference path
	routeCycloneDX                  // a CycloneDX document, decoded
	routeSPDX                       // an SPDX JSON document with this spdxVersion
)

// maxFastDepth bounds the reader's recursion; deeper documents go to
// encoding/json, which allows 10,000 levels.
const maxFastDepth = 512

type cdxShapes struct {
	bom, metadata, component, hash, licenseChoice, license, entity, dependency *shape
}

var fastShapes = sync.OnceValue(func() *cdxShapes {
	cache := map[reflect.Type]*shape{}
	of := func(t reflect.Type) *shape {
		sh := shapeOf(t, cache)
		if sh.kind != shapeStruct {
			panic("sbom: cyclonedx-go type " + t.String() + " is no plain struct")
		}
		return sh
	}
	return &cdxShapes{
		bom:           of(reflect.TypeFor[cdx.BOM]()).markRead("bomFormat", "specVersion", "metadata", "components", "dependencies"),
		metadata:      of(reflect.TypeFor[cdx.Metadata]()).markRead("component"),
		component:     of(reflect.TypeFor[cdx.Component]()).markRead("bom-ref", "type", "name", "group", "version", "purl", "hashes", "licenses", "supplier", "components", "publisher", "author"),
		hash:          of(reflect.TypeFor[cdx.Hash]()).markRead("alg", "content"),
		licenseChoice: of(reflect.TypeFor[cdx.LicenseChoice]()).markRead("license", "expression"),
		license:       of(reflect.TypeFor[cdx.License]()).markRead("id", "name"),
		entity:        of(reflect.TypeFor[cdx.OrganizationalEntity]()).markRead("name"),
		dependency:    of(reflect.TypeFor[cdx.Dependency]()).markRead("ref", "dependsOn"),
	}
})

// fastBail is panicked by the reader and recovered by fastJSON.
type fastBail struct{}

type fastReader struct {
	s  string
	i  int
	sh *cdxShapes
}

// fastJSON reads s, a JSON document starting with '{'. For routeCycloneDX
// it returns the document; for routeSPDX the spdxVersion.
func fastJSON(s string) (route fastRoute, doc *Document, spdxVersion string) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(fastBail); !ok {
				panic(r)
			}
			route, doc, spdxVersion = routeReference, nil, ""
		}
	}()
	r := &fastReader{s: s, sh: fastShapes()}
	var (
		bom                               cdxBOM
		format, version, spdx             string
		seenFormat, seenVersion, seenSPDX bool
		seen                              uint8
		shapeOK                           = true
	)
	once := func(bit uint8) {
		if seen&bit != 0 {
			r.bail()
		}
		seen |= bit
	}
	r.object(func(key string) {
		switch key {
		case "bomFormat":
			once(1)
			format, seenFormat = r.stringValue(), true
		case "specVersion":
			once(2)
			version, seenVersion = r.stringValue(), true
		case "spdxVersion":
			once(4)
			spdx, seenSPDX = r.stringValue(), true
		case "metadata":
			once(8)
			if !r.null() {
				bom.subject = r.metadata()
			}
		case "components":
			once(16)
			bom.components = r.components(0)
		case "dependencies":
			once(32)
			bom.edges = r.dependencies()
		default:
			// A key that only case-folds to a field decoded here, or to
			// spdxVersion, is left to encoding/json's rules.
			if f, ok := r.sh.bom.folded[asciiUpper(key)]; ok && f.read || asciiUpper(key) == "SPDXVERSION" {
				r.bail()
			}
			// An SPDX document has fields that are no CycloneDX fields
			// (annotations), so a top-level misfit only rules out CycloneDX.
			start := r.i
			if !r.try(func() { r.field(r.sh.bom, key) }) {
				r.i = start
				r.skip(0)
				shapeOK = false
			}
		}
	})
	r.ws()
	if r.i != len(r.s) {
		r.bail() // trailing data
	}
	switch {
	case seenFormat:
		if format != "CycloneDX" || !seenVersion || !cyclonedxVersions[version] || seenSPDX || !shapeOK {
			return routeReference, nil, ""
		}
		d, err := bom.document(FormatCycloneDXJSON, version)
		if err != nil {
			return routeReference, nil, ""
		}
		return routeCycloneDX, d, ""
	case seenSPDX:
		return routeSPDX, nil, spdx
	}
	return routeReference, nil, ""
}

func (r *fastReader) bail() { panic(fastBail{}) }

// try runs f and reports whether it finished without bailing.
func (r *fastReader) try(f func()) (ok bool) {
	defer func() {
		if rec := recover(); rec != nil {
			if _, isBail := rec.(fastBail); !isBail {
				panic(rec)
			}
			ok = false
		}
	}()
	f()
	return true
}

func (r *fastReader) ws() {
	for r.i < len(r.s) {
		switch r.s[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte without consuming it.
func (r *fastReader) peek() byte {
	r.ws()
	if r.i >= len(r.s) {
		r.bail()
	}
	return r.s[r.i]
}

func (r *fastReader) expect(c byte) {
	if r.peek() != c {
		r.bail()
	}
	r.i++
}

// null consumes a null literal if one is next.
func (r *fastReader) null() bool {
	if r.peek() == 'n' {
		r.literal("null")
		return true
	}
	return false
}

func (r *fastReader) literal(lit string) {
	if len(r.s)-r.i < len(lit) || r.s[r.i:r.i+len(lit)] != lit {
		r.bail()
	}
	r.i += len(lit)
}

// object reads an object, calling f for each key with the reader at the
// value; f must consume the value.
func (r *fastReader) object(f func(key string)) {
	r.expect('{')
	if r.peek() == '}' {
		r.i++
		return
	}
	for {
		if r.peek() != '"' {
			r.bail()
		}
		key, simple := r.str()
		if !simple {
			r.bail() // escapes or non-ASCII: encoding/json's folding rules
		}
		r.expect(':')
		f(key)
		switch r.peek() {
		case ',':
			r.i++
		case '}':
			r.i++
			return
		default:
			r.bail()
		}
	}
}

// array reads an array, calling f with the reader at each element.
func (r *fastReader) array(f func()) {
	r.expect('[')
	if r.peek() == ']' {
		r.i++
		return
	}
	for {
		f()
		switch r.peek() {
		case ',':
			r.i++
		case ']':
			r.i++
			return
		default:
			r.bail()
		}
	}
}

// str reads a string at r.i (which is '"'); simple means ASCII without
// escapes, so the value is the raw text.
func (r *fastReader) str() (string, bool) {
	start := r.i + 1
	escaped, ascii := false, true
	for j := start; j < len(r.s); j++ {
		switch c := r.s[j]; {
		case c == '"':
			r.i = j + 1
			raw := r.s[start:j]
			if !escaped && (ascii || utf8.ValidString(raw)) {
				return raw, !escaped && ascii
			}
			var v string
			if err := json.Unmarshal([]byte(r.s[start-1:j+1]), &v); err != nil {
				r.bail()
			}
			return v, false
		case c == '\\':
			escaped = true
			j++
			if j >= len(r.s) {
				r.bail()
			}
			switch r.s[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(r.s) || !isHex(r.s[j+1]) || !isHex(r.s[j+2]) || !isHex(r.s[j+3]) || !isHex(r.s[j+4]) {
					r.bail()
				}
				j += 4
			default:
				r.bail()
			}
		case c < 0x20:
			r.bail()
		case c >= 0x80:
			ascii = false
		}
	}
	r.bail()
	return "", false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// stringValue reads a string or null (which leaves a Go string empty).
func (r *fastReader) stringValue() string {
	switch r.peek() {
	case '"':
		v, _ := r.str()
		return v
	case 'n':
		r.literal("null")
		return ""
	}
	r.bail()
	return ""
}

// number reads a number literal by JSON's grammar.
func (r *fastReader) number() string {
	start, s, i := r.i, r.s, r.i
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && '1' <= s[i] && s[i] <= '9':
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
	default:
		r.bail()
	}
	if i < len(s) && s[i] == '.' {
		i++
		d := i
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		if i == d {
			r.bail()
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		d := i
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		if i == d {
			r.bail()
		}
	}
	r.i = i
	return s[start:i]
}

// skip reads any value, checking only its syntax.
func (r *fastReader) skip(depth int) {
	if depth > maxFastDepth {
		r.bail()
	}
	switch c := r.peek(); {
	case c == '{':
		r.expect('{')
		if r.peek() == '}' {
			r.i++
			return
		}
		for {
			if r.peek() != '"' {
				r.bail()
			}
			r.str()
			r.expect(':')
			r.skip(depth + 1)
			switch r.peek() {
			case ',':
				r.i++
			case '}':
				r.i++
				return
			default:
				r.bail()
			}
		}
	case c == '[':
		r.array(func() { r.skip(depth + 1) })
	case c == '"':
		r.str()
	case c == 't':
		r.literal("true")
	case c == 'f':
		r.literal("false")
	case c == 'n':
		r.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		r.number()
	default:
		r.bail()
	}
}

// field checks the value of key in a struct of shape sh, as encoding/json
// would decode it: exact names first, then ASCII case-folded ones; keys
// that are no field are ignored.
func (r *fastReader) field(sh *shape, key string) {
	f, ok := sh.fields[key]
	if !ok {
		f, ok = sh.folded[asciiUpper(key)]
		if ok && f.read {
			r.bail()
		}
	}
	if !ok {
		r.skip(0)
		return
	}
	r.check(f.shape, 0)
}

// check reads a value that must fit sh.
func (r *fastReader) check(sh *shape, depth int) {
	if depth > maxFastDepth {
		r.bail()
	}
	if sh.kind == shapeExact {
		start := r.i
		r.ws()
		r.skip(depth)
		v := reflect.New(sh.typ)
		if err := json.Unmarshal([]byte(r.s[start:r.i]), v.Interface()); err != nil {
			r.bail()
		}
		return
	}
	c := r.peek()
	if c == 'n' { // null is no error for any type
		r.literal("null")
		return
	}
	switch sh.kind {
	case shapeAny:
		switch {
		case c == '-' || '0' <= c && c <= '9':
			if _, err := strconv.ParseFloat(r.number(), 64); err != nil {
				r.bail()
			}
		case c == '{':
			r.object(func(string) { r.check(sh, depth+1) })
		case c == '[':
			r.array(func() { r.check(sh, depth+1) })
		default:
			r.skip(depth)
		}
	case shapeString:
		if c != '"' {
			r.bail()
		}
		r.str()
	case shapeBool:
		switch c {
		case 't':
			r.literal("true")
		case 'f':
			r.literal("false")
		default:
			r.bail()
		}
	case shapeInt, shapeUint, shapeFloat:
		if c != '-' && (c < '0' || c > '9') {
			r.bail()
		}
		n := r.number()
		var err error
		switch sh.kind {
		case shapeInt:
			_, err = strconv.ParseInt(n, 10, sh.bits)
		case shapeUint:
			_, err = strconv.ParseUint(n, 10, sh.bits)
		default:
			_, err = strconv.ParseFloat(n, sh.bits)
		}
		if err != nil {
			r.bail()
		}
	case shapeSlice:
		if c != '[' {
			r.bail()
		}
		r.array(func() { r.check(sh.elem, depth+1) })
	case shapeMap:
		if c != '{' {
			r.bail()
		}
		r.object(func(string) { r.check(sh.elem, depth+1) })
	case shapeStruct:
		if c != '{' {
			r.bail()
		}
		r.object(func(key string) { r.field(sh, key) })
	default:
		r.bail()
	}
}

// set records that a decoded field was seen; a second occurrence bails,
// because encoding/json would merge or overwrite.
func (r *fastReader) set(seen *uint16, bit uint16) {
	if *seen&bit != 0 {
		r.bail()
	}
	*seen |= bit
}

// metadata reads the metadata object and returns its component, if any.
func (r *fastReader) metadata() *cdxPart {
	var subject *cdxPart
	var seen uint16
	r.object(func(key string) {
		if key != "component" {
			r.field(r.sh.metadata, key)
			return
		}
		r.set(&seen, 1)
		if !r.null() {
			subject = &cdxPart{}
			// The subject's children are at depth 1, as in flatten.
			r.component(subject, 0)
		}
	})
	return subject
}

// components reads a components array (or null) at a nesting depth.
func (r *fastReader) components(depth int) []cdxPart {
	if r.null() {
		return nil
	}
	if depth > maxNesting {
		r.bail() // flatten's error, with its message
	}
	cs := []cdxPart{}
	r.array(func() {
		if r.peek() != '{' {
			r.bail()
		}
		cs = grow(cs)
		cs = cs[:len(cs)+1]
		r.component(&cs[len(cs)-1], depth)
	})
	return cs
}

func (r *fastReader) component(c *cdxPart, depth int) {
	var seen uint16
	r.object(func(key string) {
		switch key {
		case "bom-ref":
			r.set(&seen, 1)
			c.ref = r.stringValue()
		case "type":
			r.set(&seen, 2)
			c.typ = r.stringValue()
		case "name":
			r.set(&seen, 4)
			c.name = r.stringValue()
		case "group":
			r.set(&seen, 8)
			c.group = r.stringValue()
		case "version":
			r.set(&seen, 16)
			c.version = r.stringValue()
		case "purl":
			r.set(&seen, 32)
			c.purl = r.stringValue()
		case "hashes":
			r.set(&seen, 64)
			c.hashes = r.hashes()
		case "licenses":
			r.set(&seen, 128)
			c.licenses = r.licenses()
		case "supplier":
			r.set(&seen, 256)
			if !r.null() {
				c.supplier = r.entity()
			}
		case "components":
			r.set(&seen, 512)
			c.children = r.components(depth + 1)
		case "publisher":
			r.set(&seen, 1024)
			c.publisher = r.stringValue()
		case "author":
			r.set(&seen, 2048)
			c.author = r.stringValue()
		default:
			r.field(r.sh.component, key)
		}
	})
}

func (r *fastReader) hashes() []cdx.Hash {
	if r.null() {
		return nil
	}
	var hs []cdx.Hash
	r.array(func() {
		var h cdx.Hash
		var seen uint16
		if r.peek() != '{' {
			r.bail()
		}
		r.object(func(key string) {
			switch key {
			case "alg":
				r.set(&seen, 1)
				h.Algorithm = cdx.HashAlgorithm(r.stringValue())
			case "content":
				r.set(&seen, 2)
				h.Value = r.stringValue()
			default:
				r.field(r.sh.hash, key)
			}
		})
		hs = append(hs, h)
	})
	return hs
}

// licenses reads a licenses array into licenseText per entry.
func (r *fastReader) licenses() []string {
	if r.null() {
		return nil
	}
	var ls []string
	r.array(func() {
		var expr, id, name string
		var seen uint16
		if r.peek() != '{' {
			r.bail()
		}
		r.object(func(key string) {
			switch key {
			case "license":
				r.set(&seen, 1)
				if !r.null() {
					id, name = r.license()
				}
			case "expression":
				r.set(&seen, 2)
				expr = r.stringValue()
			default:
				r.field(r.sh.licenseChoice, key)
			}
		})
		if t, ok := licenseText(expr, id, name); ok {
			ls = append(ls, t)
		}
	})
	return ls
}

func (r *fastReader) license() (id, name string) {
	var seen uint16
	r.object(func(key string) {
		switch key {
		case "id":
			r.set(&seen, 1)
			id = r.stringValue()
		case "name":
			r.set(&seen, 2)
			name = r.stringValue()
		default:
			r.field(r.sh.license, key)
		}
	})
	return id, name
}

// entity reads an organizational entity and returns its name.
func (r *fastReader) entity() string {
	var name string
	var seen uint16
	r.object(func(key string) {
		if key != "name" {
			r.field(r.sh.entity, key)
			return
		}
		r.set(&seen, 1)
		name = r.stringValue()
	})
	return name
}

// dependencies reads the dependencies array into raw edges, in document
// order as fromCycloneDX makes them.
func (r *fastReader) dependencies() []Dependency {
	if r.null() {
		return nil
	}
	var edges []Dependency
	r.array(func() {
		var ref string
		var seen uint16
		if r.peek() != '{' {
			r.bail()
		}
		first := len(edges)
		r.object(func(key string) {
			switch key {
			case "ref":
				r.set(&seen, 1)
				ref = r.stringValue()
			case "dependsOn":
				r.set(&seen, 2)
				if r.null() {
					return
				}
				r.array(func() {
					if r.peek() != '"' {
						r.bail()
					}
					to, _ := r.str()
					edges = append(grow(edges), Dependency{To: to})
				})
			default:
				r.field(r.sh.dependency, key)
			}
		})
		for i := first; i < len(edges); i++ {
			edges[i].From = ref
		}
	})
	return edges
}

// grow makes room for one more element, doubling: append grows large
// slices by a quarter, which for 50,000 components copies and collects
// several times the final array.
func grow[T any](s []T) []T {
	if len(s) < cap(s) {
		return s
	}
	n := make([]T, len(s), 2*cap(s)+8)
	copy(n, s)
	return n
}
