package egress_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/wardgate/wardgate/egress"
)

// liveStore is a LiveStore in memory: groups merged per batch, as the
// stores merge them (store/storetest runs the real ones).
type liveStore struct {
	groups  map[egress.GroupKey]*egress.Group
	batchOf map[egress.GroupKey]int64
	batch   int64
	ins     []egress.Installation
}

func (s *liveStore) ingest(evs []egress.Event) {
	s.batch++
	gr := egress.NewGrouper()
	for i := range evs {
		gr.Add(evs[i].DeviceName, &evs[i])
	}
	for _, g := range gr.Groups() {
		if old := s.groups[g.GroupKey]; old != nil {
			g.Merge(old)
		}
		s.groups[g.GroupKey] = g
		s.batchOf[g.GroupKey] = s.batch
	}
}

func (s *liveStore) Groups(_ context.Context, after int64, fn func(*egress.Group) error) (int64, error) {
	for k, g := range s.groups {
		if s.batchOf[k] > after {
			if err := fn(g.Clone()); err != nil {
				return 0, err
			}
		}
	}
	return s.batch, nil
}

func (s *liveStore) RecordInstallation(_ context.Context, in egress.Installation) error {
	s.ins = append(s.ins, in)
	return nil
}

func (s *liveStore) Installations(context.Context) ([]egress.Installation, error) {
	out := slices.Clone(s.ins)
	slices.SortStableFunc(out, func(x, y egress.Installation) int { return x.Time.Compare(y.Time) })
	return out, nil
}

// The incremental analysis gives the whole-history report after each
// change, applying a batch as a difference and rebuilding its aggregates
// only for what changes how groups are judged.
func TestLiveFollowsChanges(t *testing.T) {
	inv := smallFleet(t)
	day := 24 * time.Hour
	// The baseline ends within an hour, so that a group can move across it.
	cfg := egress.Config{Baseline: egress.Window{Start: t0, End: t0.Add(7*day + 30*time.Minute)}}
	s := &liveStore{groups: map[egress.GroupKey]*egress.Group{}, batchOf: map[egress.GroupKey]int64{}}
	var all []egress.Event
	live := egress.NewLive()
	step := func(what string, wantRebuilds int64, wantState string) {
		t.Helper()
		got, err := live.Analyze(t.Context(), s, inv, cfg)
		if err != nil {
			t.Fatal(err)
		}
		ins, _ := s.Installations(t.Context())
		whole := run(t, inv, ins, cfg, all)
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(whole)
		if string(gj) != string(wj) {
			t.Fatalf("%s: incremental\n%s\nwhole history\n%s", what, gj, wj)
		}
		if st := live.Stats(); st.Rebuilds != wantRebuilds {
			t.Errorf("%s: %d rebuilds, want %d", what, st.Rebuilds, wantRebuilds)
		}
		if u, _ := got.Risk(digestA); u.State != wantState {
			t.Errorf("%s: state %q, want %q", what, u.State, wantState)
		}
	}
	add := func(evs ...egress.Event) {
		all = append(all, evs...)
		s.ingest(evs)
	}
	add(heartbeats(0, 20*day, "MRI-1", "MRI-2", "MRI-3")...)
	s.ins = []egress.Installation{{Device: "MRI-1", Digest: digestA, Product: "mri", Version: "2", Time: t0.Add(8 * day)}, {Device: "MRI-2", Digest: digestA, Product: "mri", Version: "2", Time: t0.Add(8 * day)}}
	step("first analysis", 1, "clean")
	// Both installers reach a new destination, in two batches, the second
	// growing a group of the first (an earlier first connection, same
	// judgement): applied as differences.
	add(conn("MRI-1", 9*day, "a.example.org", "198.51.100.7", 10), conn("MRI-2", 9*day+time.Minute, "b.example.org", "198.51.100.8", 10))
	step("a new destination", 1, "quarantined")
	add(conn("MRI-2", 9*day+2*time.Minute, "b.example.org", "198.51.100.8", 10), conn("MRI-2", 9*day+30*time.Second, "b.example.org", "198.51.100.8", 5))
	step("more of the same", 1, "quarantined")
	add(heartbeats(20*day, 40*day, "MRI-1", "MRI-2", "MRI-3")...)
	step("later telemetry", 1, "quarantined")
	// A group whose first connection moves into the baseline window: the
	// aggregates are rebuilt.
	add(conn("MRI-3", 7*day+40*time.Minute, "c.example.net", "203.0.113.9", 10))
	step("a connection after the baseline", 1, "quarantined")
	add(conn("MRI-3", 7*day+10*time.Minute, "c.example.net", "203.0.113.9", 10))
	step("an earlier one in the same hour, in the baseline", 2, "quarantined")
	// An installation after every group of its device: a difference; one
	// before some of them changes which release ran then: a rebuild (and
	// with every device of the class running the update, nothing is
	// compared: no blame).
	s.ins = append(s.ins, egress.Installation{Device: "MRI-3", Digest: digestB, Product: "mri", Version: "3", Time: t0.Add(45 * day)})
	step("an installation after the telemetry", 2, "quarantined")
	s.ins = append(s.ins, egress.Installation{Device: "MRI-3", Digest: digestA, Product: "mri", Version: "2", Time: t0.Add(8 * day)})
	step("an installation before some telemetry", 3, "clean")
	// Another configuration, another inventory: rebuilds.
	cfg.Thresholds.FleetMinDevices = 3
	step("another configuration", 4, "clean")
	inv = smallFleet(t)
	step("another inventory", 5, "clean")
}

