package egress

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"strings"
	"testing"
)

// refField is one field as encoding/json sees it.
type refField struct {
	kind uint8
	val  string // decoded string or number literal
}

// reference extracts the known Defender fields with encoding/json: ok is
// false when encoding/json rejects the line as one JSON object.
func reference(line []byte) (f [nDefender]refField, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return f, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return f, false
	}
	for i, name := range DefenderColumns {
		v, present := m[name]
		switch x := v.(type) {
		case nil:
			if present {
				f[i] = refField{kind: kindNull}
			}
		case string:
			f[i] = refField{kind: kindString, val: x}
		case json.Number:
			f[i] = refField{kind: kindNumber, val: string(x)}
		default:
			f[i] = refField{kind: kindOther}
		}
	}
	return f, true
}

// primer has every known key, so its field order becomes the scanner's
// guess for the next line.
const primer = `{"Timestamp":"t","DeviceId":"i","DeviceName":"n","ActionType":"a","RemoteIP":"r","RemotePort":1,"RemoteUrl":"u","RemoteIPType":"p","LocalIP":"l","LocalPort":2,"Protocol":"x","InitiatingProcessFileName":"f","SentBytes":3,"ReceivedBytes":4}`

// fast scans line three times: after the primer, and twice more so the
// line's own key order is the guess; all three must agree.
func spans(f [nDefender]span) (out [nDefender]refField) {
	for i, s := range f {
		out[i] = refField{kind: s.kind, val: fmt.Sprint(s.esc, string(s.v))}
	}
	return out
}

// fields is every field's span as the accessors see it.
func (d *defRaw) fields() (out [nDefender]span) {
	for f := range out {
		out[f] = d.span(f)
	}
	return out
}

func fast(line []byte) (f [nDefender]refField, ok bool) {
	var d defRaw
	if !scanDefenderJSON([]byte(primer), &d) {
		panic("primer rejected")
	}
	ok = scanDefenderJSON(line, &d)
	first := spans(d.fields())
	for range 2 {
		if scanDefenderJSON(line, &d) != ok || (ok && spans(d.fields()) != first) {
			panic(fmt.Sprintf("scanner unstable across repeated scans of %q", line))
		}
	}
	if !ok {
		return f, false
	}
	// The integer read as the number is scanned (one word of digits, or
	// digit by digit) is the literal's value as jsonInt reads it.
	for i, s := range d.fields() {
		if s.kind == kindNumber && intFields&(1<<i) != 0 && d.bad&(1<<i) == 0 {
			if want, ok := jsonInt(s.v); !ok || d.iv[i] != want {
				panic(fmt.Sprintf("%s %q: scanned %d, jsonInt %d, %v", DefenderColumns[i], s.v, d.iv[i], want, ok))
			}
		}
	}
	for i, s := range d.fields() {
		f[i].kind = s.kind
		switch s.kind {
		case kindString:
			f[i].val = string(unquote(nil, s.v))
		case kindNumber:
			f[i].val = string(s.v)
		}
	}
	return f, true
}

func seedLines(f *testing.F) {
	for _, s := range []string{
		`{"Timestamp":"2026-03-02T10:15:00Z","DeviceName":"HOSP-IOT-A","SentBytes":12,"RemoteUrl":"a\u00e9\ud83d\ude00\/b"}`,
		`{"DeviceName":"x","DeviceName":"y","RemotePort":-0.5e3,"X":[1,{"a":[true,false,null]}]}`,
		`{"Device\u004eame":"esc key","SentBytes":"7"}`, `{}`, ` { "a" : 1 } `, `[1]`, `null`, `{"a":"\ud800"}`,
		"{\"a\":\"\xff\xfe\"}", `{"a":01}`, `{"a":1.}`, `{"a":"\x"}`, `{"a":1}x`, `{"a" 1}`,
	} {
		f.Add([]byte(s))
	}
	if b, err := os.ReadFile("../fixtures/fleet/testdata/defender.jsonl"); err == nil {
		for _, l := range bytes.SplitN(b, []byte{'\n'}, 4)[:3] {
			f.Add(l)
		}
	}
}

