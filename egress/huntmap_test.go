package egress

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestPairAggsMatchesMap: a pair's groups, kept in a slice while the hours
// are dense and in a map once they spread, are exactly those of a plain
// map, whatever order the hours come in.
func TestPairAggsMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, tc := range []struct {
		name   string
		hour   func(i int) int64
		events int
		sparse bool
	}{
		{"in order over two days", func(i int) int64 { return int64(480000 + i/50) }, 2400, false},
		{"backwards", func(i int) int64 { return int64(480000 - i/10) }, 400, false},
		{"shuffled within two days", func(int) int64 { return int64(480000 + rng.IntN(48)) }, 3000, false},
		{"shuffled within a year", func(int) int64 { return int64(480000 + rng.IntN(24*365)) }, 3000, true},
		{"years apart", func(int) int64 { return int64(rng.IntN(100)) * 24 * 365 }, 300, true},
		{"before the epoch", func(i int) int64 { return int64(-5 - i%70) }, 500, false},
		{"dense, then one far hour", func(i int) int64 {
			if i == 499 {
				return 9_000_000
			}
			return int64(480000 + i%40)
		}, 500, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p pairAggs
			want := map[int64]agg{}
			for i := range tc.events {
				hour := tc.hour(i) * 3600
				sent := int64(rng.IntN(1000))
				g := p.group(hour)
				g.sum += sent
				g.count++
				w := want[hour]
				w.sum += sent
				w.count++
				want[hour] = w
			}
			got := map[int64]agg{}
			p.each(func(h hourAgg) {
				if _, dup := got[h.hour]; dup {
					t.Fatalf("hour %d twice", h.hour)
				}
				got[h.hour] = h.agg
			})
			if len(got) != len(want) || p.n != len(want) {
				t.Fatalf("%d groups (n %d), want %d", len(got), p.n, len(want))
			}
			for h, w := range want {
				if got[h] != w {
					t.Fatalf("hour %d: %+v, want %+v", h, got[h], w)
				}
			}
			if (p.sparse != nil) != tc.sparse {
				t.Errorf("sparse = %v, want %v", p.sparse != nil, tc.sparse)
			}
			if len(p.dense) > max(maxDenseFloor, 4*p.n) {
				t.Errorf("%d dense slots for %d groups", len(p.dense), p.n)
			}
		})
	}
}

// TestHuntMappedMatchesReader: the mapped file's line splitting counts
// lines, blanks, malformed and too-long lines exactly as lineReader does:
// CRLF, blank lines of Unicode spaces, lines of exactly the limit, one
// byte over, a last line without a newline.
func TestHuntMappedMatchesReader(t *testing.T) {
	const maxLine = 200
	good := func(dev string, sent int) string {
		return fmt.Sprintf(`{"Timestamp":"2026-03-02T10:05:00Z","DeviceName":"%s","ActionType":"ConnectionSuccess","RemoteIP":"52.1.1.1","RemoteUrl":"u","RemoteIPType":"Public","SentBytes":%d}`, dev, sent)
	}
	pad := func(s string, n int) string { // s padded with spaces inside the object to n bytes
		return s[:len(s)-1] + strings.Repeat(" ", n-len(s)) + "}"
	}
	base := good("HOSP-IOT-A", 6000000)
	lines := []string{
		base + "\n",
		base + "\r\n",
		"\n",
		" \t\r\n",
		"\u00a0\u2003\v\n",
		pad(base, maxLine+1) + "\n",   // maxLine+2 with its newline: read
		pad(base, maxLine+1) + "\r\n", // one over: too long
		pad(base, maxLine+2) + "\n",   // one over: too long
		"{broken\n",
		good("HOSP-IOT-B", 7000000) + " \r\r\n",
		strings.Repeat("x", 3*maxLine) + "\n",
		// Objects scanned in place must stop at their line's newline.
		`{"a":[1,` + "\n", // an object over two lines: two malformed lines
		`2]}` + "\n",
		`{"a":1}x` + "\n",
		`{"a":"x` + "\n",
		`{"a":1` + "\r\n",
		good("HOSP-IOT-D", 9000000) + " \t \n",
	}
	last := good("hosp-iot-c", 8000000) // no newline
	for cut := range lines {
		data := []byte(strings.Join(lines[cut:], "") + strings.Join(lines[:cut], "") + last)
		var sm, sr Stats
		am, ar := newAggregator(DefaultExfilVolume()), newAggregator(DefaultExfilVolume())
		if err := am.huntMapped(t.Context(), data, 0, len(data), maxLine, &sm); err != nil {
			t.Fatal(err)
		}
		if err := ar.huntReader(t.Context(), bytes.NewReader(data), maxLine, &sr); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(sm) != fmt.Sprint(sr) {
			t.Fatalf("rotation %d: mapped %v, reader %v", cut, sm, sr)
		}
		if sm.Lines != int64(len(lines)+1) || sm.Events != 6 || sm.Skipped != 3 || sm.Malformed != 9 {
			t.Fatalf("rotation %d: %+v", cut, sm)
		}
		if rm, rr := am.rows(), ar.rows(); !slices.Equal(rm, rr) || len(rm) != 4 {
			t.Fatalf("rotation %d: rows %v vs %v", cut, rm, rr)
		}
	}
}