// The volume detections follow the incremental analysis: hours that grow
// over the line across batches (the flat rule, a learned baseline), an
// hour whose destination changes (a connection with no URL to an address
// ordered first), and a baseline group that changes what was learned.
func TestLiveFollowsVolume(t *testing.T) {
	inv := smallFleet(t)
	day := 24 * time.Hour
	cfg := egress.Config{Baseline: egress.Window{Start: t0, End: t0.Add(7 * day)}}
	s := &liveStore{groups: map[egress.GroupKey]*egress.Group{}, batchOf: map[egress.GroupKey]int64{}}
	var all []egress.Event
	live := egress.NewLive()
	step := func(what string, wantCodes ...egress.Code) {
		t.Helper()
		got, err := live.Analyze(t.Context(), s, inv, cfg)
		if err != nil {
			t.Fatal(err)
		}
		ins, _ := s.Installations(t.Context())
		whole := run(t, inv, ins, cfg, all)
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(whole)
		if string(gj) != string(wj) {
			t.Fatalf("%s: incremental\n%s\nwhole history\n%s", what, gj, wj)
		}
		var have []egress.Code
		for _, f := range got.Findings {
			if f.Update == digestA {
				have = append(have, f.Code)
			}
		}
		slices.Sort(have)
		if !slices.Equal(have, wantCodes) {
			t.Errorf("%s: findings against A %v, want %v", what, have, wantCodes)
		}
	}
	add := func(evs ...egress.Event) {
		all = append(all, evs...)
		s.ingest(evs)
	}
	add(heartbeats(0, 20*day, "MRI-1", "MRI-2", "MRI-3")...)
	// The class uploads about 10 kB an hour to its vendor's study service
	// in the baseline: a learned volume.
	for _, d := range []string{"MRI-1", "MRI-2", "MRI-3"} {
		for h := range 30 {
			add(conn(d, time.Duration(h)*5*time.Hour+time.Minute, "studies.medvendor.example", "198.51.100.20", 10_000+int64(h)*10))
			add(conn(d, time.Duration(h)*5*time.Hour+2*time.Minute, "", "198.51.100.30", 1_000+int64(h)))
		}
	}
	s.ins = []egress.Installation{{Device: "MRI-1", Digest: digestA, Product: "mri", Version: "2", Time: t0.Add(8 * day)}}
	step("baseline")
	// After the update, MRI-1 uploads more to the study service, in two
	// batches of the same hour: the first stays within the baseline, the
	// two together are far above it.
	add(conn("MRI-1", 9*day+time.Minute, "studies.medvendor.example", "198.51.100.20", 15_000))
	step("an hour within the baseline")
	add(conn("MRI-1", 9*day+2*time.Minute, "studies.medvendor.example", "198.51.100.20", 50_000_000))
	step("the same hour far above it", egress.CodeVolumeAnomaly)
	// MRI-1 sends to a destination outside the baseline: 4 MB, then 2 MB
	// more in the same hour, over the flat 5 MB.
	add(conn("MRI-1", 10*day+time.Minute, "drop.example.net", "203.0.113.50", 4_000_000))
	step("4 MB to a new destination", egress.CodeNewDestination, egress.CodeVolumeAnomaly)
	add(conn("MRI-1", 10*day+3*time.Minute, "drop.example.net", "203.0.113.50", 2_000_000))
	step("6 MB in the hour", egress.CodeExfilVolume, egress.CodeNewDestination, egress.CodeVolumeAnomaly)
	// Connections without a URL in one hour are one hour under the
	// smallest address: 6 MB to an address outside the baseline (the flat
	// rule), then a connection to a smaller one, learned in the baseline,
	// moves the hour there: far above what was learned.
	add(conn("MRI-1", 11*day+time.Minute, "", "198.51.100.40", 6_000_000))
	step("an address with no URL", egress.CodeExfilVolume, egress.CodeExfilVolume, egress.CodeNewDestination, egress.CodeNewDestination, egress.CodeVolumeAnomaly)
	add(conn("MRI-1", 11*day+2*time.Minute, "", "198.51.100.30", 10))
	step("a smaller address in the same hour", egress.CodeExfilVolume, egress.CodeNewDestination, egress.CodeNewDestination, egress.CodeVolumeAnomaly, egress.CodeVolumeAnomaly)
	// Large uploads in the baseline change what was learned: the study
	// service's hour is no longer far above it.
	for _, d := range []string{"MRI-2", "MRI-3"} {
		add(conn(d, 6*day+time.Minute, "studies.medvendor.example", "198.51.100.20", 60_000_000))
	}
	step("large uploads learned in the baseline", egress.CodeExfilVolume, egress.CodeNewDestination, egress.CodeNewDestination, egress.CodeVolumeAnomaly)
}
