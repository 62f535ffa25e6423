package egress_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/internal/proccpu"
)

// benchLiveStore is a LiveStore in memory that knows the groups each
// batch changed (as the stores' index on the batch does), so that reading
// them costs what the changed groups cost.
type benchLiveStore struct {
	groups  map[egress.GroupKey]*egress.Group
	changed [][]egress.GroupKey // per batch
	ins     []egress.Installation
}

func (s *benchLiveStore) ingest(evs []egress.Event) {
	gr := egress.NewGrouper()
	for i := range evs {
		gr.Add(evs[i].DeviceName, &evs[i])
	}
	var keys []egress.GroupKey
	for _, g := range gr.Groups() {
		if old := s.groups[g.GroupKey]; old != nil {
			g.Merge(old)
		}
		s.groups[g.GroupKey] = g
		keys = append(keys, g.GroupKey)
	}
	s.changed = append(s.changed, keys)
}

func (s *benchLiveStore) Groups(_ context.Context, after int64, fn func(*egress.Group) error) (int64, error) {
	seen := map[egress.GroupKey]bool{}
	for _, keys := range s.changed[after:] {
		for _, k := range keys {
			if !seen[k] {
				seen[k] = true
				if err := fn(s.groups[k]); err != nil {
					return 0, err
				}
			}
		}
	}
	return int64(len(s.changed)), nil
}

func (s *benchLiveStore) RecordInstallation(_ context.Context, in egress.Installation) error {
	s.ins = append(s.ins, in)
	return nil
}

func (s *benchLiveStore) Installations(context.Context) ([]egress.Installation, error) {
	return s.ins, nil
}

// BenchmarkLiveAnalyze is the incremental analysis alone (egress.Live,
// without a database): a fleet of 600 devices of four classes, each
// reaching five of forty public destinations and one private one, about
// 70 events per device-hour (server's BenchmarkTelemetryHTTP load), a
// baseline of six hours, then an update installed on half of one class.
// Each iteration groups a batch of 10,000 events (outside the timer) and
// analyses it. Reports the analysis's ns/event (wall) and events per
// CPU-second: the rate one core keeps up with.
func BenchmarkLiveAnalyze(b *testing.B) {
	const devices, perHour, batch = 600, 70, 10_000
	classes := []string{"pump", "mri", "hvac", "pacs"}
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(1, 7))
	type dev struct {
		name  string
		dests []int
	}
	var devs []dev
	var inv []egress.Device
	for i := range devices {
		d := dev{name: fmt.Sprintf("BENCH-%04d", i)}
		for range 5 {
			d.dests = append(d.dests, rng.IntN(40))
		}
		d.dests = append(d.dests, 40+rng.IntN(4))
		devs = append(devs, d)
		inv = append(inv, egress.Device{Name: d.name, Class: classes[i%4], Segment: "bench", Addresses: []netip.Addr{netip.AddrFrom4([4]byte{10, 200, byte(i / 250), byte(1 + i%250)})}})
	}
	fleet, err := egress.NewInventory(inv)
	if err != nil {
		b.Fatal(err)
	}
	t := start
	step := time.Hour / time.Duration(perHour*devices)
	next := func(n int) []egress.Event {
		evs := make([]egress.Event, n)
		for i := range evs {
			d := &devs[rng.IntN(len(devs))]
			k := d.dests[rng.IntN(len(d.dests))]
			url, ip, typ := fmt.Sprintf("api.vendor%02d.example.com", k), netip.AddrFrom4([4]byte{52, byte(10 + k), byte(k), 7}), "Public"
			if k >= 40 {
				url, ip, typ = fmt.Sprintf("pacs%d.hospital.local", k-40), netip.AddrFrom4([4]byte{10, 10, 0, byte(k)}), "Private"
			}
			evs[i] = egress.Event{Time: t, DeviceName: d.name, ActionType: egress.ActionConnectionSuccess, RemoteURL: url, RemoteIP: ip, RemotePort: 443,
				RemoteIPType: typ, SentBytes: int64(math.Exp(rng.NormFloat64()*1.2 + 7.5))}
			t = t.Add(step)
		}
		return evs
	}
	cfg := egress.Config{Baseline: egress.Window{Start: start, End: start.Add(6 * time.Hour)}}
	s := &benchLiveStore{groups: map[egress.GroupKey]*egress.Group{}}
	for i := 0; i < len(devs); i += 8 { // half of "pump"
		s.ins = append(s.ins, egress.Installation{Device: devs[i].name, Digest: digestA, Product: "pump", Version: "2", Time: start.Add(7 * time.Hour)})
	}
	live := egress.NewLive()
	for t.Before(start.Add(8 * time.Hour)) {
		s.ingest(next(batch))
	}
	if _, err := live.Analyze(b.Context(), s, fleet, cfg); err != nil {
		b.Fatal(err)
	}
	var cpu time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		s.ingest(next(batch))
		c0 := proccpu.Time()
		b.StartTimer()
		if _, err := live.Analyze(b.Context(), s, fleet, cfg); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		cpu += proccpu.Time() - c0
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/event")
	// The process's CPU time in the analyses (the garbage collector's
	// included): what the shared machine's load does not change. Events
	// per CPU-second is the rate one core keeps up with.
	if cpu > 0 {
		b.ReportMetric(float64(b.N*batch)/cpu.Seconds(), "events/cpu-s")
	}
	if st := live.Stats(); st.Rebuilds != 1 {
		b.Fatalf("%d rebuilds, want 1", st.Rebuilds)
	}
}
