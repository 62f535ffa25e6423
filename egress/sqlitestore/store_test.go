package sqlitestore_test

import (
	"net/netip"
	"path/filepath"
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
