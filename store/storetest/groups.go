package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/fixtures/fleet"
	"github.com/wardgate/wardgate/store"
)

// runGroups: Ingest merges each batch's events into their groups in the
// batch's transaction, Groups reads what batches changed, and the
// incremental analysis over the groups (egress.Live) gives the
// whole-history analysis's report.
func runGroups(t *testing.T, loc Location) {
	t.Run("merged per batch", func(t *testing.T) { runGroupsMerged(t, loc) })
	t.Run("incremental equals whole history", func(t *testing.T) { runIncrementalEqualsWhole(t, loc) })
	t.Run("concurrent batches", func(t *testing.T) { runGroupsConcurrent(t, loc) })
}

// readGroups returns the groups Groups(after) passes, by key, and the
// batch it covers.
func readGroups(t *testing.T, s store.Store, after int64) (map[egress.GroupKey]egress.Group, int64) {
	t.Helper()
	out := map[egress.GroupKey]egress.Group{}
	last, err := s.Groups(t.Context(), after, func(g *egress.Group) error {
		if _, dup := out[g.GroupKey]; dup {
			t.Errorf("group %+v passed twice", g.GroupKey)
		}
		out[g.GroupKey] = *g.Clone()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, last
}

func runGroupsMerged(t *testing.T, loc Location) {
	open := loc(t)
	s := opened(t, open)
	ctx := t.Context()
	h := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	ip := netip.MustParseAddr("52.1.1.1")
	ok := func(dev string, at time.Duration, url string, sent int64) egress.Event {
		return egress.Event{Time: h.Add(at), DeviceName: dev, ActionType: egress.ActionConnectionSuccess, RemoteIP: ip, RemotePort: 443,
			RemoteURL: url, RemoteIPType: "Public", SentBytes: sent}
	}
	failed := egress.Event{Time: h.Add(5 * time.Minute), DeviceName: "A", ActionType: egress.ActionConnectionFailed, RemoteIP: ip, RemoteURL: "x.example.com"}
	batch1 := []egress.Event{ok("A", 10*time.Minute, "x.example.com", 100), ok("A", 2*time.Minute, "x.example.com", 7), failed, ok("B", 90*time.Minute, "y.example.com", 1)}
	batch2 := []egress.Event{ok("A", time.Minute, "x.example.com", 5), ok("A", 70*time.Minute, "x.example.com", 3)}
	ingest := func(s store.Store, name string, evs []egress.Event) {
		t.Helper()
		added, err := s.Ingest(ctx, egress.Source{Name: name, Digest: "sha256:" + name}, func(add func(*egress.Event) error) error {
			for i := range evs {
				ev := evs[i]
				if err := add(&ev); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil || !added {
			t.Fatalf("ingest %s: added %v, %v", name, added, err)
		}
	}
	if got, last := readGroups(t, s, 0); len(got) != 0 || last != 0 {
		t.Fatalf("empty store: groups %v, last batch %d", got, last)
	}
	ingest(s, "b1", batch1)
	g1, last1 := readGroups(t, s, 0)
	kx := egress.GroupKey{Device: "A", Hour: h.Unix(), Success: true, RemoteURL: "x.example.com", RemoteIP: ip, RemoteIPType: "Public"}
	kf := egress.GroupKey{Device: "A", Hour: h.Unix()}
	ky := egress.GroupKey{Device: "B", Hour: h.Unix() + 3600, Success: true, RemoteURL: "y.example.com", RemoteIP: ip, RemoteIPType: "Public"}
	want1 := map[egress.GroupKey]egress.Group{
		kx: {GroupKey: kx, Events: 2, Sent: 107, First: h.Add(2 * time.Minute).UnixNano(), Last: h.Add(10 * time.Minute).UnixNano(),
			Times: []int64{h.Add(2 * time.Minute).Unix(), h.Add(10 * time.Minute).Unix()}},
		kf: {GroupKey: kf, Events: 1, First: failed.Time.UnixNano(), Last: failed.Time.UnixNano()},
		ky: {GroupKey: ky, Events: 1, Sent: 1, First: h.Add(90 * time.Minute).UnixNano(), Last: h.Add(90 * time.Minute).UnixNano(),
			Times: []int64{h.Add(90 * time.Minute).Unix()}},
	}
	if !reflect.DeepEqual(g1, want1) || last1 < 1 {
		t.Fatalf("after one batch: last %d, groups\n%+v\nwant\n%+v", last1, g1, want1)
	}
	// A batch ingested again, or one whose scan fails, changes no group.
	if added, err := s.Ingest(ctx, egress.Source{Name: "b1", Digest: "sha256:b1"}, func(add func(*egress.Event) error) error {
		ev := ok("A", time.Minute, "x.example.com", 1000)
		return add(&ev)
	}); err != nil || added {
		t.Fatalf("duplicate batch: added %v, %v", added, err)
	}
	if _, err := s.Ingest(ctx, egress.Source{Name: "bad", Digest: "sha256:bad"}, func(add func(*egress.Event) error) error {
		ev := ok("A", time.Minute, "x.example.com", 1000)
		if err := add(&ev); err != nil {
			return err
		}
		return fmt.Errorf("line 2: malformed")
	}); err == nil {
		t.Fatal("failed scan stored")
	}
	if got, last := readGroups(t, s, last1); len(got) != 0 || last != last1 {
		t.Fatalf("nothing stored since batch %d, but groups %v, last %d", last1, got, last)
	}
	// The second batch, through another handle (another replica): only
	// the groups it changed are read after the first batch, whole.
	s2 := opened(t, open)
	ingest(s2, "b2", batch2)
	g2, last2 := readGroups(t, s, last1)
	kx2 := kx
	kx2.Hour += 3600
	want2 := map[egress.GroupKey]egress.Group{
		kx: {GroupKey: kx, Events: 3, Sent: 112, First: h.Add(time.Minute).UnixNano(), Last: h.Add(10 * time.Minute).UnixNano(),
			Times: []int64{h.Add(time.Minute).Unix(), h.Add(2 * time.Minute).Unix(), h.Add(10 * time.Minute).Unix()}},
		kx2: {GroupKey: kx2, Events: 1, Sent: 3, First: h.Add(70 * time.Minute).UnixNano(), Last: h.Add(70 * time.Minute).UnixNano(),
			Times: []int64{h.Add(70 * time.Minute).Unix()}},
	}
	if !reflect.DeepEqual(g2, want2) || last2 <= last1 {
		t.Fatalf("after the second batch: last %d (first %d), changed groups\n%+v\nwant\n%+v", last2, last1, g2, want2)
	}
	// Every group, as grouping every event gives it, after a reopen.
	s.Close()
	s = opened(t, open)
	all, lastAll := readGroups(t, s, 0)
	gr := egress.NewGrouper()
	for _, ev := range append(append([]egress.Event{}, batch1...), batch2...) {
		gr.Add(ev.DeviceName, &ev)
	}
	wantAll := map[egress.GroupKey]egress.Group{}
	for _, g := range gr.Groups() {
		wantAll[g.GroupKey] = *g
	}
	if !reflect.DeepEqual(all, wantAll) || lastAll != last2 {
		t.Fatalf("every group: last %d, want %d\n%+v\nwant\n%+v", lastAll, last2, all, wantAll)
	}
}

// fleetFixture generates the fleet fixture and reads its inventory,
// installations, detection configuration (with the vendor's manifests)
// and Defender lines.
func fleetFixture(t *testing.T) (*egress.Inventory, []egress.Installation, egress.Config, []string) {
	t.Helper()
	dir := t.TempDir()
	if err := fleet.Generate(dir, fleet.DefaultSeed); err != nil {
		t.Fatal(err)
	}
	read := func(name string) *bytes.Reader {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return bytes.NewReader(b)
	}
	inv, err := egress.ReadInventory(read("inventory.json"))
	if err != nil {
		t.Fatal(err)
	}
	ins, err := egress.ReadInstallations(read("installations.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := egress.ReadConfig(read("config.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []fleet.Release{fleet.PumpBenign, fleet.Pump3CX} {
		m, err := egress.ReadEgressManifest(read("manifest-" + r.Product + "-" + r.Version + ".json"))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Manifests = append(cfg.Manifests, m...)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "defender.jsonl"))
	lines := strings.SplitAfter(strings.TrimSuffix(string(b), "\n"), "\n")
	return inv, ins, cfg, lines
}

// sameReport fails the test when the incremental report differs from the
// whole-history one.
func sameReport(t *testing.T, what string, live, whole egress.Report) {
	t.Helper()
	lj, err := json.Marshal(live)
	if err != nil {
		t.Fatal(err)
	}
	wj, _ := json.Marshal(whole)
	if !bytes.Equal(lj, wj) || !maps.Equal(live.LastSeen, whole.LastSeen) {
		t.Fatalf("%s: the incremental report differs from the whole-history one:\n%s\n%s", what, lj, wj)
	}
}

func runIncrementalEqualsWhole(t *testing.T, loc Location) {
	inv, ins, cfg, lines := fleetFixture(t)
	ctx := t.Context()
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			open := loc(t)
			s, s2 := opened(t, open), opened(t, open)
			rng := rand.New(rand.NewPCG(seed, 15))
			// Random cut points, batches posted in a random order (a
			// sensor's backlog arrives late), through two handles (two
			// replicas), installations recorded as the batches go.
			// Seed 1 cuts the file in time order; seeds 2 and 3 deal each
			// line to a random batch, so most groups of several events are
			// merged from several batches. Seed 3 records every
			// installation before the first batch.
			var batches []string
			if seed == 1 {
				for i := 0; i < len(lines); {
					n := 1 + rng.IntN(2*len(lines)/6)
					batches = append(batches, strings.Join(lines[i:min(i+n, len(lines))], ""))
					i += n
				}
			} else {
				dealt := make([]strings.Builder, 6)
				for _, l := range lines {
					dealt[rng.IntN(len(dealt))].WriteString(l)
				}
				for i := range dealt {
					batches = append(batches, dealt[i].String())
				}
			}
			rng.Shuffle(len(batches), func(i, j int) { batches[i], batches[j] = batches[j], batches[i] })
			live := egress.NewLive()
			recorded := 0
			for i, body := range batches {
				upto := len(ins) * (i + 1) / len(batches)
				switch {
				case seed == 3:
					upto = len(ins)
				case i == 0:
					upto = len(ins) / 3
				}
				if upto > recorded {
					if err := s.RecordInstallations(ctx, ins[recorded:upto]); err != nil {
						t.Fatal(err)
					}
					recorded = upto
				}
				via := []store.Store{s, s2}[rng.IntN(2)]
				res, err := egress.Ingest(ctx, via, inv, egress.Source{Name: fmt.Sprintf("batch %d", i), Digest: fmt.Sprintf("sha256:seed%d-batch%d", seed, i)},
					strings.NewReader(body), egress.FormatDefenderJSON)
				if err != nil || !res.Added {
					t.Fatalf("batch %d: %+v %v", i, res, err)
				}
				got, err := live.Analyze(ctx, s, inv, cfg)
				if err != nil {
					t.Fatal(err)
				}
				whole, err := egress.AnalyzeStore(ctx, s, inv, cfg)
				if err != nil {
					t.Fatal(err)
				}
				sameReport(t, fmt.Sprintf("after batch %d of %d", i+1, len(batches)), got, whole)
			}
			// Everything in: the compromised updates are quarantined, the
			// benign look-alikes clean, and a new Live (a restart) reads the
			// same from the groups alone.
			final, err := egress.NewLive().Analyze(ctx, s2, inv, cfg)
			if err != nil {
				t.Fatal(err)
			}
			whole, err := egress.AnalyzeStore(ctx, s2, inv, cfg)
			if err != nil {
				t.Fatal(err)
			}
			sameReport(t, "a new Live", final, whole)
			if final.Events != int64(len(lines)) || final.Unresolved != 0 {
				t.Errorf("events %d unresolved %d, want %d and 0", final.Events, final.Unresolved, len(lines))
			}
			states := map[string]string{}
			for _, u := range final.Updates {
				states[u.Version] = u.State
			}
			want := map[string]string{"2.4.0": "clean", "2.4.1": "quarantined", "7.2.0": "clean", "7.2.1": "quarantined", "1.1.0": "quarantined",
				"5.0.1": "clean", "5.1.0": "quarantined", "4.2.0": "clean"}
			if !maps.Equal(states, want) {
				t.Errorf("risk states by version %v, want %v", states, want)
			}
			// Each analysis read only the groups its batch changed: no more
			// than the batch's events, in all no more than every event.
			all, _ := readGroups(t, s, 0)
			st := live.Stats()
			if st.Read > int64(len(lines)) || st.Groups != len(all) {
				t.Errorf("the Live read %d groups (the fixture has %d events) and holds %d, want at most %[2]d and %d", st.Read, len(lines), st.Groups, len(all))
			}
			// The first analysis builds the aggregates; at least one later
			// batch is applied as a difference (the others rebuild: an
			// installation recorded before their groups' first connection).
			if st.Rebuilds < 1 || st.Rebuilds >= int64(len(batches)) || (seed == 3 && st.Rebuilds != 1) {
				t.Errorf("%d of %d analyses rebuilt the aggregates", st.Rebuilds, len(batches))
			}
		})
	}
}

// runGroupsConcurrent: batches ingested at once through two handles (two
// replicas, two processes), every batch touching the same groups: each
// group holds every batch's events, as grouping them all gives it.
func runGroupsConcurrent(t *testing.T, loc Location) {
	open := loc(t)
	handles := []store.Store{opened(t, open), opened(t, open)}
	h := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	const batches = 16
	evs := make([][]egress.Event, batches)
	gr := egress.NewGrouper()
	for b := range batches {
		for j := range 5 {
			ev := egress.Event{Time: h.Add(time.Duration(b*5+j) * time.Second).Add(time.Duration(j%2) * time.Hour), DeviceName: fmt.Sprint("dev-", j%3),
				ActionType: egress.ActionConnectionSuccess, RemoteIP: netip.MustParseAddr("52.1.1.1"), RemoteURL: "x.example.com", RemoteIPType: "Public",
				SentBytes: int64(b*100 + j)}
			evs[b] = append(evs[b], ev)
			gr.Add(ev.DeviceName, &ev)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, batches)
	for b := range batches {
		wg.Go(func() {
			_, errs[b] = handles[b%2].Ingest(context.Background(), egress.Source{Name: fmt.Sprint(b), Digest: fmt.Sprint("sha256:c", b)},
				func(add func(*egress.Event) error) error {
					for i := range evs[b] {
						if err := add(&evs[b][i]); err != nil {
							return err
						}
					}
					return nil
				})
		})
	}
	wg.Wait()
	for b, err := range errs {
		if err != nil {
			t.Fatalf("batch %d: %v", b, err)
		}
	}
	// And one more batch through each, after the concurrent ones.
	for i, s := range handles {
		ev := egress.Event{Time: h, DeviceName: "dev-0", ActionType: egress.ActionConnectionSuccess, RemoteIP: netip.MustParseAddr("52.1.1.1"),
			RemoteURL: "x.example.com", RemoteIPType: "Public", SentBytes: 1}
		gr.Add(ev.DeviceName, &ev)
		if _, err := s.Ingest(t.Context(), egress.Source{Name: "after", Digest: fmt.Sprint("sha256:after", i)}, func(add func(*egress.Event) error) error { return add(&ev) }); err != nil {
			t.Fatal(err)
		}
	}
	want := map[egress.GroupKey]egress.Group{}
	for _, g := range gr.Groups() {
		want[g.GroupKey] = *g
	}
	for i, s := range handles {
		if got, _ := readGroups(t, s, 0); !reflect.DeepEqual(got, want) {
			t.Fatalf("handle %d: groups after concurrent batches\n%+v\nwant\n%+v", i, got, want)
		}
	}
}
