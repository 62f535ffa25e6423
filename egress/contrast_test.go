package egress_test

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/wardgate/wardgate/egress"
)

const day = 24 * time.Hour

// sim builds a small fleet: devices of one or more classes, their
// installations and their telemetry, with a one-week baseline.
type sim struct {
	t    *testing.T
	devs []egress.Device
	ins  []egress.Installation
	evs  []egress.Event
	cfg  egress.Config
}

func newSim(t *testing.T) *sim {
	return &sim{t: t, cfg: egress.Config{Baseline: egress.Window{Start: t0, End: t0.Add(7 * day)}}}
}

// class adds n devices named class-01... and returns their names.
func (s *sim) class(class string, n int) []string {
	var names []string
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("%s-%02d", class, i)
		s.devs = append(s.devs, egress.Device{Name: name, Class: class, Segment: "s",
			Addresses: []netip.Addr{netip.AddrFrom4([4]byte{10, byte(len(s.devs) / 250), byte(len(s.devs) % 250), 1})}})
		names = append(names, name)
	}
	return names
}

// checkins: each device talks to its vendor cloud (a baseline
// destination, not allowed) every period from start to end.
func (s *sim) checkins(period, start, end time.Duration, devs ...string) {
	for i, d := range devs {
		for at := start + time.Duration(i)*time.Minute; at < end; at += period {
			s.evs = append(s.evs, conn(d, at, "api.vendor-cloud.com", "52.10.0.1", 2000+int64(at/time.Minute)%7000))
		}
	}
}

func (s *sim) install(digest string, at time.Duration, devs ...string) {
	for _, d := range devs {
		s.ins = append(s.ins, egress.Installation{Device: d, Digest: digest, Product: "p", Version: digest[7:10], Time: t0.Add(at)})
	}
}

// reach: dev connects to url every period from start to end.
func (s *sim) reach(dev, url string, start, end, period time.Duration, sent int64) {
	for at := start; at < end; at += period {
		s.evs = append(s.evs, conn(dev, at, url, "198.51.100.9", sent))
	}
}

