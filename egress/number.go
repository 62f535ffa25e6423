package egress

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Numbers in JSON telemetry are read as JSON numbers whatever their
// spelling: Zeek's JSON writer prints "ts":81.35792000000001 and
// "duration":13.734161999999998, other producers print counts as 1500.0 or
// 1.5e3. Integers take a fast path; anything else goes through
// strconv.ParseFloat after the literal is checked against JSON's number
// grammar (ParseFloat alone also takes "Inf", hex floats and underscores).
// FuzzJSONNumbersAgainstEncodingJSON holds both to encoding/json's decoding
// into int64 and float64.

// isJSONNumber reports whether b is exactly one JSON number literal.
func isJSONNumber(b []byte) bool {
	n, ok := scanNumber(b, 0)
	return ok && n == len(b)
}

// jsonInt returns the value of a JSON number literal that is an integer in
// int64's range, whatever its spelling ("1500", "1500.0", "1.5e3"). A
// fraction, an out-of-range value or a non-number is not.
func jsonInt(b []byte) (int64, bool) {
	if len(b) > 0 && (b[0] != '0' || len(b) == 1) {
		if n, ok := fastUint(b); ok {
			return n, true
		}
	}
	if !isJSONNumber(b) {
		return 0, false
	}
	if n, err := strconv.ParseInt(string(b), 10, 64); err == nil {
		return n, true
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || f != math.Trunc(f) || f < -(1<<63) || f >= 1<<63 {
		return 0, false
	}
	return int64(f), true
}

// maxEpoch is the first second of the year 10000: timestamps at or after
// it (and before the epoch) are not telemetry.
const maxEpoch = 253402300800

// parseEpoch parses epoch seconds as Zeek writes them: "1540469302.538640"
// in its ASCII logs (exact to the nanosecond), or any JSON number in its
// JSON logs ("81.35792000000001", "1.5404693025e9"), read as a float64 and
// rounded to the nanosecond.
func parseEpoch(b []byte) (time.Time, error) {
	sec, frac, _ := cutByte(b, '.')
	if s, ok := fastUint(sec); ok && len(frac) <= 9 && (len(frac) > 0 || len(sec) == len(b)) && s < maxEpoch {
		var ns int64
		digits := true
		for i := 0; i < 9; i++ {
			ns *= 10
			if i < len(frac) {
				c := frac[i]
				if c < '0' || c > '9' {
					digits = false
					break
				}
				ns += int64(c - '0')
			}
		}
		if digits {
			return time.Unix(s, ns).UTC(), nil
		}
	}
	if !isJSONNumber(b) {
		return time.Time{}, fmt.Errorf("ts %q: not epoch seconds", b)
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || f < 0 || f >= maxEpoch {
		return time.Time{}, fmt.Errorf("ts %q: not epoch seconds", b)
	}
	return epochFloat(f, 1), nil
}

// epochFloat converts f units of unit seconds since the epoch (f >= 0) to a
// time, rounded to the nanosecond.
func epochFloat(f, unit float64) time.Time {
	s := math.Floor(f * unit)
	ns := math.Round((f*unit - s) * 1e9)
	if ns >= 1e9 {
		s, ns = s+1, ns-1e9
	}
	return time.Unix(int64(s), int64(ns)).UTC()
}

func cutByte(b []byte, c byte) (before, after []byte, found bool) {
	for i, x := range b {
		if x == c {
			return b[:i], b[i+1:], true
		}
	}
	return b, nil, false
}

// numberInt converts an optional JSON number field (encoding/json leaves a
// json.Number empty for null or absent) to an integer in [lo, hi].
func numberInt(n json.Number, name string, lo, hi int64) (int64, error) {
	if n == "" {
		return 0, nil
	}
	v, ok := jsonInt([]byte(n))
	if !ok || v < lo || v > hi {
		return 0, fmt.Errorf("%s %s: want an integer in [%d, %d]", name, n, lo, hi)
	}
	return v, nil
}
