package egress_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/egress"
)

// TestVolume: hours to a destination the class reached in the baseline are
// judged against the class's learned hourly volume there; other
// destinations by the flat exfilBytes rule.
func TestVolume(t *testing.T) {
	upload := func(s *sim, url string, at time.Duration, bytes int64, devs ...string) {
		for _, d := range devs {
			for k := range 4 { // four connections in the hour
				s.evs = append(s.evs, conn(d, at+time.Duration(k)*10*time.Minute, url, "52.10.0.2", bytes/4))
			}
		}
	}
	cases := []struct {
		name  string
		build func(s *sim, d []string)
		codes []egress.Code
		state string
	}{
		{"installers upload 200 MB to the vendor cloud in an hour, the others do not", func(s *sim, d []string) {
			upload(s, "api.vendor-cloud.com", 12*day, 200_000_000, d[:3]...)
		}, []egress.Code{egress.CodeVolumeAnomaly}, "suspicious"},
		{"the whole class uploads 200 MB: a change of the class", func(s *sim, d []string) {
			upload(s, "api.vendor-cloud.com", 12*day, 200_000_000, d...)
		}, []egress.Code{egress.CodeFleetChange}, "clean"},
		{"uploads no larger than the baseline's own: nothing (the flat rule would flag 30 MB)", func(s *sim, d []string) {
			upload(s, "api.vendor-cloud.com", 3*day, 40_000_000, d...)
			upload(s, "api.vendor-cloud.com", 12*day, 30_000_000, d[:3]...)
			upload(s, "api.vendor-cloud.com", 13*day, 40_000_000, d[:3]...)
		}, nil, "clean"},
		{"a steady 48-byte destination: four times as much is not far outside", func(s *sim, d []string) {
			for _, x := range d {
				s.reach(x, "time.clocksync.net", 0, 20*day, time.Hour, 48)
			}
			s.reach(d[0], "time.clocksync.net", 12*day+30*time.Minute, 12*day+31*time.Minute, time.Hour, 150)
		}, nil, "clean"},
		{"a steady 48-byte destination: 10 kB in an hour is", func(s *sim, d []string) {
			for _, x := range d {
				s.reach(x, "time.clocksync.net", 0, 20*day, time.Hour, 48)
			}
			s.reach(d[0], "time.clocksync.net", 12*day+30*time.Minute, 12*day+31*time.Minute, time.Hour, 10_000)
		}, []egress.Code{egress.CodeVolumeAnomaly}, "suspicious"},
		{"too few baseline hours to learn: the flat rule, 6 MB", func(s *sim, d []string) {
			s.reach(d[4], "files.partner.org", 2*day, 2*day+5*time.Hour, time.Hour, 1000)
			upload(s, "files.partner.org", 12*day, 6_000_000, d[0])
		}, []egress.Code{egress.CodeExfilVolume}, "suspicious"},
		{"too few baseline hours to learn: the flat rule, 3 MB", func(s *sim, d []string) {
			s.reach(d[4], "files.partner.org", 2*day, 2*day+5*time.Hour, time.Hour, 1000)
			upload(s, "files.partner.org", 12*day, 3_000_000, d[0])
		}, nil, "clean"},
		{"a new destination: the flat rule and new-destination", func(s *sim, d []string) {
			upload(s, "drop.example.org", 12*day, 6_000_000, d[0])
		}, []egress.Code{egress.CodeExfilVolume, egress.CodeNewDestination}, "suspicious"},
		{"a new destination the whole class sends 6 MB an hour to: one notice", func(s *sim, d []string) {
			upload(s, "backup.newvendor.org", 12*day, 6_000_000, d...)
		}, []egress.Code{egress.CodeFleetChange}, "clean"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t)
			d := s.class("pump", 6)
			s.checkins(6*time.Hour, 0, 30*day, d...)
			s.install(upd1, 10*day, d[:3]...)
			tc.build(s, d)
			r := s.report(1000 * day)
			if got := codes(r); !slices.Equal(got, tc.codes) {
				t.Errorf("codes %v, want %v: %+v", got, tc.codes, r.Findings)
			}
			if got := state(t, r, upd1); got != tc.state {
				t.Errorf("state %s, want %s", got, tc.state)
			}
			for _, f := range r.Findings {
				if f.Code == egress.CodeVolumeAnomaly && f.Update != "" && (!slices.Equal(f.Devices, d[:1]) && !slices.Equal(f.Devices, d[:3]) || !strings.Contains(f.Explanation, "robust score")) {
					t.Errorf("volume-anomaly: %+v", f)
				}
			}
		})
	}
}
