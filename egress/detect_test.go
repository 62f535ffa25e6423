package egress_test

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/egress"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func smallFleet(t *testing.T) *egress.Inventory {
	t.Helper()
	var devs []egress.Device
	for i, n := range []string{"MRI-1", "MRI-2", "MRI-3"} {
		devs = append(devs, egress.Device{Name: n, Class: "mri-console", Segment: "imaging", Addresses: []netip.Addr{netip.AddrFrom4([4]byte{10, 30, 0, byte(i + 1)})}})
	}
	inv, err := egress.NewInventory(devs)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func conn(dev string, at time.Duration, url, ip string, sent int64) egress.Event {
	return egress.Event{Time: t0.Add(at), DeviceName: dev, ActionType: egress.ActionConnectionSuccess, RemoteURL: url, RemoteIP: netip.MustParseAddr(ip), SentBytes: sent}
}

// heartbeats is every device's check-in with its allowed vendor cloud
// every six hours from start to end: the telemetry that makes a device
// observed, judged by nothing.
func heartbeats(start, end time.Duration, devices ...string) []egress.Event {
	var evs []egress.Event
	for _, d := range devices {
		for at := start; at < end; at += 6 * time.Hour {
			evs = append(evs, conn(d, at, "cloud.medimaging.net", "40.1.1.1", 100))
		}
	}
	return evs
}

