package rollout_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/evidence"
	"github.com/wardgate/wardgate/fixtures/fleet"
	"github.com/wardgate/wardgate/rollout"
	"github.com/wardgate/wardgate/trust"
)

// The scaled replay (docs/rollout.md, "The canary share the detections
// need"): the fleet fixture's compromised classes scaled to hundreds of
// devices, generated deterministically, run through the rings with the
// real egress detections (egress.NewAnalyzer over the telemetry up to each
// analysis, the fleet fixture's detection configuration). It takes
// minutes, so it runs only with WARDGATE_ROLLOUT_SCALE set to the class
// sizes (e.g. "200,1000"): bench/rollout-canary.sh.

// scaleCase is one release of the scaled fleet.
type scaleCase struct {
	name, class, cloud, cloudIP string
	// payload returns the connections a device that installed at in
	// makes to the payload's destination (none: benign, or not a target).
	payload func(rng *rand.Rand, dev int, in, end time.Time) []egress.Event
}

var scaleCases = []scaleCase{
	{name: "3CX", class: "infusion-pump", cloud: "telemetry.acme-infusion.com", cloudIP: "52.168.117.170",
		// As the fixture: the payload is fetched 9.6 h to 13.2 h after the
		// install, then 7 h and 14 h later.
		payload: func(rng *rand.Rand, _ int, in, end time.Time) []egress.Event {
			t := in.Add(9*time.Hour + 36*time.Minute + time.Duration(rng.IntN(3*3600+36*60))*time.Second)
			var out []egress.Event
			for k := range 3 {
				out = append(out, conn(t.Add(time.Duration(k*7)*time.Hour), fleet.ThreeCXHost, "185.199.108.133", 900))
			}
			return out
		}},
	{name: "CCleaner", class: "mri-console", cloud: "cloud.medimaging.net", cloudIP: "40.112.72.205",
		// As the fixture: system data posted to a fixed IP (no host name)
		// from 11 h after the install, every 6 to 7 hours.
		payload: func(rng *rand.Rand, _ int, in, end time.Time) []egress.Event {
			var out []egress.Event
			for t := in.Add(11*time.Hour + time.Duration(rng.IntN(3600))*time.Second); t.Before(end); t = t.Add(6*time.Hour + time.Duration(rng.IntN(3600))*time.Second) {
				out = append(out, conn(t, "", fleet.CCleanerIP, 4000+rng.Int64N(2000)))
			}
			return out
		}},
	{name: "ShadowHammer", class: "patient-monitor", cloud: "telemetry.vitalsync.com", cloudIP: "20.42.65.90",
		// As the fixture: 8 in 10 monitors are targets; a target calls the
		// command server 3 h after the install, then every 8 h.
		payload: func(rng *rand.Rand, dev int, in, end time.Time) []egress.Event {
			if dev%10 == 4 || dev%10 == 8 {
				return nil
			}
			var out []egress.Event
			for t := in.Add(3 * time.Hour); t.Before(end); t = t.Add(8*time.Hour + time.Duration(rng.IntN(1800))*time.Second) {
				out = append(out, conn(t, "update."+fleet.ShadowHammerC2, "141.105.71.116", 600+rng.Int64N(300)))
			}
			return out
		}},
	{name: "benign", class: "infusion-pump", cloud: "telemetry.acme-infusion.com", cloudIP: "52.168.117.170"},
}

func conn(t time.Time, url, ip string, sent int64) egress.Event {
	return egress.Event{Time: t, ActionType: egress.ActionConnectionSuccess, RemoteIP: netip.MustParseAddr(ip), RemotePort: 443,
		RemoteURL: url, RemoteIPType: "Public", SentBytes: sent, ReceivedBytes: 1000}
}

// scaleFleet is one class of n devices and its everyday telemetry: a
// check-in with the vendor cloud every 6 hours and an NTP sync a day, from
// the fixture's start (the baseline is its first 14 days).
type scaleFleet struct {
	c      scaleCase
	names  []string
	inv    *egress.Inventory
	normal []egress.Event // by time
	ask    []time.Time    // when each device first asks for the release
	start  time.Time      // the release's first install (day 15)
	end    time.Time
}

