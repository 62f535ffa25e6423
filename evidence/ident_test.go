package evidence_test

import (
	"strings"
	"testing"

	"github.com/wardgate/wardgate/evidence"
)

func TestCheckIdentifier(t *testing.T) {
	for _, ok := range []string{"HOSP-IOT-PUMP-07", "infusion-pump", "2.4.0", "Pumpe Station 3", "患者モニター-1", strings.Repeat("x", evidence.MaxIdentifierBytes)} {
		if err := evidence.CheckIdentifier(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"", "empty"},
		{strings.Repeat("x", evidence.MaxIdentifierBytes+1), "longer than 256 bytes"},
		{"P-1\x00", "control character U+0000 at byte 3"},
		{"P-1\nforged line", "control character U+000A at byte 3"},
		{"P-\x1b[31m1", "control character U+001B at byte 2"},
		{"P-\u00851", "control character U+0085 at byte 2"},
		{"P-\u202e1", "bidirectional formatting character U+202E at byte 2"},
		{"P-\xff", "not valid UTF-8"},
		{"P-\ufffd", "U+FFFD at byte 2"},
		{" P-1", "starts with white space"},
		{"P-1\u00a0", "ends with white space"},
	} {
		err := evidence.CheckIdentifier(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.in, err, tc.want)
		}
	}
}