// FuzzDefenderJSONAgainstEncodingJSON holds the purpose-built scanner to
// encoding/json: both accept the line and extract the same fields, or
// both reject it.
func FuzzDefenderJSONAgainstEncodingJSON(f *testing.F) {
	seedLines(f)
	f.Fuzz(func(t *testing.T, line []byte) {
		if len(bytes.TrimSpace(line)) == 0 || bytes.IndexByte(line, '\n') >= 0 {
			return // Scan handles blank lines and splits on newlines before the scanner
		}
		want, wok := reference(line)
		got, gok := fast(line)
		if wok != gok {
			t.Fatalf("encoding/json ok=%v, scanner ok=%v for %q", wok, gok, line)
		}
		if got != want {
			t.Fatalf("fields differ for %q:\n got %+v\nwant %+v", line, got, want)
		}
	})
}

// FuzzHuntLine: the hunt's fast path rejects exactly the lines Scan
// counts as malformed, and never panics.
func FuzzHuntLine(f *testing.F) {
	seedLines(f)
	f.Fuzz(func(t *testing.T, line []byte) {
		if len(bytes.TrimSpace(line)) == 0 || bytes.ContainsAny(line, "\r\n") {
			return
		}
		var d defRaw
		var sb [3][]byte
		a := newAggregator(DefaultExfilVolume())
		huntOK := a.lineJSON(line, &d, &sb)
		st, err := Scan(bytes.NewReader(line), func(*Event) error { return nil }, WithFormat(FormatDefenderJSON))
		if err != nil {
			t.Fatal(err)
		}
		if huntOK != (st.Malformed == 0) {
			t.Fatalf("hunt ok=%v, scan malformed=%d for %q", huntOK, st.Malformed, line)
		}
	})
}

// fuzzScan asserts Scan's invariants on any input in a format: no panic,
// no error, every line accounted for exactly once.
func fuzzScan(t *testing.T, data []byte, format Format) {
	var n int64
	st, err := Scan(bytes.NewReader(data), func(*Event) error { n++; return nil }, WithFormat(format), WithMaxLineBytes(4096))
	if err != nil {
		t.Fatal(err)
	}
	if st.Events != n || st.Events+st.Skipped+st.Malformed != st.Lines || int64(len(st.MalformedLines)) != min(st.Malformed, MaxMalformedReported) {
		t.Fatalf("stats do not add up: %+v (events seen %d)", st, n)
	}
	if st.Bytes != int64(len(data)) {
		t.Fatalf("read %d of %d bytes", st.Bytes, len(data))
	}
}

func FuzzScanZeekTSV(f *testing.F) {
	f.Add(zeekLines(3))
	if b, err := os.ReadFile("../../shared/data/telemetry/iot23-honeypot-4-1-philips-hue.conn.log.labeled"); err == nil {
		f.Add(b[:min(len(b), 4096)])
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzScan(t, data, FormatZeekTSV) })
}

func FuzzScanZeekJSON(f *testing.F) {
	f.Add([]byte(`{"ts":1540469302.53864,"id.orig_h":"192.168.1.132","id.orig_p":1,"id.resp_h":"1.1.1.1","id.resp_p":2,"conn_state":"SF"}` + "\n{}\n"))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzScan(t, data, FormatZeekJSON) })
}