func run(t *testing.T, inv *egress.Inventory, ins []egress.Installation, cfg egress.Config, evs []egress.Event) egress.Report {
	t.Helper()
	a, err := egress.NewAnalyzer(inv, ins, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range evs {
		a.Add(&evs[i])
	}
	return a.Report()
}

func codes(r egress.Report) []egress.Code {
	var c []egress.Code
	for _, f := range r.Findings {
		c = append(c, f.Code)
	}
	return c
}

// TestDetections: MRI-1 and MRI-2 install update A on day 8; MRI-3, which
// does not, checks in with its vendor cloud all along, so it is the
// comparable device without the update.
func TestDetections(t *testing.T) {
	inv := smallFleet(t)
	day := 24 * time.Hour
	cfg := egress.Config{
		Baseline: egress.Window{Start: t0, End: t0.Add(7 * day)},
		Segments: map[string][]netip.Prefix{"imaging": {netip.MustParsePrefix("10.30.0.0/16")}, "pacs": {netip.MustParsePrefix("10.10.0.0/16")}, "billing": {netip.MustParsePrefix("10.50.0.0/16")}},
		Classes:  map[string]egress.ClassPolicy{"mri-console": {AllowedDestinations: []string{"medimaging.net"}, AllowedSegments: []string{"pacs"}}},
	}
	base := append(heartbeats(0, 50*day, "MRI-1", "MRI-2", "MRI-3"), conn("MRI-1", day, "cloud.medimaging.net", "40.1.1.1", 100), conn("MRI-2", day, "ocsp.digicert.com", "93.184.220.29", 100))
	ins := []egress.Installation{{Device: "MRI-1", Digest: digestA, Product: "mri", Version: "2", Time: t0.Add(8 * day)}, {Device: "MRI-2", Digest: digestA, Product: "mri", Version: "2", Time: t0.Add(8 * day)}}
	cases := []struct {
		name  string
		evs   []egress.Event
		codes []egress.Code
		state string
	}{
		{"baseline destination from another device of the class: nothing", []egress.Event{conn("MRI-1", 9*day, "crl.digicert.com", "93.184.220.30", 10)}, nil, "clean"},
		{"allowed segment (PACS) and own segment: nothing", []egress.Event{conn("MRI-1", 9*day, "", "10.10.0.20", 1e9), conn("MRI-1", 9*day, "", "10.30.0.3", 10)}, nil, "clean"},
		{"billing segment: segmentation-violation", []egress.Event{conn("MRI-1", 9*day, "", "10.50.0.9", 10)}, []egress.Code{egress.CodeSegmentationViolation}, "suspicious"},
		{"the whole class in the billing segment: not the update's", []egress.Event{conn("MRI-1", 9*day, "", "10.50.0.9", 10), conn("MRI-2", 9*day, "", "10.50.0.9", 10), conn("MRI-3", 9*day, "", "10.50.0.9", 10)},
			[]egress.Code{egress.CodeSegmentationViolation, egress.CodeSegmentationViolation, egress.CodeSegmentationViolation}, "clean"},
		{"large upload to the allowed vendor cloud: nothing", []egress.Event{conn("MRI-1", 9*day, "upload.medimaging.net", "40.1.1.2", 50_000_000)}, nil, "clean"},
		{"large upload elsewhere: exfil-volume and new-destination", []egress.Event{conn("MRI-1", 9*day, "files.example.org", "198.51.100.7", 6_000_000)},
			[]egress.Code{egress.CodeExfilVolume, egress.CodeNewDestination}, "suspicious"},
		{"one installer to a new destination: not fleet-correlated", []egress.Event{conn("MRI-1", 9*day, "x.example.org", "198.51.100.7", 10)}, []egress.Code{egress.CodeNewDestination}, "suspicious"},
		{"two installers: fleet-correlation", []egress.Event{conn("MRI-1", 9*day, "a.example.org", "198.51.100.7", 10), conn("MRI-2", 30*day, "b.example.org", "198.51.100.8", 10)},
			[]egress.Code{egress.CodeFleetCorrelation, egress.CodeNewDestination}, "quarantined"},
		{"the non-installer reached it too: a change of the class", []egress.Event{conn("MRI-1", 9*day, "a.example.org", "198.51.100.7", 10), conn("MRI-2", 9*day, "a.example.org", "198.51.100.7", 10), conn("MRI-3", 10*day, "a.example.org", "198.51.100.7", 10)},
			[]egress.Code{egress.CodeFleetChange}, "clean"},
		{"past the 30-day dormancy: a change of the class", []egress.Event{conn("MRI-1", 40*day, "a.example.org", "198.51.100.7", 10), conn("MRI-2", 40*day, "a.example.org", "198.51.100.7", 10)},
			[]egress.Code{egress.CodeFleetChange}, "clean"},
		{"an installer reached it before installing: a change of the class", []egress.Event{conn("MRI-1", 7*day+time.Hour, "a.example.org", "198.51.100.7", 10), conn("MRI-2", 9*day, "a.example.org", "198.51.100.7", 10)},
			[]egress.Code{egress.CodeFleetChange}, "clean"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, inv, ins, cfg, append(slices.Clone(base), tc.evs...))
			if got := codes(r); !slices.Equal(got, tc.codes) {
				t.Errorf("codes %v, want %v (%+v)", got, tc.codes, r.Findings)
			}
			if u, _ := r.Risk(digestA); u.State != tc.state {
				t.Errorf("state %s, want %s", u.State, tc.state)
			}
			for _, f := range r.Findings {
				if (f.Update == "") != (f.Code == egress.CodeFleetChange || tc.state == "clean") || (f.Code == egress.CodeFleetChange) != (f.Severity == egress.SeverityNotice) {
					t.Errorf("finding %s: update %q severity %s", f.Code, f.Update, f.Severity)
				}
			}
		})
	}
	// Without telemetry from MRI-3 there is no comparable device without
	// the update: nothing is blamed on it, and the new destination both
	// installers reach is a notice about the class.
	r := run(t, inv, ins, cfg, append(heartbeats(0, 50*day, "MRI-1", "MRI-2"),
		conn("MRI-1", 9*day, "a.example.org", "198.51.100.7", 10), conn("MRI-2", 9*day, "a.example.org", "198.51.100.7", 10)))
	if got := codes(r); !slices.Equal(got, []egress.Code{egress.CodeFleetChange}) || !strings.Contains(r.Findings[0].Explanation, "no comparable mri-console device without it was observed") {
		t.Errorf("no comparable device observed: %v %+v", got, r.Findings)
	}
}