func newScaleFleet(t testing.TB, c scaleCase, n int) *scaleFleet {
	rng := rand.New(rand.NewPCG(uint64(n), 20261205))
	f := &scaleFleet{c: c, start: fleet.Start.Add(15 * 24 * time.Hour)}
	f.end = f.start.Add(12 * 24 * time.Hour)
	var devs []egress.Device
	for i := range n {
		name := fmt.Sprintf("SCALE-%s-%04d", strings.ToUpper(c.class[:3]), i)
		f.names = append(f.names, name)
		devs = append(devs, egress.Device{Name: name, Class: c.class, Segment: "clinical",
			Addresses: []netip.Addr{netip.AddrFrom4([4]byte{10, 20, byte(i >> 8), byte(i)})}})
		// A fast rollout: every device asks within a day of the release.
		f.ask = append(f.ask, f.start.Add(time.Duration(rng.IntN(24*3600))*time.Second))
		for h := 0; h < int(f.end.Sub(fleet.Start).Hours()); h += 6 {
			ev := conn(fleet.Start.Add(time.Duration(h)*time.Hour+time.Duration(rng.IntN(1200))*time.Second), c.cloud, c.cloudIP, 1500+rng.Int64N(30000))
			ev.DeviceName = name
			f.normal = append(f.normal, ev)
			if h%24 == 0 {
				ntp := conn(fleet.Start.Add(time.Duration(h)*time.Hour+time.Duration(rng.IntN(86400))*time.Second), "0.pool.ntp.org", "162.159.200.1", 48)
				ntp.RemotePort, ntp.DeviceName = 123, name
				f.normal = append(f.normal, ntp)
			}
		}
	}
	slices.SortStableFunc(f.normal, func(a, b egress.Event) int { return a.Time.Compare(b.Time) })
	inv, err := egress.NewInventory(devs)
	if err != nil {
		t.Fatal(err)
	}
	f.inv = inv
	return f
}

func (f *scaleFleet) release() fleet.Release {
	return fleet.Release{Product: f.c.class, Version: "9.9.9-" + f.c.name, Compromised: map[bool]string{true: f.c.name}[f.c.payload != nil]}
}

// run is one rollout: installed says when each device installs (given
// the state so far); it analyses the telemetry every step with the real
// detections and returns when the update was quarantined (zero if never),
// the installs then, and the decisions' trace.
type scaleRun struct {
	installed  map[string]time.Time
	stopAt     time.Time // quarantined, and the rollout stopped
	pausedAt   time.Time // first suspicious
	installsAt int       // installs when stopped
	allAt      time.Time // benign: every device allowed (the last ring open)
	analyses   int
}

