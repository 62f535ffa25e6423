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

// isWS reports whether c is JSON whitespace within a line: '\n' is JSON
// whitespace too, but lines are split at it before they are scanned, and
// the hunt relies on the scanner stopping at it (see scanObjectPrefix).
func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\r' }

// skipWS skips whitespace from b[i]. Most calls find none: a byte above
// ' ' ends the loop after one compare.
func skipWS(b []byte, i int) int {
	for i < len(b) && b[i] <= ' ' && isWS(b[i]) {
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
			// x^0x02 maps '"' to 0x20 and keeps control characters
			// below it: one compare finds both.
			q := x ^ (lsb * 0x02)
			s := x ^ (lsb * '\\')
			if m := ((q-lsb*0x21)&^q | (s-lsb)&^s | x) & msb; m != 0 {
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
	end, ok := scanObjectPrefix(b, scratch, d)
	return ok && end == len(b)
}

// scanObjectPrefix is scanObject on the start of b: it validates one JSON
// object at the start of b, followed by optional whitespace, and returns
// the index after that whitespace. '\n' is not whitespace here (lines
// never hold one), so an object scanned in place in a file, b running on
// past the line's end, stops at its line's newline: a hunt reading a
// mapped file checks that the byte at the index returned is that newline.
func scanObjectPrefix(b []byte, scratch *[]byte, d *defRaw) (int, bool) {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return 0, false
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return skipWS(b, i+1), true
	}
	for pos := 0; ; pos++ {
		// Exports repeat one field order: try the key the previous line
		// had at this position first. A match is the quoted plain key
		// and its colon, a valid key needing no scan.
		f := -1
		if pos < len(d.order) && d.order[pos] >= 0 {
			if g := d.order[pos]; keyPats[g].match(b, i) {
				f = int(g)
				i += keyPats[g].n
			}
		}
		if f < 0 {
			if i >= len(b) || b[i] != '"' {
				return 0, false
			}
			n, ks, ke, kesc, ok := scanString(b, i)
			if !ok {
				return 0, false
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
			i = skipWS(b, n)
			if i >= len(b) || b[i] != ':' {
				return 0, false
			}
			i++
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return 0, false
		}
		switch c := b[i]; {
		case c == '"':
			// Most values are plain ASCII: look for the closing quote
			// eight bytes at a time; anything else (a backslash, a
			// control character, non-ASCII, the line's last bytes) is
			// scanned again by scanString.
			j := i + 1
			for j+8 <= len(b) {
				x := binary.LittleEndian.Uint64(b[j:])
				q := x ^ (lsb * 0x02) // as in scanString
				s := x ^ (lsb * '\\')
				if m := ((q-lsb*0x21)&^q | (s-lsb)&^s | x) & msb; m != 0 {
					j += bits.TrailingZeros64(m) >> 3
					break
				}
				j += 8
			}
			if j < len(b) && b[j] == '"' {
				if uint(f) < nDefender {
					// d.putString, inlined.
					d.f[f] = span{kind: kindString, v: b[i+1 : j]}
					bit := uint16(1) << f
					d.set |= bit
					d.bad &^= bit
					if intFields&bit != 0 {
						d.putIntString(f)
					}
				}
				i = j + 1
				break
			}
			n, s, e, esc, ok := scanString(b, i)
			if !ok {
				return 0, false
			}
			if f >= 0 {
				d.putString(f, b[s:e], esc)
			}
			i = n
		case '1' <= c && c <= '9':
			// Plain decimal digits, the common integer, are read as they
			// are scanned; anything else goes through scanNumber.
			j, v := i, int64(0)
			for j < len(b) && j-i < 18 && b[j]-'0' < 10 {
				v = v*10 + int64(b[j]-'0')
				j++
			}
			fast := true
			if j < len(b) && (b[j]-'0' < 10 || b[j] == '.' || b[j] == 'e' || b[j] == 'E') {
				var ok bool
				if j, ok = scanNumber(b, i); !ok {
					return 0, false
				}
				fast = false
			}
			if uint(f) < nDefender {
				// d.putNumber, inlined.
				d.f[f] = span{kind: kindNumber, v: b[i:j]}
				bit := uint16(1) << f
				d.set |= bit
				if intFields&bit == 0 || !fast || (portFields&bit != 0 && v > 65535) {
					d.putNumberSlow(f, b[i:j], v, fast)
				} else {
					d.bad &^= bit
					d.iv[f] = v
				}
			}
			i = j
		case c == '-' || c == '0':
			n, ok := scanNumber(b, i)
			if !ok {
				return 0, false
			}
			if f >= 0 {
				d.putNumber(f, b[i:n], 0, false)
			}
			i = n
		case c == 'n':
			var ok bool
			if i, ok = scanLiteral(b, i, "null"); !ok {
				return 0, false
			}
			if f >= 0 {
				d.putNull(f)
			}
		default:
			var ok bool
			if i, ok = scanValue(b, i, 2); !ok {
				return 0, false
			}
			if f >= 0 {
				d.putOther(f)
			}
		}
		if i < len(b) && b[i] == ',' {
			i++
			if i < len(b) && b[i] == '"' {
				continue
			}
			i = skipWS(b, i)
			continue
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return 0, false
		}
		if b[i] == '}' {
			return skipWS(b, i+1), true
		}
		if b[i] != ',' {
			return 0, false
		}
		i = skipWS(b, i+1)
	}
}

// keyPat is a column's key as it appears in an object, `"Name":`, as
// little-endian 8-byte words: the first, the last (overlapping the one
// before) and those between. Every pattern is at least 10 bytes long.
type keyPat struct {
	n     int
	first uint64
	last  uint64
	mid   [2]uint64
	nmid  int
	pat   string
}

var keyPats = func() (p [nDefender]keyPat) {
	for i, name := range DefenderColumns {
		s := `"` + name + `":`
		k := keyPat{n: len(s), pat: s}
		k.first = binary.LittleEndian.Uint64([]byte(s))
		k.last = binary.LittleEndian.Uint64([]byte(s[len(s)-8:]))
		for j := 8; j < len(s)-8; j += 8 {
			k.mid[k.nmid] = binary.LittleEndian.Uint64([]byte(s[j:]))
			k.nmid++
		}
		p[i] = k
	}
	return p
}()

// match reports whether b[i:] starts with the pattern.
func (k *keyPat) match(b []byte, i int) bool {
	if i < 0 || len(b)-i < k.n {
		return false
	}
	b = b[i:]
	if binary.LittleEndian.Uint64(b) != k.first || binary.LittleEndian.Uint64(b[k.n-8:]) != k.last {
		return false
	}
	for j := 0; j < k.nmid; j++ {
		if binary.LittleEndian.Uint64(b[8+8*j:]) != k.mid[j] {
			return false
		}
	}
	return true
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
