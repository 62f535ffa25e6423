package sqlitestore_test

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/egress/sqlitestore"
)

func TestStoreRoundTrip(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "egress.db")
	db, err := sqlitestore.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
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
		added, err := db.Ingest(ctx, src, feed)
		if err != nil || added != want {
			t.Fatalf("ingest %d: added %v err %v, want %v", i, added, err, want)
		}
	}
	in := egress.Installation{Device: "A", Digest: "sha256:" + string(make([]byte, 0)) + "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", Product: "p", Version: "1", Time: t0}
	for range 2 {
		if err := db.RecordInstallation(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = sqlitestore.Open(ctx, path) // reopen: data is durable
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var got []egress.Event
	if err := db.Events(ctx, func(ev *egress.Event) error { got = append(got, *ev); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != evs[1] || got[1] != evs[0] {
		t.Fatalf("events %+v", got)
	}
	ins, err := db.Installations(ctx)
	if err != nil || len(ins) != 1 || ins[0] != in {
		t.Fatalf("installations %+v %v", ins, err)
	}
}

// A device admitted again for the update it already has adds no row; a
// change of update does, and so does going back to an earlier one.
func TestInstallationsCollapseRepeats(t *testing.T) {
	ctx := t.Context()
	db, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "egress.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a := "sha256:" + strings.Repeat("a", 64)
	b := "sha256:" + strings.Repeat("b", 64)
	t0 := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	at := func(dev, digest string, min int) egress.Installation {
		return egress.Installation{Device: dev, Digest: digest, Product: "pump", Version: digest[7:8], Time: t0.Add(time.Duration(min) * time.Minute)}
	}
	// One at a time, then as one batch (a group commit).
	for _, in := range []egress.Installation{at("P1", a, 0), at("P1", a, 5), at("P1", a, 0), at("P1", b, 10), at("P1", b, 11)} {
		if err := db.RecordInstallation(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.RecordInstallations(ctx, []egress.Installation{at("P1", a, 20), at("P1", a, 21), at("P2", b, 1), at("P2", b, 2), at("P2", a, 3)}); err != nil {
		t.Fatal(err)
	}
	// Recorded late: at minute 7 P1 still had a (since minute 0), so an
	// installation of b then is kept; one of a then would not be.
	if err := db.RecordInstallation(ctx, at("P1", a, 7)); err != nil {
		t.Fatal(err)
	}
	if err := db.RecordInstallation(ctx, at("P1", b, 7)); err != nil {
		t.Fatal(err)
	}
	got, err := db.Installations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var summary []string
	for _, in := range got {
		summary = append(summary, fmt.Sprintf("%s %s %d", in.Device, in.Version, int(in.Time.Sub(t0).Minutes())))
	}
	want := []string{"P1 a 0", "P2 b 1", "P2 a 3", "P1 b 7", "P1 b 10", "P1 a 20"}
	if !slices.Equal(summary, want) {
		t.Fatalf("installations %q, want %q", summary, want)
	}
}
