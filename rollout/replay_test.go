package rollout_test

import (
	"bufio"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/evidence"
	"github.com/wardgate/wardgate/fixtures/fleet"
	"github.com/wardgate/wardgate/rollout"
	"github.com/wardgate/wardgate/trust"
)

// The rings of the example, used by the replay and docs/rollout.md.
var replayRings = []trust.Ring{
	{Name: "canary", Share: 500, Soak: 48 * time.Hour, MinReporting: 3},
	{Name: "early", Share: 2500, Soak: 24 * time.Hour, MinReporting: 1},
	{Name: "broad", Share: trust.FullShare, MinReporting: 1},
}

// badDest is the destination each compromised release's payload reaches.
var badDest = map[string]string{"3CX": fleet.ThreeCXHost, "CCleaner": fleet.CCleanerIP, "SolarWinds": fleet.SolarWindsBase, "ShadowHammer": fleet.ShadowHammerC2}

type fixtureData struct {
	classes  map[string][]string             // class -> device names
	installs map[string]map[string]time.Time // digest -> device -> time
	seen     map[string][]time.Time          // device -> event times, sorted
	bad      map[string]map[string]time.Time // case -> device -> first connection to badDest
}

func loadFleet(t testing.TB) fixtureData {
	t.Helper()
	const dir = "../fixtures/fleet/testdata/"
	f := fixtureData{classes: map[string][]string{}, installs: map[string]map[string]time.Time{}, seen: map[string][]time.Time{}, bad: map[string]map[string]time.Time{}}
	var inv []struct{ Name, Class string }
	var ins []struct {
		Device, Digest string
		Time           time.Time
	}
	for name, v := range map[string]any{"inventory.json": &inv, "installations.json": &ins} {
		b, err := os.ReadFile(dir + name)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range inv {
		f.classes[d.Class] = append(f.classes[d.Class], d.Name)
	}
	for _, in := range ins {
		if f.installs[in.Digest] == nil {
			f.installs[in.Digest] = map[string]time.Time{}
		}
		f.installs[in.Digest][in.Device] = in.Time
	}
	fh, err := os.Open(dir + "defender.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		var ev struct {
			Timestamp             time.Time
			DeviceName, RemoteUrl string //nolint:revive // Defender's column
			RemoteIP              string
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		f.seen[ev.DeviceName] = append(f.seen[ev.DeviceName], ev.Timestamp)
		for c, dest := range badDest {
			if strings.HasSuffix(ev.RemoteUrl, dest) || ev.RemoteIP == dest {
				if f.bad[c] == nil {
					f.bad[c] = map[string]time.Time{}
				}
				if _, ok := f.bad[c][ev.DeviceName]; !ok {
					f.bad[c][ev.DeviceName] = ev.Timestamp
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return f
}

// lastSeen is the device's latest event at or before t.
func (f fixtureData) lastSeen(dev string, t time.Time) (time.Time, bool) {
	ts := f.seen[dev]
	i, _ := slices.BinarySearchFunc(ts, t, func(a, b time.Time) int { return a.Compare(b.Add(time.Nanosecond)) })
	if i == 0 {
		return time.Time{}, false
	}
	return ts[i-1], true
}

// replayResult is one release's replay.
type replayResult struct {
	release               fleet.Release
	devices               int
	offBefore, onBefore   int           // installers before the stop (compromised), rings off and on
	stoppedRing           string        // the ring open when it stopped ("" if never)
	offFull, onFull       time.Duration // benign: first install to the last device allowed
	onset                 time.Duration // compromised: install to the first payload connection
	widenedBeforeDetected bool
}

// replay runs one release through the rings, hour by hour, over the
// fixture's telemetry. Rings off: the devices install when the fixture
// says. Rings on: every device of the class asks from the fixture's first
// install on (at its own fixture time if it has one) and installs as soon
// as its ring is open. A compromised release is stopped at the first
// connection to its payload's destination by a device that installed it
// (the fixture's install-to-payload delay, applied to each installer; for
// ShadowHammer only to its targets): the egress detections' own delay is
// not modelled.
func replay(t testing.TB, f fixtureData, r fleet.Release) replayResult {
	devs := f.classes[r.Product]
	res := replayResult{release: r, devices: len(devs)}
	fx := f.installs[r.Digest()]
	start := time.Time{}
	for _, at := range fx {
		if start.IsZero() || at.Before(start) {
			start = at
		}
	}
	onset := time.Duration(-1)
	for d, at := range f.bad[r.Compromised] {
		if in, ok := fx[d]; ok && (onset < 0 || at.Sub(in) < onset) {
			onset = at.Sub(in)
		}
	}
	res.onset = onset
	behaves := func(d string) bool {
		return r.Compromised != "" && (r.Compromised != "ShadowHammer" || slices.Contains(fleet.ShadowHammerTargets, d))
	}
	detect := func(installed map[string]time.Time) time.Time {
		var at time.Time
		for d, in := range installed {
			if behaves(d) && (at.IsZero() || in.Add(onset).Before(at)) {
				at = in.Add(onset)
			}
		}
		return at
	}
	// Rings off.
	offStop := detect(fx)
	last := start
	for _, at := range fx {
		if offStop.IsZero() || at.Before(offStop) {
			res.offBefore++
		}
		if at.After(last) {
			last = at
		}
	}
	res.offFull = last.Sub(start)
	// Rings on.
	rd := make([]rollout.Device, len(devs))
	for i, d := range devs {
		rd[i] = rollout.Device{ID: d}
	}
	p := plan(t, r.Digest(), replayRings, rd)
	s := rollout.Start(p)
	installed := map[string]time.Time{}
	end := fleet.Start.Add(fleet.Days * 24 * time.Hour)
	for now := start; now.Before(end); now = now.Add(time.Hour) {
		for _, d := range devs {
			ask := start
			if at, ok := fx[d]; ok {
				ask = at
			}
			if _, done := installed[d]; !done && !now.Before(ask) && p.Allowed(s, d) && s.Status != rollout.Halted {
				installed[d] = now
			}
		}
		o := rollout.Observed{Installed: installed, LastSeen: map[string]time.Time{}, Risk: evidence.RiskClean}
		if stop := detect(installed); !stop.IsZero() && !stop.After(now) {
			o.Risk = evidence.RiskQuarantined
		}
		for _, d := range devs {
			if ls, ok := f.lastSeen(d, now); ok {
				o.LastSeen[d] = ls
			}
		}
		d := rollout.Decide(p, s, o, now)
		if d.Change != nil && d.Change.Action == rollout.Widened && r.Compromised != "" {
			res.widenedBeforeDetected = true
		}
		s = d.State
		if s.Status == rollout.Halted {
			res.stoppedRing = p.Rings[s.Ring].Name
			res.onBefore = len(installed)
			break
		}
		if s.Status == rollout.Complete && res.onFull == 0 {
			res.onFull = now.Sub(start)
		}
		if s.Status == rollout.Complete && len(installed) == len(devs) && r.Compromised == "" {
			break
		}
	}
	return res
}

// TestFleetReplay replays the fleet fixture's releases with rings on and
// off; docs/rollout.md quotes its log (go test ./rollout -run
// TestFleetReplay -v).
func TestFleetReplay(t *testing.T) {
	f := loadFleet(t)
	for _, r := range fleet.Releases {
		res := replay(t, f, r)
		if r.Compromised == "" {
			t.Logf("%-16s %-6s benign       %2d devices: all allowed after %5.1fh with rings (fixture rollout %5.1fh)",
				r.Product, r.Version, res.devices, res.onFull.Hours(), res.offFull.Hours())
			if res.stoppedRing != "" || res.onFull == 0 {
				t.Errorf("%s %s: benign release did not reach 100%%: %+v", r.Product, r.Version, res)
			}
			continue
		}
		t.Logf("%-16s %-6s %-12s %2d devices: installed before the stop %d/%d (%3.0f%%) rings off, %d/%d (%3.0f%%) rings on (stopped in %s; payload %5.1fh after install)",
			r.Product, r.Version, r.Compromised, res.devices, res.offBefore, res.devices, 100*float64(res.offBefore)/float64(res.devices),
			res.onBefore, res.devices, 100*float64(res.onBefore)/float64(res.devices), res.stoppedRing, res.onset.Hours())
		switch r.Compromised {
		case "3CX", "CCleaner":
			p := plan(t, r.Digest(), replayRings, devices(f.classes[r.Product]))
			if res.stoppedRing != "canary" || res.onBefore > p.Bounds[0] || res.widenedBeforeDetected {
				t.Errorf("%s: want stopped in canary with at most %d installs: %+v", r.Compromised, p.Bounds[0], res)
			}
		case "SolarWinds":
			// Dormant twelve days: a 48 h soak cannot see it.
			if !res.widenedBeforeDetected || res.stoppedRing != "broad" || res.onBefore != res.devices || res.onset < 48*time.Hour {
				t.Errorf("SolarWinds: want the rings widened before the payload woke: %+v", res)
			}
		}
		if res.onBefore > res.offBefore && (r.Compromised == "3CX" || r.Compromised == "CCleaner") {
			t.Errorf("%s: rings on let more devices install (%d) than off (%d)", r.Compromised, res.onBefore, res.offBefore)
		}
	}
}

func devices(names []string) []rollout.Device {
	out := make([]rollout.Device, len(names))
	for i, n := range names {
		out[i] = rollout.Device{ID: n}
	}
	return out
}
