package egress_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/egress"
)

const hueCapture = "../../shared/data/telemetry/iot23-honeypot-4-1-philips-hue.conn.log.labeled"

func scanAll(t *testing.T, in string, opts ...egress.ScanOption) ([]egress.Event, egress.Stats) {
	t.Helper()
	var evs []egress.Event
	st, err := egress.Scan(strings.NewReader(in), func(ev *egress.Event) error { evs = append(evs, *ev); return nil }, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return evs, st
}

func TestScanDefenderJSON(t *testing.T) {
	in := `{"Timestamp":"2026-03-02T10:15:00.1234567Z","DeviceId":"d1","DeviceName":"HOSP-IOT-PUMP-01","ActionType":"ConnectionSuccess","RemoteIP":"52.1.2.3","RemotePort":443,"RemoteUrl":"https:\/\/a.example.com\/x","RemoteIPType":"Public","LocalIP":"10.20.1.11","LocalPort":"51000","Protocol":"Tcp","InitiatingProcessFileName":"pump\u0064","SentBytes":1200,"ReceivedBytes":null,"Extra":{"nested":[1,2,{"a":"b"}]}}
not json
{"SentBytes":5,"Timestamp":"2026-03-02T10:16:00Z","DeviceName":"X"}

{"Timestamp":"2026-03-02T10:17:00Z","SentBytes":"12x"}
{"Timestamp":"2026-03-02T10:17:00Z","DeviceName":5}
{"Timestamp":"2026-03-02T10:17:00Z"} trailing
`
	evs, st := scanAll(t, in)
	want := egress.Stats{Format: egress.FormatDefenderJSON, Lines: 7, Events: 2, Skipped: 1, Malformed: 4, MalformedLines: []int64{2, 5, 6, 7}, Bytes: int64(len(in))}
	if fmt.Sprint(st) != fmt.Sprint(want) || !slices.Equal(st.MalformedLines, want.MalformedLines) || st.Bytes != want.Bytes {
		t.Fatalf("stats %+v, want %+v", st, want)
	}
	e := evs[0]
	if e.Time != time.Date(2026, 3, 2, 10, 15, 0, 123456700, time.UTC) || e.DeviceID != "d1" || e.DeviceName != "HOSP-IOT-PUMP-01" ||
		e.RemoteIP != netip.MustParseAddr("52.1.2.3") || e.RemotePort != 443 || e.RemoteURL != "https://a.example.com/x" ||
		e.LocalPort != 51000 || e.Process != "pumpd" || e.SentBytes != 1200 || e.ReceivedBytes != 0 || e.Protocol != "Tcp" {
		t.Errorf("event %+v", e)
	}
	if evs[1].SentBytes != 5 || evs[1].DeviceName != "X" {
		t.Errorf("field order: %+v", evs[1])
	}
}

func TestScanDefenderCSV(t *testing.T) {
	in := "\ufeffTimestamp,DeviceId,DeviceName,ActionType,RemoteIP,RemotePort,RemoteUrl,RemoteIPType,LocalIP,Protocol,InitiatingProcessFileName,SentBytes,ReceivedBytes\r\n" +
		`2026-03-02T10:15:00Z,d1,HOSP-IOT-MRI-01,ConnectionSuccess,40.1.1.1,443,"cloud.medimaging.net",Public,10.30.1.11,Tcp,"a ""quoted"", name",7,8` + "\r\n" +
		`"3/2/2026, 10:16:00.000 AM",d1,HOSP-IOT-MRI-01,ConnectionFailed,,,,,,,,,` + "\n" +
		`2026-03-02T10:17:00Z,"unterminated` + "\n"
	evs, st := scanAll(t, in)
	if st.Format != egress.FormatDefenderCSV || st.Events != 2 || st.Malformed != 1 || !slices.Equal(st.MalformedLines, []int64{4}) {
		t.Fatalf("stats %v", st)
	}
	if evs[0].Process != `a "quoted", name` || evs[0].SentBytes != 7 || evs[0].RemoteURL != "cloud.medimaging.net" {
		t.Errorf("event %+v", evs[0])
	}
	if evs[1].Time != time.Date(2026, 3, 2, 10, 16, 0, 0, time.UTC) || evs[1].ActionType != "ConnectionFailed" {
		t.Errorf("event %+v", evs[1])
	}
}

func TestScanZeekJSONAndOCSF(t *testing.T) {
	zj := `{"ts":1540469302.53864,"uid":"C1","id.orig_h":"192.168.1.132","id.orig_p":58687,"id.resp_h":"216.239.35.4","id.resp_p":123,"proto":"udp","orig_bytes":48,"resp_bytes":48,"conn_state":"SF"}` + "\n"
	evs, st := scanAll(t, zj)
	if st.Format != egress.FormatZeekJSON || len(evs) != 1 || evs[0].SentBytes != 48 || evs[0].RemotePort != 123 ||
		evs[0].Time != time.Unix(1540469302, 538640000).UTC() || evs[0].ActionType != egress.ActionConnectionSuccess {
		t.Fatalf("zeek json %v %+v", st, evs)
	}
	oc := `{"class_uid":4001,"activity_id":6,"time":1767609000000,"device":{"hostname":"HOSP-IOT-HVAC-01","ip":"10.40.1.11"},"src_endpoint":{"ip":"10.40.1.11","port":40000},"dst_endpoint":{"ip":"13.59.205.66","port":443,"hostname":"x.avsvmcloud.com"},"traffic":{"bytes_out":300,"bytes_in":20},"connection_info":{"protocol_name":"tcp"}}
{"class_uid":3002,"time":1}
{"class_uid":4001,"time":"bad"}
`
	evs, st = scanAll(t, oc)
	if st.Format != egress.FormatOCSF || st.Events != 1 || st.Skipped != 1 || st.Malformed != 1 || !slices.Equal(st.MalformedLines, []int64{3}) {
		t.Fatalf("ocsf stats %v", st)
	}
	if e := evs[0]; e.DeviceName != "HOSP-IOT-HVAC-01" || e.RemoteURL != "x.avsvmcloud.com" || e.SentBytes != 300 || e.Time != time.UnixMilli(1767609000000).UTC() {
		t.Errorf("ocsf event %+v", e)
	}
}

// TestScanJSONNumbers: numbers are JSON numbers whatever their digits.
// Zeek's JSON writer prints doubles with up to 17 significant digits
// ("ts":81.35792000000001, "duration":13.734161999999998); other
// producers write counts as 48.0 or 4.8e1 and times with exponents.
func TestScanJSONNumbers(t *testing.T) {
	zj := `{"ts":81.35792000000001,"uid":"CXWv6p3arKYeMETxOg","id.orig_h":"192.168.1.132","id.orig_p":58687,"id.resp_h":"216.239.35.4","id.resp_p":123,"proto":"udp","duration":13.734161999999998,"orig_bytes":48,"resp_bytes":48,"conn_state":"SF","missed_bytes":0,"orig_pkts":1,"orig_ip_bytes":76}
{"ts":1.5404693025386401e9,"id.orig_h":"192.168.1.132","id.orig_p":5.8687e4,"id.resp_h":"216.239.35.4","id.resp_p":123.0,"orig_bytes":4.8e1,"resp_bytes":0,"conn_state":"SF","duration":1e-7}
{"ts":1540469302.538640123456,"id.orig_h":"192.168.1.132","id.orig_p":1,"id.resp_h":"216.239.35.4","id.resp_p":2,"conn_state":"S0"}
{"ts":1540469302.5,"id.orig_h":"192.168.1.132","id.orig_p":1.5,"id.resp_h":"216.239.35.4","id.resp_p":2}
{"ts":-1,"id.orig_h":"192.168.1.132","id.resp_h":"216.239.35.4"}
{"ts":1540469302.5,"id.orig_h":"192.168.1.132","id.resp_h":"216.239.35.4","id.resp_p":65536}
{"ts":1540469302.5,"id.orig_h":"192.168.1.132","id.resp_h":"216.239.35.4","orig_bytes":1e400}
`
	evs, st := scanAll(t, zj)
	if st.Format != egress.FormatZeekJSON || st.Events != 3 || st.Malformed != 4 || !slices.Equal(st.MalformedLines, []int64{4, 5, 6, 7}) {
		t.Fatalf("zeek json stats %v", st)
	}
	if e := evs[0]; e.Time != time.Unix(81, 357920000).UTC() || e.SentBytes != 48 || e.RemotePort != 123 || e.LocalPort != 58687 {
		t.Errorf("long float ts: %+v", e)
	}
	if e := evs[1]; e.Time.Sub(time.Unix(1540469302, 538640100)).Abs() > time.Microsecond || e.LocalPort != 58687 || e.RemotePort != 123 || e.SentBytes != 48 {
		t.Errorf("exponents: %+v (%v)", e, e.Time)
	}
	if e := evs[2]; e.Time.Sub(time.Unix(1540469302, 538640123)).Abs() > time.Microsecond || e.ActionType != egress.ActionConnectionAttempt {
		t.Errorf("more than nine fractional digits: %+v", e)
	}
	oc := `{"class_uid":4001.0,"activity_id":6,"time":1.767609e12,"src_endpoint":{"ip":"10.40.1.11","port":4e4},"dst_endpoint":{"ip":"13.59.205.66","port":443},"traffic":{"bytes_out":3.0e2,"bytes_in":20}}
{"class_uid":4001,"activity_id":6,"time":1767609000000.25,"src_endpoint":{"ip":"10.40.1.11"},"dst_endpoint":{"ip":"13.59.205.66"}}
{"class_uid":4001,"activity_id":6,"time":1767609000000,"src_endpoint":{"ip":"10.40.1.11"},"dst_endpoint":{"ip":"13.59.205.66"},"traffic":{"bytes_out":0.5}}
`
	evs, st = scanAll(t, oc)
	if st.Format != egress.FormatOCSF || st.Events != 2 || st.Malformed != 1 || !slices.Equal(st.MalformedLines, []int64{3}) {
		t.Fatalf("ocsf stats %v", st)
	}
	if e := evs[0]; e.Time != time.UnixMilli(1767609000000).UTC() || e.SentBytes != 300 || e.LocalPort != 40000 || e.ActionType != egress.ActionConnectionSuccess {
		t.Errorf("ocsf exponents: %+v", e)
	}
	if e := evs[1]; e.Time.Sub(time.UnixMilli(1767609000000).Add(250*time.Microsecond)).Abs() > time.Microsecond {
		t.Errorf("ocsf fractional milliseconds: %v", e.Time)
	}
	dj := `{"Timestamp":"2026-03-02T10:15:00Z","DeviceName":"X","SentBytes":1.5e6,"RemotePort":443.0,"ReceivedBytes":"2E3"}
{"Timestamp":"2026-03-02T10:15:00Z","DeviceName":"X","SentBytes":1.5}
`
	evs, st = scanAll(t, dj)
	if st.Events != 1 || st.Malformed != 1 || evs[0].SentBytes != 1_500_000 || evs[0].RemotePort != 443 || evs[0].ReceivedBytes != 2000 {
		t.Errorf("defender: %v %+v", st, evs)
	}
}

func TestScanZeekTSVIoT23(t *testing.T) {
	in := "#separator \\x09\n#unset_field\t-\n#empty_field\t(empty)\n" +
		"#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\ttunnel_parents   label   detailed-label\r\n" +
		"1540469302.538640\tC1\t192.168.1.132\t58687\t216.239.35.4\t123\tudp\t-\t0.1\t48\t-\tSF\t-   benign   -\r\n" +
		"1540469303.5\tC2\t192.168.1.132\tnotaport\t216.239.35.4\t123\tudp\t-\t0.1\t48\t48\tSF\t-   benign   -\r\n" +
		"1540469304.5\tC3\t192.168.1.132\n"
	evs, st := scanAll(t, in)
	if st.Format != egress.FormatZeekTSV || st.Events != 1 || st.Malformed != 2 || !slices.Equal(st.MalformedLines, []int64{6, 7}) || st.Skipped != 4 {
		t.Fatalf("stats %v", st)
	}
	if e := evs[0]; e.LocalIP != netip.MustParseAddr("192.168.1.132") || e.RemoteIP != netip.MustParseAddr("216.239.35.4") || e.SentBytes != 48 || e.ReceivedBytes != 0 || e.Protocol != "udp" {
		t.Errorf("event %+v", e)
	}
}

func TestScanLimits(t *testing.T) {
	long := `{"Timestamp":"2026-03-02T10:15:00Z","DeviceName":"` + strings.Repeat("A", 200) + `"}`
	in := `{"Timestamp":"2026-03-02T10:15:00Z"}` + "\n" + long + "\n" + `{"Timestamp":"2026-03-02T10:15:00Z"}`
	_, st := scanAll(t, in, egress.WithMaxLineBytes(100))
	if st.Events != 2 || st.Malformed != 1 || !slices.Equal(st.MalformedLines, []int64{2}) {
		t.Fatalf("stats %v", st)
	}
	_, err := egress.Scan(strings.NewReader(in), func(*egress.Event) error { return nil }, egress.WithMaxInputBytes(50))
	if !errors.Is(err, egress.ErrInputTooLarge) {
		t.Fatalf("err %v, want ErrInputTooLarge", err)
	}
	if _, err := egress.Scan(strings.NewReader("hello\n"), func(*egress.Event) error { return nil }); !errors.Is(err, egress.ErrUnknownFormat) {
		t.Fatalf("err %v, want ErrUnknownFormat", err)
	}
}

// TestHueCapture: the real IoT-23 Philips Hue capture parses every line,
// and with the hub as a device whose baseline is learned from the first 12
// hours, the rest of the 22 hours raises no finding.
func TestHueCapture(t *testing.T) {
	data, err := os.ReadFile(hueCapture)
	if errors.Is(err, os.ErrNotExist) {
		t.Skip("real capture not available: ../shared/data/telemetry is absent (it is in the shared data, not the repo)")
	}
	if err != nil {
		t.Fatal(err)
	}
	inv, err := egress.NewInventory([]egress.Device{{Name: "philips-hue", Addresses: []netip.Addr{netip.MustParseAddr("192.168.1.132")}, Class: "smart-hub", Segment: "home"}})
	if err != nil {
		t.Fatal(err)
	}
	var evs []egress.Event
	st, err := egress.Scan(bytes.NewReader(data), func(ev *egress.Event) error { evs = append(evs, *ev); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if st.Format != egress.FormatZeekTSV || st.Lines != 461 || st.Events != 452 || st.Skipped != 9 || st.Malformed != 0 {
		t.Fatalf("stats %v", st)
	}
	first := evs[0].Time
	for _, e := range evs {
		if e.Time.Before(first) {
			first = e.Time
		}
	}
	cfg := egress.Config{
		Baseline: egress.Window{Start: first, End: first.Add(12 * time.Hour)},
		Segments: map[string][]netip.Prefix{"home": {netip.MustParsePrefix("192.168.1.0/24")}},
	}
	a, err := egress.NewAnalyzer(inv, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range evs {
		a.Add(&evs[i])
	}
	r := a.Report()
	if r.Unresolved != 0 || r.Events != 452 || len(r.Findings) != 0 {
		t.Fatalf("report: %d events, %d unresolved, findings %+v", r.Events, r.Unresolved, r.Findings)
	}
}

func TestReadInventoryAndInstallationsCSV(t *testing.T) {
	inv, err := egress.ReadInventory(strings.NewReader("name,addresses,class,segment\nMRI-1,10.30.0.1;fd00::1,mri-console,imaging\n"))
	if err != nil {
		t.Fatal(err)
	}
	d, ok := inv.Resolve(&egress.Event{LocalIP: netip.MustParseAddr("fd00::1")})
	if !ok || d.Name != "MRI-1" || d.Class != "mri-console" || d.Segment != "imaging" {
		t.Fatalf("resolve: %+v %v", d, ok)
	}
	if _, err := egress.ReadInventory(strings.NewReader(`[{"name":"A","class":"c"},{"name":"a","class":"c"}]`)); !errors.Is(err, egress.ErrBadInventory) {
		t.Errorf("duplicate names: err %v", err)
	}
	ins, err := egress.ReadInstallations(strings.NewReader("device,digest,product,version,time\nMRI-1,sha256:" + strings.Repeat("ab", 32) + ",mri,7.2.0,2026-01-21T00:00:00Z\n"))
	if err != nil || len(ins) != 1 || ins[0].Version != "7.2.0" || ins[0].Time != time.Date(2026, 1, 21, 0, 0, 0, 0, time.UTC) {
		t.Fatalf("installations %+v %v", ins, err)
	}
	if _, err := egress.ReadInstallations(strings.NewReader(`{"device":"x","digest":"md5:1","time":"2026-01-01T00:00:00Z"}`)); err == nil || !strings.Contains(err.Error(), "want sha256") {
		t.Errorf("bad digest: err %v", err)
	}
}
