// Package benchfleet is the large fleet the benchmarks of the fleet
// analysis (egress) and of the console (console/adapter) run on, the
// scale the console's issue names: 100,000 devices in 10 classes and 20
// segments, 10,000 updates (each installed by 10 devices on day 15),
// 1,000,000 events (10 a device). Every event is baseline traffic to the
// device's class's vendor cloud but for the installers of every 100th
// update, whose last three events reach a new destination of their own
// (a registrable domain: egress.Destination is the eTLD+1) days after the
// install: 100 updates flagged.
package benchfleet

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/wardgate/wardgate/egress"
)

const (
	Updates = 10_000
	Devices = 100_000
	Events  = 1_000_000
	Classes = 10
	// FlaggedEvery: every 100th update's installers reach a new
	// destination (100 updates with findings; with 1,000 the fleet
	// analysis of the console benchmark's set-up had not finished after 9
	// CPU-minutes).
	FlaggedEvery = 100
)

// Start is the first event's day; the baseline is its first 14 days.
var Start = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

// InstallAt is when the installations start (day 15).
var InstallAt = Start.Add(15 * 24 * time.Hour)

// Device is device i's name.
func Device(i int) string { return fmt.Sprintf("HOSP-IOT-%06d", i) }

// Digest is update i's digest.
func Digest(i int) string { return fmt.Sprintf("sha256:%064x", i+1) }

// Inventory is the fleet's devices, device i at index i.
func Inventory() []egress.Device {
	devs := make([]egress.Device, Devices)
	for i := range devs {
		devs[i] = egress.Device{Name: Device(i), Class: fmt.Sprintf("class-%d", i%Classes), Segment: fmt.Sprintf("seg-%d", i%20),
			Addresses: []netip.Addr{netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})}}
	}
	return devs
}

// Config is the detections' configuration: the defaults, with the
// baseline the first 14 days.
func Config() egress.Config {
	return egress.Config{Baseline: egress.Window{Start: Start, End: Start.Add(14 * 24 * time.Hour)}}.WithDefaults()
}

// Installations are each device's installation of one update: device i
// installs update i mod Updates.
func Installations() []egress.Installation {
	ins := make([]egress.Installation, Devices)
	for i := range ins {
		u := i % Updates
		ins[i] = egress.Installation{Device: Device(i), Digest: Digest(u), Product: fmt.Sprintf("product-%d", u%500), Version: fmt.Sprintf("1.%d.0", u),
			Time: InstallAt.Add(time.Duration(i%600) * time.Second)}
	}
	return ins
}

// EachEvent calls fn with every event, one day's events of all the
// devices after another (devs is Inventory's); the event is reused
// between calls.
func EachEvent(devs []egress.Device, fn func(*egress.Event) error) error {
	ev := &egress.Event{ActionType: egress.ActionConnectionSuccess, RemoteIPType: "Public", RemotePort: 443, Protocol: "Tcp"}
	perDevice := Events / Devices
	for k := range perDevice {
		for i := range Devices {
			u := i % Updates
			if u%FlaggedEvery == 0 && k >= perDevice-3 {
				ev.Time = InstallAt.Add(time.Duration(3+k) * 24 * time.Hour).Add(time.Duration(i%3600) * time.Second)
				ev.RemoteURL, ev.RemoteIP = fmt.Sprintf("cdn.c2-%d.net", u), netip.AddrFrom4([4]byte{198, 51, byte(u >> 8), byte(u)})
				ev.SentBytes = 4000
			} else {
				ev.Time = Start.Add(time.Duration(k) * 24 * time.Hour).Add(time.Duration(i%3600) * time.Second)
				ev.RemoteURL, ev.RemoteIP = fmt.Sprintf("cloud.vendor-%d.com", i%Classes), netip.AddrFrom4([4]byte{203, 0, 113, byte(i % Classes)})
				ev.SentBytes = 1200
			}
			ev.DeviceName, ev.LocalIP = Device(i), devs[i].Addresses[0]
			if err := fn(ev); err != nil {
				return err
			}
		}
	}
	return nil
}