// TestHuntMappedTruncated: a file cut short while it is mapped makes the
// reads past its new end fault; the hunt reports an error, it does not
// crash.
func TestHuntMappedTruncated(t *testing.T) {
	path := t.TempDir() + "/d.jsonl"
	data := defenderLines(20000)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, unmap, err := mapFile(f, int64(len(data)))
	if err != nil {
		t.Skipf("no mapping here: %v", err)
	}
	defer unmap()
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	var st Stats
	err = newAggregator(DefaultExfilVolume()).huntMapped(t.Context(), m, 0, len(m), DefaultMaxLineBytes, &st)
	if err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("err = %v, want the mapped read to fail", err)
	}
}

// TestHuntMappedDropsPages: dropping the pages read from the resident set
// (every 64 KiB here) changes nothing in what the hunt finds.
func TestHuntMappedDropsPages(t *testing.T) {
	path := t.TempDir() + "/d.jsonl"
	data := defenderLines(20000)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, unmap, err := mapFile(f, int64(len(data)))
	if err != nil {
		t.Skipf("no mapping here: %v", err)
	}
	defer unmap()
	old := dropEvery
	dropEvery = 64 << 10
	defer func() { dropEvery = old }()
	var sm, sr Stats
	am, ar := newAggregator(ExfilVolume{MinBytes: 0}), newAggregator(ExfilVolume{MinBytes: 0})
	half := bytes.IndexByte(m[len(m)/2:], '\n') + len(m)/2 + 1
	for _, c := range [][2]int{{0, half}, {half, len(m)}} {
		if err := am.huntMapped(t.Context(), m, c[0], c[1], DefaultMaxLineBytes, &sm); err != nil {
			t.Fatal(err)
		}
	}
	if err := ar.huntReader(t.Context(), bytes.NewReader(data), DefaultMaxLineBytes, &sr); err != nil {
		t.Fatal(err)
	}
	if rm, rr := am.rows(), ar.rows(); len(rm) < 1000 || !slices.Equal(rm, rr) {
		t.Fatalf("mapped %d rows, read %d rows", len(rm), len(rr))
	}
	if !bytes.Equal(m, data) {
		t.Fatal("the mapping no longer reads as the file")
	}
}

// TestScanStringEveryByte: the eight-byte loops of scanString and of
// scanObject's string values stop at exactly the bytes a byte-by-byte
// scan stops at: every byte value, at every offset in a word, with any
// filler before it.
func TestScanStringEveryByte(t *testing.T) {
	for c := range 256 {
		for pos := range 17 {
			for _, fill := range []byte{'a', ' ', '!', '#', '[', ']', 0x7f, '"' + 0x20} {
				b := append([]byte{'"'}, bytes.Repeat([]byte{fill}, pos)...)
				b = append(b, byte(c))
				b = append(b, `bcdefghij"`...)
				// The reference: byte by byte.
				wantOK, wantEnd := true, -1
				for i := 1; i < len(b); i++ {
					if b[i] == '"' {
						wantEnd = i
						break
					}
					if b[i] < 0x20 {
						wantOK = false
						break
					}
					if b[i] == '\\' {
						wantOK = false // "\b" is an escape, "\c" is not: left to the fuzz tests
						break
					}
				}
				if !wantOK {
					continue
				}
				next, s, e, _, ok := scanString(b, 0)
				if !ok || s != 1 || e != wantEnd || next != wantEnd+1 {
					t.Fatalf("scanString(%q) = %d %d %d %v, want end %d", b, next, s, e, ok, wantEnd)
				}
				line := append([]byte(`{"DeviceName":`), b[:wantEnd+1]...)
				line = append(line, '}')
				var d defRaw
				if !scanDefenderJSON(line, &d) {
					t.Fatalf("%q rejected", line)
				}
				if sp := d.span(dDeviceName); string(sp.v) != string(b[1:wantEnd]) {
					t.Fatalf("%q: value %q, want %q", line, sp.v, b[1:wantEnd])
				}
			}
		}
	}
}

