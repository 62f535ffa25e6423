// Command gendefender writes realistic Microsoft Defender
// DeviceNetworkEvents as JSON Lines for the exfil-volume benchmark: a
// hospital of infusion pumps, imaging consoles, building controllers and
// workstations over two days, with a fixed seed so every run writes the
// same bytes. Each line carries the columns a hunting export projects
// (Timestamp, DeviceName, ActionType, RemoteIP, RemotePort, RemoteUrl,
// RemoteIPType, InitiatingProcessFileName, SentBytes, ReceivedBytes);
// about 2% of RemoteUrl values carry escaped slashes.
//
//	go run ./bench/egress/gendefender -n 2000000 -out bench/out/egress/defender.jsonl
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"time"
)

type device struct {
	name, id, local, process string
	urls                     []dest
}

type dest struct {
	url, ip, ipType string
	port            int
}

var publicDests = []dest{
	{"telemetry.acme-infusion.com", "52.168.117.170", "Public", 443},
	{"updates.acme-infusion.com", "52.168.117.171", "Public", 443},
	{"cloud.medimaging.net", "40.112.72.205", "Public", 443},
	{"dicom-relay.medimaging.net", "40.112.72.206", "Public", 104},
	{"api.buildctl.io", "34.117.59.81", "Public", 443},
	{"time.windows.com", "20.101.57.9", "Public", 123},
	{"settings-win.data.microsoft.com", "20.42.65.92", "Public", 443},
	{"login.microsoftonline.com", "20.190.160.20", "Public", 443},
	{"ocsp.digicert.com", "93.184.220.29", "Public", 80},
	{"crl3.digicert.com", "93.184.220.30", "Public", 80},
	{"storage.vendor-backup.com", "104.18.32.7", "Public", 443},
	{"", "185.199.108.133", "Public", 443},
	{"github.com", "140.82.112.3", "Public", 443},
	{"x9f2k1.avsvmcloud.com", "13.59.205.66", "Public", 443},
}

var privateDests = []dest{
	{"pacs.hospital.local", "10.10.0.20", "Private", 104},
	{"dns1.hospital.local", "10.0.0.53", "Private", 53},
	{"ntp.hospital.local", "10.0.0.123", "Private", 123},
	{"emr.hospital.local", "10.10.0.40", "Private", 443},
	{"", "10.30.0.9", "Private", 445},
	{"localhost", "127.0.0.1", "Loopback", 8080},
}

var actions = []struct {
	name string
	w    float64
}{{"ConnectionSuccess", 0.85}, {"ConnectionFailed", 0.07}, {"ConnectionAttempt", 0.04}, {"InboundConnectionAccepted", 0.03}, {"ListeningConnectionCreated", 0.01}}

func main() {
	n := flag.Int("n", 2_000_000, "events")
	out := flag.String("out", "defender.jsonl", "output file")
	seed := flag.Uint64("seed", 20261128, "random seed")
	flag.Parse()
	if err := run(*n, *out, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "gendefender:", err)
		os.Exit(1)
	}
}

func run(n int, out string, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d))
	classes := []struct{ tag, proc string }{{"PUMP", "pumpd"}, {"MRI", "console.exe"}, {"HVAC", "bacnetd"}, {"PACS", "dicomsvc.exe"}}
	var devs []device
	for i := range 600 {
		c := classes[i%len(classes)]
		name := fmt.Sprintf("HOSP-IOT-%s-%04d", c.tag, i)
		proc := c.proc
		if i >= 500 { // workstations: another prefix, same traffic
			name = fmt.Sprintf("HOSP-WS-%04d", i)
			proc = "msedge.exe"
		}
		d := device{name: name, id: fmt.Sprintf("%016x%08x", rng.Uint64(), rng.Uint32()), local: fmt.Sprintf("10.%d.%d.%d", 20+i%8, i/250, 1+i%250), process: proc}
		for range 3 + rng.IntN(4) {
			d.urls = append(d.urls, publicDests[rng.IntN(len(publicDests))])
		}
		for range 2 {
			d.urls = append(d.urls, privateDests[rng.IntN(len(privateDests))])
		}
		devs = append(devs, d)
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	span := 48 * time.Hour
	step := span / time.Duration(n)
	var line []byte
	for i := range n {
		d := &devs[rng.IntN(len(devs))]
		ds := d.urls[rng.IntN(len(d.urls))]
		t := start.Add(time.Duration(i)*step + time.Duration(rng.IntN(1000))*time.Millisecond)
		act := "ConnectionSuccess"
		x := rng.Float64()
		for _, a := range actions {
			if x < a.w {
				act = a.name
				break
			}
			x -= a.w
		}
		sent := int64(math.Exp(rng.NormFloat64()*1.2 + 7.5))
		if rng.IntN(500) == 0 { // a large upload: backup, study, log bundle
			sent = 1_000_000 + rng.Int64N(40_000_000)
		}
		if act != "ConnectionSuccess" {
			sent = 0
		}
		recv := int64(math.Exp(rng.NormFloat64()*1.5 + 8))
		line = line[:0]
		line = append(line, `{"Timestamp":"`...)
		line = t.AppendFormat(line, "2006-01-02T15:04:05.000Z")
		line = append(line, `","DeviceName":"`...)
		line = append(line, d.name...)
		line = append(line, `","ActionType":"`...)
		line = append(line, act...)
		line = append(line, `","RemoteIP":"`...)
		line = append(line, ds.ip...)
		line = append(line, `","RemotePort":`...)
		line = strconv.AppendInt(line, int64(ds.port), 10)
		line = append(line, `,"RemoteUrl":"`...)
		url := ds.url
		if url != "" && rng.IntN(50) == 0 {
			url = "https:\\/\\/" + url + "\\/upload" // exporters escape slashes
		}
		line = append(line, url...)
		line = append(line, `","RemoteIPType":"`...)
		line = append(line, ds.ipType...)
		line = append(line, `","InitiatingProcessFileName":"`...)
		line = append(line, d.process...)
		line = append(line, `","SentBytes":`...)
		line = strconv.AppendInt(line, sent, 10)
		line = append(line, `,"ReceivedBytes":`...)
		line = strconv.AppendInt(line, recv, 10)
		line = append(line, "}\n"...)
		if _, err := w.Write(line); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}
