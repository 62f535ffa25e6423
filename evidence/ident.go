package evidence

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// MaxIdentifierBytes bounds an identifier: a device ID, class, segment or
// installed version, a vendor, product or version name.
const MaxIdentifierBytes = 256

// CheckIdentifier reports why s cannot be an identifier, or nil. An
// identifier is non-empty UTF-8 of at most MaxIdentifierBytes, without
// control characters (Unicode Cc: NUL, newline, ESC...), without
// bidirectional formatting characters (which reorder what a terminal
// shows), without U+FFFD (what invalid UTF-8 and lone surrogate escapes
// decode to, so two different byte strings would become one ID), and
// without leading or trailing white space. Identifiers are printed in
// logs, tables and messages; these rules keep what is printed what was
// meant.
func CheckIdentifier(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("empty")
	case len(s) > MaxIdentifierBytes:
		return fmt.Errorf("longer than %d bytes", MaxIdentifierBytes)
	case !utf8.ValidString(s):
		return fmt.Errorf("not valid UTF-8")
	}
	for i, r := range s {
		switch {
		case r == utf8.RuneError:
			return fmt.Errorf("holds U+FFFD at byte %d (invalid UTF-8 or a lone surrogate escape)", i)
		case unicode.IsControl(r):
			return fmt.Errorf("holds control character %U at byte %d", r, i)
		case unicode.Is(unicode.Bidi_Control, r):
			return fmt.Errorf("holds bidirectional formatting character %U at byte %d", r, i)
		}
	}
	if r, _ := utf8.DecodeRuneInString(s); unicode.IsSpace(r) {
		return fmt.Errorf("starts with white space")
	}
	if r, _ := utf8.DecodeLastRuneInString(s); unicode.IsSpace(r) {
		return fmt.Errorf("ends with white space")
	}
	return nil
}
