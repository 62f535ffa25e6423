package egress

import (
	"encoding/binary"
	"math/bits"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// This file is the purpose-built JSON scanner behind the Defender parser
// and Hunt. It validates a whole line exactly as encoding/json does (the
// fuzz test FuzzDefenderJSONAgainstEncodingJSON holds it to that) but
// records only the spans of the known top-level fields and allocates
// nothing unless a field's string needs unescaping.

// Value kinds of a scanned field.
const (
	kindAbsent uint8 = iota
	kindNull
	kindString
	kindNumber
	kindOther // true, false, object or array
)

// maxNestingDepth is encoding/json's limit.
const maxNestingDepth = 10000

// span is one field's raw value: a string's content without the quotes,
// or a number's literal. esc is set when the content holds a backslash or
// a non-ASCII byte and must go through unquote.
type span struct {
	kind uint8
	esc  bool
	v    []byte
}

// strClass marks the bytes that end the fast path inside a string:
// 1 for '"', 2 for '\\', 3 for control characters, 4 for non-ASCII.
var strClass = func() (t [256]uint8) {
	for i := 0; i < 0x20; i++ {
		t[i] = 3
	}
	t['"'] = 1
	t['\\'] = 2
	for i := 0x80; i < 0x100; i++ {
		t[i] = 4
	}
	return t
}()

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipWS(b []byte, i int) int {
	for i < len(b) && isWS(b[i]) {
		i++
	}
	return i
}

// scanString scans the string starting at b[i] == '"'. It returns the
// index after the closing quote, the content span, whether the content
// needs unquote, and ok.
func scanString(b []byte, i int) (next, start, end int, esc, ok bool) {
	i++
	start = i
	for i < len(b) {
		// Eight bytes at a time while none is a quote, a backslash, a
		// control character or non-ASCII (SWAR; a borrow can only flag a
		// byte above a real match, so the lowest flagged byte is real).
		for i+8 <= len(b) {
			x := binary.LittleEndian.Uint64(b[i:])
			q := x ^ (lsb * '"')
			s := x ^ (lsb * '\\')
			if m := ((q-lsb)&^q | (s-lsb)&^s | (x-lsb*0x20)&^x | x) & msb; m != 0 {
				// The lowest flagged byte is a real match: jump to it.
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		if i >= len(b) {
			break
		}
		switch strClass[b[i]] {
		case 0:
			i++
		case 1:
			return i + 1, start, i, esc, true
		case 2:
			esc = true
			if i+1 >= len(b) {
				return 0, 0, 0, false, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex4(b[i+2:i+6]) {
					return 0, 0, 0, false, false
				}
				i += 6
			default:
				return 0, 0, 0, false, false
			}
		case 3:
			return 0, 0, 0, false, false
		default:
			esc = true
			i++
		}
	}
	return 0, 0, 0, false, false
}

func isHex4(b []byte) bool {
	for _, c := range b[:4] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// scanNumber scans a JSON number at b[i] and returns the index after it.
func scanNumber(b []byte, i int) (int, bool) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return 0, false
	}
	switch {
	case b[i] == '0':
		i++
	case '1' <= b[i] && b[i] <= '9':
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		s := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		if i == s {
			return 0, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		s := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		if i == s {
			return 0, false
		}
	}
	return i, true
}

func scanLiteral(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, false
	}
	return i + len(lit), true
}

// scanValue validates any JSON value at b[i] (after whitespace) and
// returns the index after it. depth is the nesting depth of a container
// starting here.
func scanValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch c := b[i]; {
	case c == '"':
		n, _, _, _, ok := scanString(b, i)
		return n, ok
	case c == '{':
		if depth > maxNestingDepth {
			return 0, false
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, true
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return 0, false
			}
			n, _, _, _, ok := scanString(b, i)
			if !ok {
				return 0, false
			}
			i = skipWS(b, n)
			if i >= len(b) || b[i] != ':' {
				return 0, false
			}
			if i, ok = scanValue(b, skipWS(b, i+1), depth+1); !ok {
				return 0, false
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return 0, false
			}
			if b[i] == '}' {
				return i + 1, true
			}
			if b[i] != ',' {
				return 0, false
			}
			i = skipWS(b, i+1)
		}
	case c == '[':
		if depth > maxNestingDepth {
			return 0, false
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = scanValue(b, i, depth+1); !ok {
				return 0, false
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return 0, false
			}
			if b[i] == ']' {
				return i + 1, true
			}
			if b[i] != ',' {
				return 0, false
			}
			i = skipWS(b, i+1)
		}
	case c == 't':
		return scanLiteral(b, i, "true")
	case c == 'f':
		return scanLiteral(b, i, "false")
	case c == 'n':
		return scanLiteral(b, i, "null")
	case c == '-' || '0' <= c && c <= '9':
		return scanNumber(b, i)
	}
	return 0, false
}

