package egress_test

import (
	"bytes"
	"cmp"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/wardgate/wardgate/egress"
)

const huntInput = `{"Timestamp":"2026-03-02T10:05:00Z","DeviceName":"HOSP-IOT-PUMP-01","ActionType":"ConnectionSuccess","RemoteIP":"52.1.1.1","RemoteUrl":"up.example.com","RemoteIPType":"Public","SentBytes":3000000}
{"SentBytes":2500000,"RemoteUrl":"up.example.com","Timestamp":"2026-03-02T10:59:59.999Z","ActionType":"ConnectionSuccess","DeviceName":"HOSP-IOT-PUMP-01","RemoteIP":"52.1.1.1"}
{"Timestamp":"2026-03-02T11:00:00Z","DeviceName":"hosp-iot-pump-09","ActionType":"ConnectionSuccess","RemoteIP":"52.1.1.1","RemoteUrl":"up.example.com","RemoteIPType":"Public","SentBytes":6000000}
{"Timestamp":"2026-03-02T10:10:00Z","DeviceName":"HOSP-IOT-MRI-01","ActionType":"ConnectionSuccess","RemoteIP":"10.0.0.1","RemoteUrl":"pacs","SentBytes":90000000}
{"Timestamp":"2026-03-02T10:10:00Z","DeviceName":"HOSP-IOT-MRI-01","ActionType":"ConnectionSuccess","RemoteIP":"100.64.1.1","RemoteUrl":"cgnat","SentBytes":90000000}
{"Timestamp":"2026-03-02T10:10:00Z","DeviceName":"HOSP-IOT-MRI-01","ActionType":"ConnectionFailed","RemoteIP":"52.2.2.2","RemoteUrl":"x","RemoteIPType":"Public","SentBytes":90000000}
{"Timestamp":"2026-03-02T10:10:00Z","DeviceName":"HOSP-WS-01","ActionType":"ConnectionSuccess","RemoteIP":"52.2.2.2","RemoteUrl":"x","RemoteIPType":"Public","SentBytes":90000000}
{"Timestamp":"2026-03-02T10:10:00Z","DeviceName":"HOSP-IOT-MRI-01","ActionType":"ConnectionSuccess","RemoteIP":"52.2.2.2","RemoteUrl":"x","RemoteIPType":"Private","SentBytes":90000000}
{"Timestamp":"2026-03-02T12:10:00Z","DeviceName":"HOSP-IOT-MRI-01","ActionType":"ConnectionSuccess","RemoteIP":"52.2.2.2","RemoteUrl":"b\u00e9","RemoteIPType":"Public","SentBytes":5500000}
{"Timestamp":"2026-03-02T11:10:00Z","DeviceName":"HOSP-IOT-MRI-02","ActionType":"ConnectionSuccess","RemoteIP":"52.2.2.2","RemoteUrl":"a","RemoteIPType":"Public","SentBytes":"5500000"}
{"Timestamp":"2026-03-02T12:10:00Z","DeviceName":"HOSP-IOT-MRI-03","ActionType":"ConnectionSuccess","RemoteIP":"52.2.2.2","RemoteIPType":"Public","SentBytes":5000000}
{"Timestamp":"2026-03-02T12:10:00Z","DeviceName":"HOSP-IOT-MRI-03","ActionType":"ConnectionSuccess","RemoteIP":"52.2.2.2","RemoteIPType":"Public","SentBytes":5000000,
`

func TestHunt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.jsonl")
	if err := os.WriteFile(path, []byte(huntInput), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := egress.Hunt(t.Context(), []string{path}, egress.DefaultExfilVolume())
	if err != nil {
		t.Fatal(err)
	}
	var js bytes.Buffer
	if err := egress.WriteHuntJSON(&js, res.Rows); err != nil {
		t.Fatal(err)
	}
	// TotalBytesSent desc, then Timestamp, DeviceName, RemoteUrl ascending;
	// MRI-03's 5,000,000 is not above the threshold (its second line is
	// malformed); startswith is case-insensitive; a missing RemoteIPType
	// falls back to the address; SentBytes may be a string.
	want := `{"Timestamp":"2026-03-02T11:00:00Z","DeviceName":"hosp-iot-pump-09","RemoteUrl":"up.example.com","TotalBytesSent":6000000,"ConnectionCount":1}
{"Timestamp":"2026-03-02T10:00:00Z","DeviceName":"HOSP-IOT-PUMP-01","RemoteUrl":"up.example.com","TotalBytesSent":5500000,"ConnectionCount":2}
{"Timestamp":"2026-03-02T11:00:00Z","DeviceName":"HOSP-IOT-MRI-02","RemoteUrl":"a","TotalBytesSent":5500000,"ConnectionCount":1}
{"Timestamp":"2026-03-02T12:00:00Z","DeviceName":"HOSP-IOT-MRI-01","RemoteUrl":"bé","TotalBytesSent":5500000,"ConnectionCount":1}
`
	if js.String() != want {
		t.Errorf("json:\n%s\nwant:\n%s", js.String(), want)
	}
	if res.Stats.Events != 11 || res.Stats.Malformed != 1 || !slices.Equal(res.Stats.MalformedLines, []int64{12}) {
		t.Errorf("stats %v", res.Stats)
	}
	var tb bytes.Buffer
	if err := egress.WriteHuntTable(&tb, res.Rows[:2]); err != nil {
		t.Fatal(err)
	}
	wantTable := "Timestamp             DeviceName        RemoteUrl       TotalBytesSent  ConnectionCount\n" +
		"2026-03-02T11:00:00Z  hosp-iot-pump-09  up.example.com  6000000         1\n" +
		"2026-03-02T10:00:00Z  HOSP-IOT-PUMP-01  up.example.com  5500000         2\n"
	if tb.String() != wantTable {
		t.Errorf("table:\n%s\nwant:\n%s", tb.String(), wantTable)
	}
}