// analyze runs the detections over the telemetry up to now with the
// installations so far.
func (f *scaleFleet) analyze(t testing.TB, cfg egress.Config, r fleet.Release, installed map[string]time.Time, payload []egress.Event, now time.Time) string {
	var ins []egress.Installation
	for _, d := range f.names {
		if at, ok := installed[d]; ok && !at.After(now) {
			ins = append(ins, egress.Installation{Device: d, Digest: r.Digest(), Product: r.Product, Version: r.Version, Time: at})
		}
	}
	a, err := egress.NewAnalyzer(f.inv, ins, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range f.normal {
		if f.normal[i].Time.After(now) {
			break
		}
		a.Add(&f.normal[i])
	}
	for i := range payload {
		if !payload[i].Time.After(now) {
			a.Add(&payload[i])
		}
	}
	rep := a.Report()
	if u, ok := rep.Risk(r.Digest()); ok {
		return u.State
	}
	return evidence.RiskClean
}

// payloadOf is the payload connections of the devices installed so far
// (each device's draws depend only on the device, not on the run).
func (f *scaleFleet) payloadOf(installed map[string]time.Time) []egress.Event {
	if f.c.payload == nil {
		return nil
	}
	var out []egress.Event
	for i, d := range f.names {
		at, ok := installed[d]
		if !ok {
			continue
		}
		rng := rand.New(rand.NewPCG(uint64(i), 7))
		for _, ev := range f.c.payload(rng, i, at, f.end) {
			ev.DeviceName = d
			out = append(out, ev)
		}
	}
	return out
}

// every is how often the telemetry is analysed in the scaled replay.
const every = 2 * time.Hour

// ringsOn rolls the release out through rings: each device asks at its
// own time from the release on, and installs at the first step its ring
// is open. Decisions are hourly; the detections run every two hours.
func (f *scaleFleet) ringsOn(t testing.TB, cfg egress.Config, rings []trust.Ring) scaleRun {
	r := f.release()
	devs := make([]rollout.Device, len(f.names))
	for i, d := range f.names {
		devs[i] = rollout.Device{ID: d}
	}
	p, err := rollout.NewPlan(key, r.Digest(), f.c.class, rings, devs)
	if err != nil {
		t.Fatal(err)
	}
	run := scaleRun{installed: map[string]time.Time{}}
	s := rollout.Start(p)
	risk := evidence.RiskClean
	lastSeen := map[string]time.Time{}
	next := 0 // f.normal index
	for now := f.start; now.Before(f.end); now = now.Add(time.Hour) {
		for i, d := range f.names {
			if _, done := run.installed[d]; !done && !now.Before(f.ask[i]) && p.Allowed(s, d) && s.Status != rollout.Halted {
				run.installed[d] = now
			}
		}
		for ; next < len(f.normal) && !f.normal[next].Time.After(now); next++ {
			lastSeen[f.normal[next].DeviceName] = f.normal[next].Time
		}
		if now.Sub(f.start)%every == 0 {
			risk = f.analyze(t, cfg, r, run.installed, f.payloadOf(run.installed), now)
			run.analyses++
		}
		if risk == evidence.RiskSuspicious && run.pausedAt.IsZero() {
			run.pausedAt = now
		}
		d := rollout.Decide(p, s, rollout.Observed{Installed: run.installed, LastSeen: lastSeen, Risk: risk}, now)
		s = d.State
		if s.Status == rollout.Halted {
			run.stopAt, run.installsAt = now, len(run.installed)
			return run
		}
		if s.Status == rollout.Complete && run.allAt.IsZero() {
			run.allAt = now
			if f.c.payload == nil {
				return run
			}
		}
	}
	run.installsAt = len(run.installed)
	return run
}

// ringsOff: every device installs when it asks.
func (f *scaleFleet) ringsOff(t testing.TB, cfg egress.Config) scaleRun {
	r := f.release()
	run := scaleRun{installed: map[string]time.Time{}}
	for i, d := range f.names {
		run.installed[d] = f.ask[i]
	}
	payload := f.payloadOf(run.installed)
	for now := f.start; now.Before(f.end); now = now.Add(every) {
		run.analyses++
		if f.analyze(t, cfg, r, run.installed, payload, now) == evidence.RiskQuarantined {
			run.stopAt = now
			for _, at := range run.installed {
				if !at.After(now) {
					run.installsAt++
				}
			}
			return run
		}
	}
	run.installsAt = len(run.installed)
	return run
}

// minCanary is the fewest installers (the canary ring's size, all
// installing at the release) with which the detections quarantine the
// release within 3 days, up to max; 0 when none does.
func (f *scaleFleet) minCanary(t testing.TB, cfg egress.Config, max int) (quarantine, suspicious int) {
	r := f.release()
	for k := 1; k <= max && quarantine == 0; k++ {
		installed := map[string]time.Time{}
		for _, d := range f.names[:k] {
			installed[d] = f.start
		}
		payload := f.payloadOf(installed)
		switch f.analyze(t, cfg, r, installed, payload, f.start.Add(72*time.Hour)) {
		case evidence.RiskQuarantined:
			quarantine = k
			if suspicious == 0 {
				suspicious = k
			}
		case evidence.RiskSuspicious:
			if suspicious == 0 {
				suspicious = k
			}
		}
	}
	return quarantine, suspicious
}

func scaleRings(canary int) []trust.Ring {
	return []trust.Ring{
		{Name: "canary", Share: canary, Soak: 48 * time.Hour, MinReporting: 3},
		{Name: "early", Share: 5000, Soak: 24 * time.Hour, MinReporting: 1},
		{Name: "broad", Share: trust.FullShare, MinReporting: 1},
	}
}

// TestFleetReplayScaled: the share of each scaled class that installed a
// compromised release before the detections stopped it, for canary rings
// of 1%, 5%, 10% and 25% (then 50% and 100%), rings off for comparison,
// the delay the rings add to a benign release, and the smallest canary
// (in devices) each detection needs (only this for a class under 10). The table in docs/rollout.md is its
// log.
func TestFleetReplayScaled(t *testing.T) {
	sizes := os.Getenv("WARDGATE_ROLLOUT_SCALE")
	if sizes == "" {
		t.Skip("the scaled fleet replay takes minutes: WARDGATE_ROLLOUT_SCALE=200,1000 (bench/rollout-canary.sh)")
	}
	cfg, err := egress.ReadConfigFile("../fixtures/fleet/testdata/config.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(field))
		if err != nil || n < 4 || n > 5000 {
			t.Fatalf("WARDGATE_ROLLOUT_SCALE: %q: want class sizes from 4 to 5000, comma-separated", field)
		}
		for _, c := range scaleCases {
			f := newScaleFleet(t, c, n)
			if c.payload == nil {
				for _, share := range []int{100, 500, 1000, 2500} {
					run := f.ringsOn(t, cfg, scaleRings(share))
					if run.allAt.IsZero() {
						t.Errorf("%s n=%d canary %s: the benign release never reached every device", c.name, n, trust.FormatShare(share))
						continue
					}
					paused := ""
					if !run.pausedAt.IsZero() {
						paused = fmt.Sprintf(", paused (suspicious) %5.1f h after", hoursAfter(run.pausedAt, f.start))
					}
					t.Logf("n=%-5d %-12s canary %-4s benign: every device allowed %5.1f h after the release (rings off: %4.1f h)%s",
						n, c.name, trust.FormatShare(share), run.allAt.Sub(f.start).Hours(), lastAsk(f).Sub(f.start).Hours(), paused)
				}
				continue
			}
			if n < 10 {
				q, s := f.minCanary(t, cfg, n)
				t.Logf("n=%-5d %-12s smallest canary the detections need: %d device(s) to quarantine, %d to flag suspicious (0: not within %d)", n, c.name, q, s, n)
				if q != 2 || s != 1 {
					t.Errorf("n=%d %s: smallest canary %d to quarantine, %d to flag; docs/rollout.md says 2 and 1", n, c.name, q, s)
				}
				continue
			}
			off := f.ringsOff(t, cfg)
			t.Logf("n=%-5d %-12s rings off:   installed before the stop %4d/%d (%5.1f%%), quarantined %5.1f h after the release",
				n, c.name, off.installsAt, n, pct(off.installsAt, n), hoursAfter(off.stopAt, f.start))
			for _, share := range []int{100, 500, 1000, 2500} {
				run := f.ringsOn(t, cfg, scaleRings(share))
				canary := (share*n + trust.FullShare - 1) / trust.FullShare
				status := fmt.Sprintf("quarantined %5.1f h after the release", hoursAfter(run.stopAt, f.start))
				if run.stopAt.IsZero() {
					status = fmt.Sprintf("NOT quarantined in %d days", int(f.end.Sub(f.start).Hours()/24))
				}
				if !run.pausedAt.IsZero() {
					status += fmt.Sprintf(", paused (suspicious) %5.1f h after", hoursAfter(run.pausedAt, f.start))
				}
				t.Logf("n=%-5d %-12s canary %-4s (%3d devices): installed before the stop %4d/%d (%5.1f%%), %s",
					n, c.name, trust.FormatShare(share), canary, run.installsAt, n, pct(run.installsAt, n), status)
				// What docs/rollout.md says: two canaries or more stop the
				// update in the canary ring; one pauses it, never stops it.
				switch {
				case canary >= 2 && (run.stopAt.IsZero() || run.installsAt > canary):
					t.Errorf("n=%d %s canary %s: not stopped in the canary ring", n, c.name, trust.FormatShare(share))
				case canary == 1 && (!run.stopAt.IsZero() || run.pausedAt.IsZero()):
					t.Errorf("n=%d %s canary of one device: stopped %v, paused %v", n, c.name, run.stopAt, run.pausedAt)
				}
			}
			if off.stopAt.IsZero() {
				t.Errorf("n=%d %s: never quarantined with rings off", n, c.name)
			}
			q, s := f.minCanary(t, cfg, 12)
			t.Logf("n=%-5d %-12s smallest canary the detections need: %d device(s) to quarantine, %d to flag suspicious (0: not within 12)", n, c.name, q, s)
			if q != 2 || s != 1 {
				t.Errorf("n=%d %s: smallest canary %d to quarantine, %d to flag; docs/rollout.md says 2 and 1", n, c.name, q, s)
			}
		}
	}
}

func lastAsk(f *scaleFleet) time.Time { return slices.MaxFunc(f.ask, time.Time.Compare) }

func pct(a, b int) float64 { return 100 * float64(a) / float64(b) }

func hoursAfter(t, start time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return t.Sub(start).Hours()
}