// scanObject validates the line b as one JSON object (surrounded by
// optional whitespace) and records in d the value span of each known
// Defender field. A later duplicate key overrides an earlier one, as in
// encoding/json.
func scanObject(b []byte, scratch *[]byte, d *defRaw) bool {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return skipWS(b, i+1) == len(b)
	}
	for pos := 0; ; pos++ {
		if i >= len(b) || b[i] != '"' {
			return false
		}
		// Exports repeat one field order: try the key the previous line
		// had at this position first. A match is the plain key followed
		// by its closing quote, a valid string needing no scan.
		f := -1
		if pos < len(d.order) && d.order[pos] >= 0 {
			g := d.order[pos]
			if e := i + 1 + len(DefenderColumns[g]); e < len(b) && b[e] == '"' && columnWords[g].equal(b[i+1:e]) {
				f = int(g)
				i = e + 1
			}
		}
		if f < 0 {
			n, ks, ke, kesc, ok := scanString(b, i)
			if !ok {
				return false
			}
			key := b[ks:ke]
			if kesc {
				*scratch = unquote((*scratch)[:0], key)
				key = *scratch
			}
			f = defenderField(key)
			if pos < len(d.order) && !kesc {
				d.order[pos] = int8(f)
			}
			i = n
		}
		i = skipWS(b, i)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		i = skipWS(b, i+1)
		if i >= len(b) {
			return false
		}
		var v span
		var ok bool
		switch c := b[i]; {
		case c == '"':
			n, s, e, esc, ok := scanString(b, i)
			if !ok {
				return false
			}
			v = span{kind: kindString, esc: esc, v: b[s:e]}
			i = n
		case c == 'n':
			if i, ok = scanLiteral(b, i, "null"); !ok {
				return false
			}
			v.kind = kindNull
		case c == '-' || '0' <= c && c <= '9':
			n, ok := scanNumber(b, i)
			if !ok {
				return false
			}
			v = span{kind: kindNumber, v: b[i:n]}
			i = n
		default:
			if i, ok = scanValue(b, i, 2); !ok {
				return false
			}
			v.kind = kindOther
		}
		if f >= 0 {
			d.put(f, v)
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return false
		}
		if b[i] == '}' {
			return skipWS(b, i+1) == len(b)
		}
		if b[i] != ',' {
			return false
		}
		i = skipWS(b, i+1)
	}
}

// words is a column name as little-endian 8-byte words, the last one
// ending with the name (overlapping the one before): comparing a key is a
// few integer compares, not a call to memequal. A name shorter than a
// word (LocalIP) is compared as a string.
type words struct {
	name string
	w    []uint64
}

var columnWords = func() (w [nDefender]words) {
	for i, name := range DefenderColumns {
		w[i].name = name
		for j := 0; j < len(name) && len(name) >= 8; j += 8 {
			k := min(j, len(name)-8)
			w[i].w = append(w[i].w, binary.LittleEndian.Uint64([]byte(name[k:k+8])))
		}
	}
	return w
}()

// equal reports whether b, as long as the name, is the name.
func (w *words) equal(b []byte) bool {
	if len(w.w) == 0 {
		return string(b) == w.name
	}
	last := len(w.w) - 1
	for j := 0; j < last; j++ {
		if binary.LittleEndian.Uint64(b[8*j:]) != w.w[j] {
			return false
		}
	}
	return binary.LittleEndian.Uint64(b[len(b)-8:]) == w.w[last]
}

// unquote appends the decoded content of a scanned JSON string (without
// quotes) to dst, exactly as encoding/json decodes it: invalid UTF-8 and
// unpaired surrogates become U+FFFD. s must have passed scanString.
func unquote(dst, s []byte) []byte {
	for r := 0; r < len(s); {
		c := s[r]
		switch {
		case c == '\\':
			r++
			switch s[r] {
			case '"', '\\', '/', '\'':
				dst = append(dst, s[r])
				r++
			case 'b':
				dst = append(dst, '\b')
				r++
			case 'f':
				dst = append(dst, '\f')
				r++
			case 'n':
				dst = append(dst, '\n')
				r++
			case 'r':
				dst = append(dst, '\r')
				r++
			case 't':
				dst = append(dst, '\t')
				r++
			case 'u':
				r--
				rr := getu4(s[r:])
				r += 6
				if utf16.IsSurrogate(rr) {
					rr1 := getu4(s[r:])
					if dec := utf16.DecodeRune(rr, rr1); dec != utf8.RuneError {
						r += 6
						dst = utf8.AppendRune(dst, dec)
						break
					}
					rr = utf8.RuneError
				}
				dst = utf8.AppendRune(dst, rr)
			}
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			r++
		default:
			rr, size := utf8.DecodeRune(s[r:])
			r += size
			dst = utf8.AppendRune(dst, rr)
		}
	}
	return dst
}

// getu4 decodes \uXXXX at the start of s, or returns -1.
func getu4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	v, err := strconv.ParseUint(string(s[2:6]), 16, 32)
	if err != nil {
		return -1
	}
	return rune(v)
}
