package cli

import (
	"strconv"
	"strings"
	"unicode"
)

// termSafe returns s as it may be printed in a table on a terminal: as is
// when every rune is printable and not a bidirectional formatting
// character, else Go-quoted ("P-1\n\x1b[31m"), so a device ID or name from
// the log or an old release cannot add lines, move the cursor or recolour
// the output.
func termSafe(s string) string {
	if strings.IndexFunc(s, func(r rune) bool {
		return !unicode.IsPrint(r) && r != ' ' || unicode.Is(unicode.Bidi_Control, r) || r == unicode.ReplacementChar
	}) < 0 {
		return s
	}
	return strconv.Quote(s)
}
