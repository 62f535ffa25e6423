package egress

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// defenderLines makes n Defender JSON lines shaped like the benchmark
// generator's (bench/egress/gendefender).
func defenderLines(n int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	urls := []string{"telemetry.acme-infusion.com", "cloud.medimaging.net", "api.buildctl.io", "pacs.hospital.local", `https:\/\/github.com\/x`}
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, `{"Timestamp":"2026-03-02T%02d:%02d:%02d.%03dZ","DeviceName":"HOSP-IOT-PUMP-%04d","ActionType":"ConnectionSuccess","RemoteIP":"52.168.117.%d","RemotePort":443,"RemoteUrl":"%s","RemoteIPType":"Public","InitiatingProcessFileName":"pumpd","SentBytes":%d,"ReceivedBytes":%d}`+"\n",
			i%24, i%60, (i/60)%60, i%1000, rng.IntN(500), rng.IntN(255), urls[rng.IntN(len(urls))], rng.IntN(2_000_000), rng.IntN(100000))
	}
	return b.Bytes()
}

// zeekLines makes n conn.log TSV lines with the IoT-23 header.
func zeekLines(n int) []byte {
	var b bytes.Buffer
	b.WriteString("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n")
	b.WriteString("#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents   label   detailed-label\n")
	for i := range n {
		fmt.Fprintf(&b, "%d.%06d\tC%017d\t192.168.1.%d\t%d\t52.215.95.%d\t443\ttcp\t-\t0.003497\t%d\t%d\tSF\t-\t-\t0\tShAFf\t5\t212\t3\t144\t-   benign   -\n",
			1540469302+i, i%1000000, i, i%250, 30000+i%30000, i%250, i%5000, i%7000)
	}
	return b.Bytes()
}

func BenchmarkHuntDefenderJSON(b *testing.B) {
	data := defenderLines(200_000)
	path := filepath.Join(b.TempDir(), "d.jsonl")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Hunt(b.Context(), []string{path}, DefaultExfilVolume()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkScanDefenderJSON(b *testing.B) {
	data := defenderLines(100_000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Scan(bytes.NewReader(data), func(*Event) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScanZeekTSV is Zeek conn.log TSV throughput per byte, one
// core, full Event conversion.
func BenchmarkScanZeekTSV(b *testing.B) {
	data := zeekLines(100_000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		st, err := Scan(bytes.NewReader(data), func(*Event) error { return nil })
		if err != nil || st.Malformed != 0 {
			b.Fatal(err, st)
		}
	}
}

var _ = io.Discard

func BenchmarkScanDefenderLine(b *testing.B) {
	line := bytes.TrimSpace(defenderLines(1))
	var d defRaw
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		if !scanDefenderJSON(line, &d) {
			b.Fatal("rejected")
		}
	}
}

func BenchmarkHuntLine(b *testing.B) {
	line := bytes.TrimSpace(defenderLines(1))
	var d defRaw
	var sb [3][]byte
	a := newAggregator(DefaultExfilVolume())
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		if !a.lineJSON(line, &d, &sb) {
			b.Fatal("rejected")
		}
	}
}

// BenchmarkHuntFile hunts the file named by $WARDGATE_HUNT_FILE (the
// 2,000,000-event file of bench/egress-hunt-vs-duckdb.sh), for profiling
// the scan on real input; skipped when unset.
func BenchmarkHuntFile(b *testing.B) {
	path := os.Getenv("WARDGATE_HUNT_FILE")
	if path == "" {
		b.Skip("WARDGATE_HUNT_FILE not set")
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(fi.Size())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Hunt(b.Context(), []string{path}, DefaultExfilVolume()); err != nil {
			b.Fatal(err)
		}
	}
}