func FuzzScanOCSF(f *testing.F) {
	f.Add([]byte(`{"class_uid":4001,"activity_id":6,"time":1767609000000,"src_endpoint":{"ip":"10.0.0.1"},"dst_endpoint":{"ip":"1.2.3.4","port":443}}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzScan(t, data, FormatOCSF) })
}

func FuzzScanDefenderCSV(f *testing.F) {
	f.Add([]byte("Timestamp,DeviceName,SentBytes\n2026-03-02T10:15:00Z,\"a,\"\"b\",5\n"))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzScan(t, data, FormatDefenderCSV) })
}

func FuzzScanDefenderJSON(f *testing.F) {
	seedLines(f)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzScan(t, data, FormatDefenderJSON) })
}

var _ = strings.NewReader

// FuzzJSONNumbersAgainstEncodingJSON holds the number readers to
// encoding/json: jsonInt accepts exactly the literals encoding/json decodes
// into an int64, or into a float64 with an integral value in int64's
// range, and gives the same value; parseEpoch accepts every JSON number
// encoding/json decodes into a float64 in [0, year 10000) and lands within
// a microsecond of it (float64 resolves 2^-22 s at today's epoch).
var zeekASCIIEpoch = regexp.MustCompile(`^[0-9]+(\.[0-9]{1,9})?$`)

func FuzzJSONNumbersAgainstEncodingJSON(f *testing.F) {
	for _, s := range []string{"0", "48", "-7", "1500.0", "1.5e3", "1E+3", "81.35792000000001", "13.734161999999998", "1540469302.538640",
		"9223372036854775807", "9223372036854775808", "-9223372036854775808", "1e19", "0.5", "1e400", "01", "1.", ".5", "+1", "Inf", "0x10", "1_0", "-0", "-0.0e-5", "2.5e-324"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var num json.Number
		valid := json.Unmarshal(b, &num) == nil && isJSONNumber(bytes.TrimSpace(b)) && len(bytes.TrimSpace(b)) == len(b)
		if isJSONNumber(b) != valid {
			t.Fatalf("isJSONNumber(%q) = %v, encoding/json says %v", b, !valid, valid)
		}
		want, wantOK := int64(0), false
		var i int64
		var fl float64
		if json.Unmarshal(b, &i) == nil && valid {
			want, wantOK = i, true
		} else if json.Unmarshal(b, &fl) == nil && valid && fl == math.Trunc(fl) && fl >= -(1<<63) && fl < 1<<63 {
			want, wantOK = int64(fl), true
		}
		if got, ok := jsonInt(b); ok != wantOK || got != want {
			t.Fatalf("jsonInt(%q) = %d, %v; encoding/json gives %d, %v", b, got, ok, want, wantOK)
		}
		fl = 0
		fok := valid && json.Unmarshal(b, &fl) == nil && fl >= 0 && fl < maxEpoch
		got, err := parseEpoch(b)
		if (err == nil) != fok {
			if err == nil && !valid && zeekASCIIEpoch.Match(b) {
				return // Zeek's ASCII form takes leading zeros JSON forbids ("0123.5")
			}
			t.Fatalf("parseEpoch(%q): err %v; encoding/json float %v ok=%v", b, err, fl, fok)
		}
		if err == nil {
			ref := float64(got.Unix()) + float64(got.Nanosecond())/1e9
			if d := math.Abs(ref - fl); d > 1e-6 && d > fl*1e-15 {
				t.Fatalf("parseEpoch(%q) = %v (%.9f), encoding/json %.9f", b, got, ref, fl)
			}
		}
	})
}

// TestKeyPats: the word compare of quoted keys agrees with byte equality
// on every key, at every offset, on near misses and on short input.
func TestKeyPats(t *testing.T) {
	for i := range DefenderColumns {
		for j := range DefenderColumns {
			other := []byte(keyPats[j].pat + "1,")
			if got := keyPats[i].match(other, 0); got != (i == j) {
				t.Errorf("%s at %s: %v", keyPats[i].pat, other, got)
			}
			if got := keyPats[i].match(append([]byte(" x"), other...), 2); got != (i == j) {
				t.Errorf("%s at offset 2 of %s: %v", keyPats[i].pat, other, got)
			}
		}
		pat := keyPats[i].pat
		for k := range len(pat) {
			b := []byte(pat)
			b[k] ^= 0x20
			if keyPats[i].match(b, 0) {
				t.Errorf("%s matches %s", pat, b)
			}
		}
		if keyPats[i].match([]byte(pat[:len(pat)-1]), 0) || keyPats[i].match([]byte(pat), 1) {
			t.Errorf("%s matches a shorter input", pat)
		}
	}
}
