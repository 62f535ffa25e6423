package egress

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// BenchmarkReportLargeFleet: the detections over a large fleet, the
// console benchmark's (console/adapter): 100,000 devices in 10 classes,
// 10,000 updates (1,000 a class, 10 installers each), 1,000,000 events;
// every 100th update's installers reach a new destination of their own
// days after the install (100 flagged). Each contrast of a new
// destination goes over the class's 10,000 devices per onset hour; only
// the updates the reaching devices ran are contrasted.
func BenchmarkReportLargeFleet(b *testing.B) {
	const benchUpdates, benchDevices, benchEvents, benchClasses, flaggedEvery = 10_000, 100_000, 1_000_000, 10, 100
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	deviceOf := func(i int) string { return fmt.Sprintf("HOSP-IOT-%06d", i) }
	digestOf := func(i int) string { return fmt.Sprintf("sha256:%064x", i+1) }
	devs := make([]Device, benchDevices)
	for i := range devs {
		devs[i] = Device{Name: deviceOf(i), Class: fmt.Sprintf("class-%d", i%benchClasses), Segment: fmt.Sprintf("seg-%d", i%20),
			Addresses: []netip.Addr{netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})}}
	}
	inv, err := NewInventory(devs)
	if err != nil {
		b.Fatal(err)
	}
	cfg := Config{Baseline: Window{Start: start, End: start.Add(14 * 24 * time.Hour)}}.WithDefaults()
	installAt := start.Add(15 * 24 * time.Hour)
	ins := make([]Installation, benchDevices)
	for i := range ins {
		u := i % benchUpdates
		ins[i] = Installation{Device: deviceOf(i), Digest: digestOf(u), Product: fmt.Sprintf("product-%d", u%500), Version: fmt.Sprintf("1.%d.0", u), Time: installAt.Add(time.Duration(i%600) * time.Second)}
	}
	a, err := NewAnalyzer(inv, ins, cfg)
	if err != nil {
		b.Fatal(err)
	}
	ev := &Event{ActionType: ActionConnectionSuccess, RemoteIPType: "Public", RemotePort: 443, Protocol: "Tcp"}
	perDevice := benchEvents / benchDevices
	for k := range perDevice {
		for i := range benchDevices {
			u := i % benchUpdates
			if u%flaggedEvery == 0 && k >= perDevice-3 {
				ev.Time = installAt.Add(time.Duration(3+k) * 24 * time.Hour).Add(time.Duration(i%3600) * time.Second)
				ev.RemoteURL, ev.RemoteIP = fmt.Sprintf("cdn.c2-%d.net", u), netip.AddrFrom4([4]byte{198, 51, byte(u >> 8), byte(u)})
				ev.SentBytes = 4000
			} else {
				ev.Time = start.Add(time.Duration(k) * 24 * time.Hour).Add(time.Duration(i%3600) * time.Second)
				ev.RemoteURL, ev.RemoteIP = fmt.Sprintf("cloud.vendor-%d.com", i%benchClasses), netip.AddrFrom4([4]byte{203, 0, 113, byte(i % benchClasses)})
				ev.SentBytes = 1200
			}
			ev.DeviceName, ev.LocalIP = deviceOf(i), devs[i].Addresses[0]
			a.Add(ev)
		}
	}
	var rep Report
	b.ResetTimer()
	for b.Loop() {
		rep = a.Report()
	}
	if len(rep.Findings) == 0 {
		b.Fatal("no findings: the flagged updates' destinations were not found")
	}
	b.ReportMetric(float64(len(rep.Findings)), "findings")
}
