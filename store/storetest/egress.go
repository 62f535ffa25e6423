package storetest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/store"
)

func runTelemetry(t *testing.T, loc Location) {
	open := loc(t)
	s := opened(t, open)
	ctx := t.Context()
	t0 := time.Date(2026, 1, 5, 10, 0, 0, 123, time.UTC)
	evs := []egress.Event{
		{Time: t0.Add(time.Hour), DeviceName: "B", ActionType: egress.ActionConnectionSuccess, RemoteIP: netip.MustParseAddr("52.1.1.1"), RemotePort: 443, RemoteURL: "x.example.com", RemoteIPType: "Public", LocalIP: netip.MustParseAddr("10.0.0.2"), LocalPort: 5000, Protocol: "Tcp", Process: "p", SentBytes: 7, ReceivedBytes: 8, DeviceID: "id"},
		{Time: t0, DeviceName: "A", ActionType: egress.ActionConnectionFailed},
	}
	src := egress.Source{Name: "f.jsonl", Digest: "sha256:01"}
	feed := func(add func(*egress.Event) error) error {
		for i := range evs {
			if err := add(&evs[i]); err != nil {
				return err
			}
		}
		return nil
	}
	for i, want := range []bool{true, false} {
		added, err := s.Ingest(ctx, src, feed)
		if err != nil || added != want {
			t.Fatalf("ingest %d: added %v err %v, want %v", i, added, err, want)
		}
	}
	// A batch whose scan fails stores nothing, and can be sent again.
	bad := egress.Source{Name: "g.jsonl", Digest: "sha256:02"}
	boom := errors.New("line 3: malformed")
	if _, err := s.Ingest(ctx, bad, func(add func(*egress.Event) error) error {
		if err := add(&egress.Event{Time: t0, DeviceName: "C"}); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("failed scan: %v, want %v", err, boom)
	}
	s.Close()
	s = opened(t, open)
	var got []egress.Event
	if err := s.Events(ctx, func(ev *egress.Event) error { got = append(got, *ev); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != evs[1] || got[1] != evs[0] {
		t.Fatalf("events %+v", got)
	}
	if added, err := s.Ingest(ctx, bad, feed); err != nil || !added {
		t.Fatalf("the failed batch sent again: added %v, %v", added, err)
	}
}

// runEventOrder: Events gives every event in time order, ties in
// ingestion order (within a batch, whatever order it came in, and across
// batches), a batch larger than one stored block too; an event too large
// to store fails its batch, which stores nothing.
func runEventOrder(t *testing.T, loc Location) {
	s := opened(t, loc(t))
	ctx := t.Context()
	t0 := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	var all []egress.Event
	ingest := func(digest string, evs []egress.Event) {
		t.Helper()
		IngestAll(t, s, digest, evs)
		all = append(all, evs...)
	}
	// Out of order, with ties, more events than one block holds
	// (eventblock.MaxEvents is 65,536).
	var big []egress.Event
	for i := range 70_000 {
		big = append(big, egress.Event{Time: t0.Add(time.Duration((i*7919)%1000) * time.Second), DeviceName: fmt.Sprint("dev-", i%7),
			ActionType: egress.ActionConnectionSuccess, RemoteIP: netip.AddrFrom4([4]byte{52, 1, 1, byte(i)}), RemoteURL: "x.example.com",
			RemoteIPType: "Public", LocalPort: uint16(i), SentBytes: int64(i)})
	}
	ingest("sha256:big", big)
	var small []egress.Event
	for i := range 50 {
		small = append(small, egress.Event{Time: t0.Add(time.Duration(999-i*20) * time.Second), DeviceName: "late", DeviceID: fmt.Sprint(i),
			ActionType: egress.ActionConnectionFailed, LocalIP: netip.MustParseAddr("fe80::1%eth0"), ReceivedBytes: -int64(i)})
	}
	ingest("sha256:small", small)
	huge := []egress.Event{{Time: t0, DeviceName: "pump", RemoteURL: strings.Repeat("u", 2<<20)}}
	if added, err := s.Ingest(ctx, egress.Source{Name: "huge", Digest: "sha256:huge"}, func(add func(*egress.Event) error) error { return add(&huge[0]) }); err == nil || added {
		t.Fatalf("an event of 2 MiB of text stored: %v, %v", added, err)
	}
	want := slices.Clone(all)
	slices.SortStableFunc(want, func(x, y egress.Event) int { return x.Time.Compare(y.Time) })
	var got []egress.Event
	if err := s.Events(ctx, func(ev *egress.Event) error { got = append(got, *ev); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("event %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	// fn's error ends the read and is returned as it is.
	stop := errors.New("enough")
	if err := s.Events(ctx, func(*egress.Event) error { return stop }); err != stop {
		t.Fatalf("Events with fn failing: %v, want %v", err, stop)
	}
}

func installation(dev string, digest byte, min int) egress.Installation {
	return egress.Installation{Device: dev, Digest: Digest(digest), Product: "pump", Version: string(digest), Time: At(min)}
}

func runInstallations(t *testing.T, loc Location) {
	// A device admitted again for the update it already has adds no row; a
	// change of update does, and so does going back to an earlier one.
	t.Run("repeats collapse", func(t *testing.T) {
		s := fresh(t, loc)
		ctx := t.Context()
		at := func(dev string, d byte, min int) egress.Installation { return installation(dev, d, min) }
		// One at a time, then as one batch.
		for _, in := range []egress.Installation{at("P1", 'a', 0), at("P1", 'a', 5), at("P1", 'a', 0), at("P1", 'b', 10), at("P1", 'b', 11)} {
			if err := s.RecordInstallation(ctx, in); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.RecordInstallations(ctx, []egress.Installation{at("P1", 'a', 20), at("P1", 'a', 21), at("P2", 'b', 1), at("P2", 'b', 2), at("P2", 'a', 3)}); err != nil {
			t.Fatal(err)
		}
		// Recorded late: at minute 7 P1 still had a (since minute 0), so an
		// installation of b then is kept; one of a then would not be.
		for _, in := range []egress.Installation{at("P1", 'a', 7), at("P1", 'b', 7)} {
			if err := s.RecordInstallation(ctx, in); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.Installations(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var summary []string
		for _, in := range got {
			summary = append(summary, fmt.Sprintf("%s %s %d", in.Device, in.Version, int(in.Time.Sub(At(0)).Minutes())))
		}
		want := []string{"P1 a 0", "P2 b 1", "P2 a 3", "P1 b 7", "P1 b 10", "P1 a 20"}
		if !slices.Equal(summary, want) {
			t.Fatalf("installations %q, want %q", summary, want)
		}
	})
	t.Run("concurrent and invalid", func(t *testing.T) {
		open := loc(t)
		s := opened(t, open)
		ctx := t.Context()
		var wg sync.WaitGroup
		for i := range 40 {
			done := s.ExpectInstallation()
			wg.Go(func() {
				defer done()
				if err := s.RecordInstallation(ctx, installation(fmt.Sprintf("D%02d", i), 'a', i)); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		in := installation("", 'a', 0)
		in.Digest = "sha256:short"
		err := s.RecordInstallation(ctx, in)
		if err == nil || !strings.Contains(err.Error(), "device is required") || !strings.Contains(err.Error(), `digest "sha256:short"`) {
			t.Fatalf("invalid installation: %v", err)
		}
		if err := s.RecordInstallations(ctx, []egress.Installation{installation("E1", 'b', 0), in}); err == nil {
			t.Fatal("a batch with an invalid installation was accepted")
		}
		if err := s.RecordInstallation(cancelled(t), installation("E2", 'b', 0)); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled: %v", err)
		}
		s.Close()
		got, err := opened(t, open).Installations(ctx)
		if err != nil || len(got) != 40 {
			t.Fatalf("%d installations, %v; want the 40 valid ones", len(got), err)
		}
	})
	// InstallationsSince gives what was recorded after a point, in the
	// order it was recorded, whichever process recorded it: a chain of
	// calls sees each installation once.
	t.Run("since", func(t *testing.T) {
		open := loc(t)
		a, b := opened(t, open), opened(t, open) // two processes on one store
		ctx := t.Context()
		since := func(s store.Store, after int64) ([]string, int64) {
			t.Helper()
			got, next, err := s.InstallationsSince(ctx, after)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, in := range got {
				out = append(out, fmt.Sprintf("%s %s %d", in.Device, in.Version, int(in.Time.Sub(At(0)).Minutes())))
			}
			return out, next
		}
		if got, next := since(a, 0); len(got) != 0 || next != 0 {
			t.Fatalf("empty store: %q, next %d; want none, 0", got, next)
		}
		for _, in := range []egress.Installation{installation("S1", 'a', 5), installation("S1", 'a', 6), installation("S2", 'b', 1)} {
			if err := a.RecordInstallation(ctx, in); err != nil {
				t.Fatal(err)
			}
		}
		got, p1 := since(b, 0)
		if want := []string{"S1 a 5", "S2 b 1"}; !slices.Equal(got, want) { // recorded order, the repeat collapsed
			t.Fatalf("since 0: %q, want %q", got, want)
		}
		if err := b.RecordInstallations(ctx, []egress.Installation{installation("S3", 'c', 0), installation("S1", 'b', 2)}); err != nil {
			t.Fatal(err)
		}
		got, p2 := since(a, p1)
		if want := []string{"S3 c 0", "S1 b 2"}; !slices.Equal(got, want) || p2 <= p1 {
			t.Fatalf("since %d: %q (next %d), want %q", p1, got, p2, want)
		}
		if got, p3 := since(a, p2); len(got) != 0 || p3 != p2 {
			t.Fatalf("since %d with nothing new: %q, next %d", p2, got, p3)
		}
		// Writers in both processes while a reader follows the chain.
		var wg sync.WaitGroup
		for i := range 60 {
			s := a
			if i%2 == 1 {
				s = b
			}
			done := s.ExpectInstallation()
			wg.Go(func() {
				defer done()
				if err := s.RecordInstallation(ctx, installation(fmt.Sprintf("C%02d", i), 'd', i)); err != nil {
					t.Error(err)
				}
			})
		}
		stop := make(chan struct{})
		seen := map[string]int{}
		read := func(after int64) {
			got, _ := since(b, after)
			for _, s := range got {
				seen[s]++
			}
		}
		p := p2
		follow := make(chan int64)
		go func() {
			defer close(follow)
			for {
				select {
				case <-stop:
					follow <- p
					return
				default:
				}
				got, next, err := b.InstallationsSince(ctx, p)
				if err != nil {
					t.Error(err)
					follow <- p
					return
				}
				for _, in := range got {
					seen[fmt.Sprintf("%s %s %d", in.Device, in.Version, int(in.Time.Sub(At(0)).Minutes()))]++
				}
				p = next
			}
		}()
		wg.Wait()
		close(stop)
		read(<-follow)
		if len(seen) != 60 {
			t.Fatalf("the chain saw %d installations, want 60", len(seen))
		}
		for k, n := range seen {
			if n != 1 {
				t.Fatalf("the chain saw %s %d times", k, n)
			}
		}
		all, err := a.Installations(ctx)
		if err != nil || len(all) != 64 {
			t.Fatalf("%d installations, %v; want 64", len(all), err)
		}
	})
}