func (s *sim) report(until time.Duration) egress.Report {
	s.t.Helper()
	inv, err := egress.NewInventory(s.devs)
	if err != nil {
		s.t.Fatal(err)
	}
	var ins []egress.Installation
	for _, in := range s.ins {
		if in.Time.Before(t0.Add(until)) {
			ins = append(ins, in)
		}
	}
	a, err := egress.NewAnalyzer(inv, ins, s.cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	for i := range s.evs {
		if s.evs[i].Time.Before(t0.Add(until)) {
			a.Add(&s.evs[i])
		}
	}
	return a.Report()
}

func digest(c byte) string {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return "sha256:" + string(b)
}

var (
	upd1 = digest('1')
	upd2 = digest('2')
)

func state(t *testing.T, r egress.Report, d string) string {
	t.Helper()
	u, ok := r.Risk(d)
	if !ok {
		t.Fatalf("%s not in report", d)
	}
	return u.State
}

func finding(r egress.Report, code egress.Code, update string) (egress.Finding, bool) {
	for _, f := range r.Findings {
		if f.Code == code && f.Update == update {
			return f, true
		}
	}
	return egress.Finding{}, false
}

// TestContrast covers the shapes of fleets the attribution must handle:
// small classes, classes where almost everyone installed, staggered
// rollouts, sparse telemetry, several updates in flight, fleet-wide
// changes.
func TestContrast(t *testing.T) {
	cases := []struct {
		name        string
		build       func(s *sim)
		until       time.Duration // 0: the whole history
		want        map[string]string
		quarantined []string // the devices fleet-correlation names for upd1
		notice      bool     // a fleet-change notice
	}{
		{"small class: three of four install, they reach a C2, the fourth does not", func(s *sim) {
			d := s.class("hvac", 4)
			s.checkins(6*time.Hour, 0, 40*day, d...)
			s.install(upd1, 9*day, d[:3]...)
			for _, x := range d[:3] {
				s.reach(x, "c2.avsvmcloud.com", 21*day, 40*day, time.Hour, 300)
			}
		}, 0, map[string]string{upd1: "quarantined"}, []string{"hvac-01", "hvac-02", "hvac-03"}, false},
		{"small class: the fourth reaches it too", func(s *sim) {
			d := s.class("hvac", 4)
			s.checkins(6*time.Hour, 0, 40*day, d...)
			s.install(upd1, 9*day, d[:3]...)
			for _, x := range d {
				s.reach(x, "ntp.newtime.net", 21*day, 40*day, 2*time.Hour, 48)
			}
		}, 0, map[string]string{upd1: "clean"}, nil, true},
		{"a non-installer that sends no telemetry is no comparison", func(s *sim) {
			d := s.class("hvac", 4)
			s.checkins(6*time.Hour, 0, 40*day, d[:3]...)
			s.install(upd1, 9*day, d[:3]...)
			for _, x := range d[:3] {
				s.reach(x, "c2.avsvmcloud.com", 21*day, 40*day, time.Hour, 300)
			}
		}, 0, map[string]string{upd1: "clean"}, nil, true},
		{"everyone installed, then the whole class changes: no comparison, a notice", func(s *sim) {
			d := s.class("pump", 6)
			s.checkins(6*time.Hour, 0, 40*day, d...)
			s.install(upd1, 8*day, d...)
			for _, x := range d {
				s.reach(x, "logs.newsiem.net", 20*day, 40*day, time.Hour, 500)
			}
		}, 0, map[string]string{upd1: "clean"}, nil, true},
		{"staggered rollout to the whole class, each device calls out hours after its own install", func(s *sim) {
			d := s.class("monitor", 20)
			s.checkins(6*time.Hour, 0, 40*day, d...)
			for i, x := range d {
				at := 10*day + time.Duration(i)*12*time.Hour
				s.install(upd1, at, x)
				s.reach(x, "asushotfix.com", at+3*time.Hour, 40*day, 6*time.Hour, 700)
			}
		}, 0, map[string]string{upd1: "quarantined"}, []string{"monitor-01", "monitor-02", "monitor-03", "monitor-04", "monitor-05", "monitor-06", "monitor-07", "monitor-08", "monitor-09", "monitor-10",
			"monitor-11", "monitor-12", "monitor-13", "monitor-14", "monitor-15", "monitor-16", "monitor-17", "monitor-18", "monitor-19", "monitor-20"}, false},
		{"the same rollout seen on its second day: already quarantined", func(s *sim) {
			d := s.class("monitor", 20)
			s.checkins(6*time.Hour, 0, 40*day, d...)
			for i, x := range d {
				at := 10*day + time.Duration(i)*12*time.Hour
				s.install(upd1, at, x)
				s.reach(x, "asushotfix.com", at+3*time.Hour, 40*day, 6*time.Hour, 700)
			}
		}, 11*day + 6*time.Hour, map[string]string{upd1: "quarantined"}, []string{"monitor-01", "monitor-02", "monitor-03"}, false},
		{"staggered benign rollout while the whole class moves to a new endpoint", func(s *sim) {
			d := s.class("monitor", 20)
			s.checkins(6*time.Hour, 0, 40*day, d...)
			for i, x := range d {
				s.install(upd1, 10*day+time.Duration(i)*12*time.Hour, x)
				s.reach(x, "ingest.vendor-cloud.eu", 16*day+time.Duration(i)*7*time.Minute, 40*day, 6*time.Hour, 2000)
			}
		}, 0, map[string]string{upd1: "clean"}, nil, true},
		{"large class: two non-installers also reach it, installers all do", func(s *sim) {
			d := s.class("pump", 30)
			s.checkins(6*time.Hour, 0, 40*day, d...)
			s.install(upd1, 9*day, d[:15]...)
			for _, x := range d[:15] {
				s.reach(x, "raw.githubusercontent.com", 10*day, 12*day, 7*time.Hour, 900)
			}
			s.reach(d[20], "raw.githubusercontent.com", 11*day, 11*day+time.Hour, time.Hour, 900)
			s.reach(d[25], "raw.githubusercontent.com", 30*day, 30*day+time.Hour, time.Hour, 900)
		}, 0, map[string]string{upd1: "quarantined"}, []string{"pump-01", "pump-02", "pump-03", "pump-04", "pump-05", "pump-06", "pump-07", "pump-08", "pump-09", "pump-10",
			"pump-11", "pump-12", "pump-13", "pump-14", "pump-15"}, false},
		{"large class: half of each group reaches it", func(s *sim) {
			d := s.class("pump", 40)
			s.checkins(6*time.Hour, 0, 40*day, d...)
			s.install(upd1, 9*day, d[:20]...)
			for i, x := range d {
				if i%2 == 0 {
					s.reach(x, "cdn.newportal.net", 15*day+time.Duration(i)*time.Hour, 40*day, 12*time.Hour, 900)
				}
			}
		}, 0, map[string]string{upd1: "clean"}, nil, true},
		{"two updates in flight: the compromised one on top of the benign one", func(s *sim) {
			d := s.class("pump", 6)
			s.checkins(6*time.Hour, 0, 40*day, d...)
			s.install(upd2, 8*day, d...)
			s.install(upd1, 18*day, d[:4]...)
			for _, x := range d[:4] {
				s.reach(x, "raw.githubusercontent.com", 18*day+5*time.Hour, 19*day, 7*time.Hour, 900)
			}
		}, 0, map[string]string{upd1: "quarantined", upd2: "clean"}, []string{"pump-01", "pump-02", "pump-03", "pump-04"}, false},
		{"two benign updates to the two halves while the class changes", func(s *sim) {
			d := s.class("pump", 8)
			s.checkins(6*time.Hour, 0, 40*day, d...)
			s.install(upd1, 8*day, d[:4]...)
			s.install(upd2, 9*day, d[4:]...)
			for _, x := range d {
				s.reach(x, "api.vendor-cloud2.com", 20*day, 40*day, 6*time.Hour, 2000)
			}
		}, 0, map[string]string{upd1: "clean", upd2: "clean"}, nil, true},
		{"the whole class installed at once: the rest of the fleet, which does not reach it, is the comparison", func(s *sim) {
			d := s.class("hvac", 4)
			o := s.class("pump", 6)
			s.checkins(6*time.Hour, 0, 40*day, append(d, o...)...)
			s.install(upd1, 9*day, d...)
			for _, x := range d {
				s.reach(x, "c2.avsvmcloud.com", 21*day, 40*day, time.Hour, 300)
			}
		}, 0, map[string]string{upd1: "quarantined"}, []string{"hvac-01", "hvac-02", "hvac-03", "hvac-04"}, false},
		{"the whole class installed at once, and the rest of the fleet reaches it too", func(s *sim) {
			d := s.class("hvac", 4)
			o := s.class("pump", 6)
			s.checkins(6*time.Hour, 0, 40*day, append(d, o...)...)
			s.install(upd1, 9*day, d...)
			for _, x := range append(d, o...) {
				s.reach(x, "logs.newsiem.net", 21*day, 40*day, 3*time.Hour, 300)
			}
		}, 0, map[string]string{upd1: "clean"}, nil, true},
		{"sparse telemetry: the non-installer reports once a week, not when the installers call out", func(s *sim) {
			d := s.class("hvac", 4)
			s.checkins(6*time.Hour, 0, 40*day, d[:3]...)
			s.checkins(7*day, 0, 40*day, d[3])
			s.install(upd1, 9*day, d[:3]...)
			for _, x := range d[:3] {
				s.reach(x, "c2.avsvmcloud.com", 17*day, 20*day, time.Hour, 300)
			}
		}, 0, map[string]string{upd1: "clean"}, nil, true},
		{"sparse telemetry: the non-installer reports once a week, once while they call out", func(s *sim) {
			d := s.class("hvac", 4)
			s.checkins(6*time.Hour, 0, 40*day, d[:3]...)
			s.checkins(7*day, 0, 40*day, d[3])
			s.install(upd1, 9*day, d[:3]...)
			for _, x := range d[:3] {
				s.reach(x, "c2.avsvmcloud.com", 21*day, 40*day, time.Hour, 300)
			}
		}, 0, map[string]string{upd1: "quarantined"}, []string{"hvac-01", "hvac-02", "hvac-03"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t)
			tc.build(s)
			until := tc.until
			if until == 0 {
				until = 1000 * day
			}
			r := s.report(until)
			for d, want := range tc.want {
				if got := state(t, r, d); got != want {
					t.Errorf("%s: %s, want %s; findings %+v", d[:10], got, want, r.Findings)
				}
			}
			f, ok := finding(r, egress.CodeFleetCorrelation, upd1)
			if ok != (tc.quarantined != nil) || (ok && !slices.Equal(f.Devices, tc.quarantined)) {
				t.Errorf("fleet-correlation %v %v, want %v", ok, f.Devices, tc.quarantined)
			}
			if _, ok := finding(r, egress.CodeFleetChange, ""); ok != tc.notice {
				t.Errorf("fleet-change notice %v, want %v: %+v", ok, tc.notice, r.Findings)
			}
			for _, f := range r.Findings {
				if f.Update != "" && tc.want[f.Update] == "clean" {
					t.Errorf("finding against clean %s: %+v", f.Update[:10], f)
				}
			}
		})
	}
}