func TestBeaconing(t *testing.T) {
	inv := smallFleet(t)
	cfg := egress.Config{Baseline: egress.Window{Start: t0, End: t0.Add(24 * time.Hour)}}
	ins := []egress.Installation{{Device: "MRI-1", Digest: digestB, Time: t0.Add(25 * time.Hour)}}
	regular := heartbeats(0, 72*time.Hour, "MRI-1", "MRI-2")
	irregular := slices.Clone(regular)
	for i := range 12 {
		regular = append(regular, conn("MRI-1", 26*time.Hour+time.Duration(i)*30*time.Minute+time.Duration(i%3)*time.Second, "c2.example.net", "203.0.113.5", 1))
		irregular = append(irregular, conn("MRI-1", 26*time.Hour+time.Duration(i*i*i)*time.Minute, "c2.example.net", "203.0.113.5", 1))
	}
	if got := codes(run(t, inv, ins, cfg, regular)); !slices.Equal(got, []egress.Code{egress.CodeBeaconing, egress.CodeNewDestination}) {
		t.Errorf("regular: %v", got)
	}
	if got := codes(run(t, inv, ins, cfg, irregular)); !slices.Equal(got, []egress.Code{egress.CodeNewDestination}) {
		t.Errorf("irregular: %v", got)
	}
}

func TestExpectedEgress(t *testing.T) {
	inv := smallFleet(t)
	cfg := egress.Config{Baseline: egress.Window{Start: t0, End: t0.Add(24 * time.Hour)},
		Manifests: []egress.EgressManifest{{Digest: digestB, Destinations: []string{"vendor.example.com", "203.0.113.0/24"}}}}
	ins := []egress.Installation{{Device: "MRI-1", Digest: digestB, Time: t0.Add(25 * time.Hour)}, {Device: "MRI-2", Digest: digestB, Time: t0.Add(25 * time.Hour)}}
	hb := heartbeats(0, 72*time.Hour, "MRI-1", "MRI-2", "MRI-3")
	inside := append(slices.Clone(hb), conn("MRI-1", 30*time.Hour, "new.vendor.example.com", "198.51.100.1", 9e6), conn("MRI-2", 30*time.Hour, "", "203.0.113.9", 9e6))
	if r := run(t, inv, ins, cfg, inside); len(r.Findings) != 0 {
		t.Errorf("inside the manifest: %+v", r.Findings)
	}
	outside := append(slices.Clone(hb), conn("MRI-1", 30*time.Hour, "other.example.org", "198.51.100.1", 10))
	if got := codes(run(t, inv, ins, cfg, outside)); !slices.Equal(got, []egress.Code{egress.CodeExpectedEgress, egress.CodeNewDestination}) {
		t.Errorf("outside: %v", got)
	}
	// The whole class starts reaching a new service: outside the manifest,
	// but not the release's doing.
	fleetWide := append(slices.Clone(hb), conn("MRI-1", 30*time.Hour, "siem.example.org", "198.51.100.2", 10), conn("MRI-2", 30*time.Hour, "siem.example.org", "198.51.100.2", 10),
		conn("MRI-3", 30*time.Hour, "siem.example.org", "198.51.100.2", 10))
	if got := codes(run(t, inv, ins, cfg, fleetWide)); !slices.Equal(got, []egress.Code{egress.CodeFleetChange}) {
		t.Errorf("fleet-wide: %v", got)
	}
}

func TestDestination(t *testing.T) {
	for _, tc := range []struct{ url, ip, want string }{
		{"x7f3.appsync-api.us-east-1.avsvmcloud.com", "1.2.3.4", "avsvmcloud.com"},
		{"https://www.bbc.co.uk:443/path", "", "bbc.co.uk"},
		{"raw.githubusercontent.com", "", "raw.githubusercontent.com"}, // a public suffix itself
		{"", "216.126.225.148", "216.126.225.148"},
		{"10.0.0.1", "", "10.0.0.1"},
		{"HOST.Example.COM.", "", "example.com"},
	} {
		var ip netip.Addr
		if tc.ip != "" {
			ip = netip.MustParseAddr(tc.ip)
		}
		if got := egress.Destination(tc.url, ip); got != tc.want {
			t.Errorf("Destination(%q, %q) = %q, want %q", tc.url, tc.ip, got, tc.want)
		}
	}
}

func TestIsPublicIP(t *testing.T) {
	for s, want := range map[string]bool{"8.8.8.8": true, "10.1.2.3": false, "100.64.0.1": false, "100.128.0.1": true, "169.254.1.1": false, "127.0.0.1": false,
		"224.0.0.1": false, "0.0.0.0": false, "::1": false, "fe80::1": false, "fc00::1": false, "2001:4860::8888": true, "::ffff:10.0.0.1": false} {
		if got := egress.IsPublicIP(netip.MustParseAddr(s)); got != want {
			t.Errorf("IsPublicIP(%s) = %v", s, got)
		}
	}
}