// TestHuntParallelMatchesScan: on a file large enough to be split, the
// parallel scanner gives the same rows and malformed line numbers as the
// sequential Scan path (the same data through standard input).
func TestHuntParallelMatchesScan(t *testing.T) {
	var b bytes.Buffer
	for i := range 20000 {
		if i%5000 == 4999 {
			b.WriteString("{broken\n")
			continue
		}
		// Every seventh URL is escaped (the scanner's unquote buffer is
		// reused across lines), every eleventh device name too.
		url := fmt.Sprintf("u%d.example.com", i%3)
		if i%7 == 0 {
			url = fmt.Sprintf(`https:\/\/u%d.example.com\/%d`, i%3, i%4)
		}
		dev := fmt.Sprintf("HOSP-IOT-D-%d", i%7)
		if i%11 == 0 {
			dev = fmt.Sprintf(`HOSP-IOT-\u0044-%d`, i%7)
		}
		fmt.Fprintf(&b, `{"Timestamp":"2026-03-02T%02d:%02d:00Z","DeviceName":"%s","ActionType":"ConnectionSuccess","RemoteIP":"52.1.1.%d","RemoteUrl":"%s","RemoteIPType":"Public","SentBytes":%d}`+"\n",
			i%24, i%60, dev, i%5, url, 100000+i*37)
	}
	path := filepath.Join(t.TempDir(), "big.jsonl")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	par, err := egress.Hunt(t.Context(), []string{path}, egress.DefaultExfilVolume())
	if err != nil {
		t.Fatal(err)
	}
	// The reference: Scan (sequential, Event by Event) and a plain map.
	type key struct {
		dev, url string
		hour     int64
	}
	sums := map[key]*egress.HuntRow{}
	st, err := egress.Scan(bytes.NewReader(b.Bytes()), func(ev *egress.Event) error {
		k := key{ev.DeviceName, ev.RemoteURL, ev.Time.Unix() / 3600 * 3600}
		r := sums[k]
		if r == nil {
			r = &egress.HuntRow{Timestamp: time.Unix(k.hour, 0).UTC(), DeviceName: k.dev, RemoteUrl: k.url}
			sums[k] = r
		}
		r.TotalBytesSent += ev.SentBytes
		r.ConnectionCount++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var seq []egress.HuntRow
	for _, r := range sums {
		if r.TotalBytesSent > egress.DefaultExfilBytes {
			seq = append(seq, *r)
		}
	}
	slices.SortFunc(seq, func(x, y egress.HuntRow) int {
		return cmp.Or(-cmp.Compare(x.TotalBytesSent, y.TotalBytesSent), x.Timestamp.Compare(y.Timestamp), cmp.Compare(x.DeviceName, y.DeviceName), cmp.Compare(x.RemoteUrl, y.RemoteUrl))
	})
	if len(par.Rows) == 0 || !slices.Equal(par.Rows, seq) {
		t.Fatalf("parallel %d rows, sequential %d rows", len(par.Rows), len(seq))
	}
	if !slices.Equal(par.Stats.MalformedLines, st.MalformedLines) {
		t.Errorf("malformed lines: parallel %v, Scan %v", par.Stats.MalformedLines, st.MalformedLines)
	}
	if want := []int64{5000, 10000, 15000, 20000}; !slices.Equal(par.Stats.MalformedLines, want) || par.Stats.Lines != 20000 {
		t.Errorf("parallel stats %v", par.Stats)
	}
}

// TestHuntInventory: Zeek and OCSF records carry addresses, not device
// names. With an inventory the hunt names them by their local address; an
// address no device has names itself; an empty prefix selects every
// device.
func TestHuntInventory(t *testing.T) {
	dir := t.TempDir()
	zeek := "#separator \\x09\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\n" +
		"1772446200.000000\tC1\t10.20.1.11\t50000\t198.51.100.7\t443\ttcp\t-\t1.5\t4000000\t100\tSF\n" +
		"1772446800.000000\tC2\t10.20.1.11\t50001\t198.51.100.7\t443\ttcp\t-\t1.5\t2000000\t100\tSF\n" +
		"1772446800.000000\tC3\t10.99.0.5\t50001\t198.51.100.7\t443\ttcp\t-\t1.5\t7000000\t100\tSF\n" +
		"1772446800.000000\tC4\t10.20.1.12\t50001\t10.0.0.9\t443\ttcp\t-\t1.5\t9000000\t100\tSF\n"
	ocsf := `{"class_uid":4001,"activity_id":6,"time":1772446500000,"src_endpoint":{"ip":"10.30.1.11"},"dst_endpoint":{"ip":"203.0.113.9","hostname":"files.example.org"},"traffic":{"bytes_out":6.5e6}}
{"class_uid":4001,"activity_id":6,"time":1772446500000,"device":{"hostname":"hvac-7.local"},"src_endpoint":{"ip":"10.40.1.11"},"dst_endpoint":{"ip":"203.0.113.9","hostname":"files.example.org"},"traffic":{"bytes_out":6e6}}
`
	zp, op := filepath.Join(dir, "conn.log"), filepath.Join(dir, "ocsf.jsonl")
	for p, s := range map[string]string{zp: zeek, op: ocsf} {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	inv, err := egress.NewInventory([]egress.Device{
		{Name: "HOSP-IOT-PUMP-01", Class: "infusion-pump", Addresses: []netip.Addr{netip.MustParseAddr("10.20.1.11")}},
		{Name: "HOSP-IOT-MRI-01", Class: "mri-console", Addresses: []netip.Addr{netip.MustParseAddr("10.30.1.11")}},
		{Name: "HOSP-IOT-HVAC-01", Class: "hvac-controller", Addresses: []netip.Addr{netip.MustParseAddr("10.40.1.11")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	rows := func(rule egress.ExfilVolume, files ...string) string {
		t.Helper()
		res, err := egress.Hunt(t.Context(), files, rule)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := egress.WriteHuntJSON(&b, res.Rows); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	rule := egress.DefaultExfilVolume()
	if got := rows(rule, zp, op); got != "" {
		t.Errorf("without an inventory, addresses do not start with HOSP-IOT-:\n%s", got)
	}
	rule.Inventory = inv
	want := `{"Timestamp":"2026-03-02T10:00:00Z","DeviceName":"HOSP-IOT-MRI-01","RemoteUrl":"files.example.org","TotalBytesSent":6500000,"ConnectionCount":1}
{"Timestamp":"2026-03-02T10:00:00Z","DeviceName":"HOSP-IOT-PUMP-01","RemoteUrl":"","TotalBytesSent":6000000,"ConnectionCount":2}
`
	// The OCSF event with a device host name keeps it (hvac-7.local), as
	// Defender's DeviceName is kept: it does not start with HOSP-IOT-.
	if got := rows(rule, zp, op); got != want {
		t.Errorf("with the inventory:\n%s\nwant:\n%s", got, want)
	}
	rule.DevicePrefix = ""
	want = `{"Timestamp":"2026-03-02T10:00:00Z","DeviceName":"10.99.0.5","RemoteUrl":"","TotalBytesSent":7000000,"ConnectionCount":1}
{"Timestamp":"2026-03-02T10:00:00Z","DeviceName":"HOSP-IOT-MRI-01","RemoteUrl":"files.example.org","TotalBytesSent":6500000,"ConnectionCount":1}
{"Timestamp":"2026-03-02T10:00:00Z","DeviceName":"HOSP-IOT-PUMP-01","RemoteUrl":"","TotalBytesSent":6000000,"ConnectionCount":2}
{"Timestamp":"2026-03-02T10:00:00Z","DeviceName":"hvac-7.local","RemoteUrl":"files.example.org","TotalBytesSent":6000000,"ConnectionCount":1}
`
	if got := rows(rule, zp, op); got != want {
		t.Errorf(`--prefix "": every device:`+"\n%s\nwant:\n%s", got, want)
	}
	// Defender JSON records without a DeviceName take the same path.
	dp := filepath.Join(dir, "d.jsonl")
	if err := os.WriteFile(dp, []byte(`{"Timestamp":"2026-03-02T10:05:00Z","LocalIP":"10.20.1.11","ActionType":"ConnectionSuccess","RemoteIP":"52.1.1.1","RemoteUrl":"up.example.com","RemoteIPType":"Public","SentBytes":6000000}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rule.DevicePrefix = egress.DefaultDevicePrefix
	if got := rows(rule, dp); got != `{"Timestamp":"2026-03-02T10:00:00Z","DeviceName":"HOSP-IOT-PUMP-01","RemoteUrl":"up.example.com","TotalBytesSent":6000000,"ConnectionCount":1}`+"\n" {
		t.Errorf("defender without DeviceName: %s", got)
	}
}