// TestContrastExactTest pins the p-values: with a fixed split it is
// Fisher's exact test (one-sided), and a late installer counts as a
// non-installer until it installs.
func TestContrastExactTest(t *testing.T) {
	// Six pumps, four installed, the four reach it, two do not: Fisher's
	// one-sided p = 1 / C(6,4) = 1/15.
	s := newSim(t)
	d := s.class("pump", 6)
	s.checkins(6*time.Hour, 0, 30*day, d...)
	s.install(upd1, 8*day, d[:4]...)
	for _, x := range d[:4] {
		s.reach(x, "raw.githubusercontent.com", 9*day, 10*day, 7*time.Hour, 900)
	}
	f, ok := finding(s.report(1000*day), egress.CodeFleetCorrelation, upd1)
	if !ok {
		t.Fatal("no fleet-correlation")
	}
	c := f.Contrasts[0]
	if c.Installers != 4 || c.Reached != 4 || c.Controls != 2 || c.ControlsReached != 0 || math.Abs(c.POnsets-1.0/15) > 1e-12 || math.Abs(c.PPeriod-1.0/15) > 1e-12 || !c.Blamed {
		t.Errorf("contrast %+v, want 4/4 vs 0/2, p = 1/15", c)
	}
	// Twelve pumps, six installed and all six reach it, one of the six
	// without it does too: p = P(X >= 6), X ~ Hypergeometric(12, 6, 7)
	// = C(6,6) C(6,1) / C(12,7) = 6/792.
	s = newSim(t)
	d = s.class("pump", 12)
	s.checkins(6*time.Hour, 0, 30*day, d...)
	s.install(upd1, 8*day, d[:6]...)
	for _, x := range d[:7] {
		s.reach(x, "raw.githubusercontent.com", 9*day, 10*day, 7*time.Hour, 900)
	}
	f, ok = finding(s.report(1000*day), egress.CodeFleetCorrelation, upd1)
	if !ok {
		t.Fatal("no fleet-correlation")
	}
	if c := f.Contrasts[0]; c.Reached != 6 || c.ControlsReached != 1 || c.Controls != 6 || math.Abs(c.POnsets-6.0/792) > 1e-12 || math.Abs(c.PPeriod-6.0/792) > 1e-12 || !c.Blamed {
		t.Errorf("contrast %+v, want p = 6/792", c)
	}
	// Staggered: three pumps install on days 8, 9 and 10 and reach it a
	// few hours later; a fourth never installs. At each onset one device
	// at risk runs the update, of 4, then 3, then 2: the test at each
	// onset gives 1/4 * 1/3 * 1/2 = 1/24, crediting the late installers
	// for the days they had not installed it; Fisher's over the whole
	// period, where they are installers, 1/4. No device without the
	// update reached it, so it is blamed all the same.
	s = newSim(t)
	d = s.class("pump", 4)
	s.checkins(6*time.Hour, 0, 30*day, d...)
	for i, x := range d[:3] {
		s.install(upd1, 8*day+time.Duration(i)*day, x)
		s.reach(x, "raw.githubusercontent.com", 8*day+time.Duration(i)*day+3*time.Hour, 12*day, 7*time.Hour, 900)
	}
	f, _ = finding(s.report(1000*day), egress.CodeFleetCorrelation, upd1)
	if c := f.Contrasts[0]; c.Reached != 3 || c.Controls != 3 || math.Abs(c.POnsets-1.0/24) > 1e-12 || math.Abs(c.PPeriod-0.25) > 1e-12 || c.P != c.PPeriod || !c.Blamed {
		t.Errorf("staggered contrast %+v, want p = 1/24 and the two late installers counted as controls until they installed", c)
	}
}