// TestScanIntegersEveryLength: integers of every length from 1 to 20
// digits, followed by each byte that can end or continue a number, at the
// end of the line or not, are read (SWAR word or digit loop) exactly as
// jsonInt reads the literal, and rejected exactly as encoding/json would.
func TestScanIntegersEveryLength(t *testing.T) {
	digits := "98765432109876543210"
	for n := 1; n <= len(digits); n++ {
		for _, lit := range []string{digits[:n], "1" + strings.Repeat("0", n-1), strings.Repeat("9", n), "5" + digits[len(digits)-n+1:]} {
			for _, tail := range []string{"", ".5", "e3", "E+2", "0", ".", "e", "x", " "} {
				for _, end := range []string{"}", `,"X":1}`, `,"ReceivedBytes":7}`} {
					line := []byte(`{"SentBytes":` + lit + tail + end)
					want, wok := reference(line)
					var d defRaw
					ok := scanDefenderJSON(line, &d)
					if ok != wok {
						t.Fatalf("%s: scanner ok=%v, encoding/json %v", line, ok, wok)
					}
					if !ok {
						continue
					}
					v, vok := jsonInt([]byte(want[dSentBytes].val))
					if vok != (d.bad&(1<<dSentBytes) == 0) || (vok && d.intValue(dSentBytes) != v) {
						t.Fatalf("%s: scanned %d (bad %v), want %d (%v)", line, d.intValue(dSentBytes), d.bad&(1<<dSentBytes) != 0, v, vok)
					}
				}
			}
		}
	}
}

// FuzzHuntMappedMatchesReader: on any input, the mapped hunt (objects
// scanned in place, up to their line's newline) counts lines, events,
// blanks and malformed lines, and finds rows, exactly as the line reader
// does.
func FuzzHuntMappedMatchesReader(f *testing.F) {
	f.Add(defenderLines(3), 400)
	f.Add([]byte("{\"a\":[1,\n2]}\n{}\r\n{\"a\":1} \n\n"+string(defenderLines(1))), 40)
	f.Add([]byte(strings.TrimSuffix(string(defenderLines(2)), "\n")+" "), 300)
	f.Fuzz(func(t *testing.T, data []byte, maxLine int) {
		if len(data) == 0 || maxLine < 0 || maxLine > 1<<16 {
			return
		}
		var sm, sr Stats
		am, ar := newAggregator(ExfilVolume{MinBytes: 0}), newAggregator(ExfilVolume{MinBytes: 0})
		if err := am.huntMapped(t.Context(), data, 0, len(data), maxLine, &sm); err != nil {
			t.Fatal(err)
		}
		if err := ar.huntReader(t.Context(), bytes.NewReader(data), maxLine, &sr); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(sm) != fmt.Sprint(sr) {
			t.Fatalf("mapped %v, reader %v for %q", sm, sr, data)
		}
		if rm, rr := am.rows(), ar.rows(); !slices.Equal(rm, rr) {
			t.Fatalf("rows %v vs %v for %q", rm, rr, data)
		}
	})
}

// TestHasPrefixFold: the word and ASCII comparisons agree with
// bytes.EqualFold on the prefix, Unicode folding included.
func TestHasPrefixFold(t *testing.T) {
	names := []string{"HOSP-IOT-A", "hosp-iot-a", "HOSP-IOT", "HOSP-WS-1", "HOSP_IOT-A", "hOsP-IoT-\u212a", "\u212aOSP-IOT-", "HOSP-IOT-\xff", "", "H", "HOSP-IOT-A-VERY-LONG-NAME-0001", "ſOSP"}
	for _, p := range []string{"HOSP-IOT-", "hosp-iot-", "", "K", "k", "S", "HOSP-IOT-A-VERY-LONG", "@", "["} {
		for _, n := range names {
			want := len(n) >= len(p) && bytes.EqualFold([]byte(n[:len(p)]), []byte(p))
			if got := hasPrefixFold([]byte(n), []byte(p)); got != want {
				t.Errorf("hasPrefixFold(%q, %q) = %v, want %v", n, p, got, want)
			}
		}
	}
}
