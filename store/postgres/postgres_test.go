package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/internal/eventblock"
	"github.com/wardgate/wardgate/store"
	"github.com/wardgate/wardgate/store/postgres"
	"github.com/wardgate/wardgate/store/storetest"
)

// serverDSN is the PostgreSQL server the tests run on, from
// WARDGATE_TEST_POSTGRES; the test is skipped, saying so, without one.
func serverDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("WARDGATE_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("WARDGATE_TEST_POSTGRES is not set: no PostgreSQL server to test the postgres store on " +
			"(set it to a DSN such as postgres://postgres@127.0.0.1:5432/test?sslmode=disable)")
	}
	return dsn
}

// freshSchema creates a schema of its own for one test, dropped when the
// test ends, and returns the DSN of the server with its search_path set to
// it: tests never see each other's tables.
func freshSchema(t testing.TB) string {
	t.Helper()
	return schemaDSN(t, serverDSN(t))
}

func schemaDSN(t testing.TB, server string) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := "wardgate_test_" + hex.EncodeToString(b[:])
	admin(t, server, `CREATE SCHEMA `+name)
	t.Cleanup(func() { admin(t, server, `DROP SCHEMA `+name+` CASCADE`) })
	u, err := url.Parse(server)
	if err != nil {
		t.Fatalf("WARDGATE_TEST_POSTGRES must be a postgres:// URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// admin runs one statement on its own connection to dsn.
func admin(t testing.TB, dsn, sql string, args ...any) {
	t.Helper()
	ctx := context.Background() // also at cleanup, when the test's context has ended
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func openDB(t testing.TB, dsn string, opts ...store.Option) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), dsn, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// The whole behaviour suite, each location a fresh schema, through
// store.Open as wardgate opens it.
func TestContract(t *testing.T) {
	serverDSN(t)
	storetest.Run(t, func(t *testing.T, opts ...store.Option) func() store.Store {
		dsn := freshSchema(t)
		return func() store.Store {
			s, err := store.Open(context.Background(), dsn, opts...)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	})
}

// Both URL schemes name this backend.
func TestSchemes(t *testing.T) {
	t.Parallel()
	dsn := freshSchema(t)
	for _, scheme := range []string{"postgres", "postgresql"} {
		_, rest, _ := strings.Cut(dsn, "://")
		s, err := store.Open(t.Context(), scheme+"://"+rest)
		if err != nil {
			t.Fatalf("%s: %v", scheme, err)
		}
		if _, ok := s.(*postgres.DB); !ok {
			t.Fatalf("%s:// opened a %T", scheme, s)
		}
		s.Close()
	}
}

func TestSchemaVersion(t *testing.T) {
	t.Parallel()
	db := openDB(t, freshSchema(t))
	if v, err := db.SchemaVersion(t.Context()); err != nil || v != 7 {
		t.Fatalf("SchemaVersion = %d, %v; want 7", v, err)
	}
}

// A schema a newer wardgate migrated is refused, and left as it is.
func TestNewerSchemaRefused(t *testing.T) {
	t.Parallel()
	dsn := freshSchema(t)
	openDB(t, dsn).Close()
	admin(t, dsn, `INSERT INTO wardgate_migrations (version) VALUES (8), (9)`)
	_, err := postgres.Open(t.Context(), dsn)
	if !errors.Is(err, store.ErrNewerSchema) {
		t.Fatalf("open a schema of version 9: %v, want ErrNewerSchema", err)
	}
	u, _ := url.Parse(dsn)
	want := "postgres " + u.Host + u.Path + " schema " + u.Query().Get("search_path") +
		" has schema version 9, newer than this wardgate knows (7): store: schema is newer than this wardgate; upgrade wardgate"
	if err.Error() != want {
		t.Fatalf("error %q,\nwant  %q", err, want)
	}
}

// A search_path that names no schema is an error that says so, not a
// failure to create the first table.
func TestMissingSchema(t *testing.T) {
	t.Parallel()
	u, _ := url.Parse(serverDSN(t))
	q := u.Query()
	q.Set("search_path", "wardgate_test_never_created")
	u.RawQuery = q.Encode()
	_, err := postgres.Open(t.Context(), u.String())
	if err == nil || !strings.Contains(err.Error(), "the search_path names no schema that exists") {
		t.Fatalf("open with a missing schema: %v", err)
	}
}

// A migration cut short leaves nothing of itself (its transaction rolls
// back with it), and the next open runs it, whole, and those after it.
func TestInterruptedMigrationReruns(t *testing.T) {
	dsn := freshSchema(t)
	crash := errors.New("killed")
	restore := postgres.SetFailMigration(func(v int) error {
		if v == 3 {
			return crash
		}
		return nil
	})
	_, err := postgres.Open(t.Context(), dsn)
	restore()
	if !errors.Is(err, crash) || !strings.Contains(err.Error(), "migration 3: killed") {
		t.Fatalf("open with migration 3 failing: %v", err)
	}
	c, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var versions []int32
	rows, _ := c.Query(t.Context(), `SELECT version FROM wardgate_migrations ORDER BY version`)
	if versions, err = pgx.CollectRows(rows, pgx.RowTo[int32]); err != nil || len(versions) != 2 || versions[1] != 2 {
		t.Fatalf("versions after the crash: %v, %v; want [1 2]", versions, err)
	}
	var half *string
	if err := c.QueryRow(t.Context(), `SELECT to_regclass('telemetry_sources')::text`).Scan(&half); err != nil || half != nil {
		t.Fatalf("migration 3's first table after its crash: %v, %v; want none", half, err)
	}
	db := openDB(t, dsn)
	if v, err := db.SchemaVersion(t.Context()); err != nil || v != 7 {
		t.Fatalf("SchemaVersion after the rerun = %d, %v; want 7", v, err)
	}
	if added, err := db.Ingest(t.Context(), egressSource, noEvents); err != nil || !added {
		t.Fatalf("ingest after the rerun: %v, %v", added, err)
	}
}

// Replicas started together migrate once: the advisory lock makes the
// others wait, then find the migrations done.
func TestConcurrentOpen(t *testing.T) {
	t.Parallel()
	dsn := freshSchema(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			db, err := postgres.Open(t.Context(), dsn)
			if err == nil {
				db.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	db := openDB(t, dsn)
	if v, err := db.SchemaVersion(t.Context()); err != nil || v != 7 {
		t.Fatalf("SchemaVersion = %d, %v; want 7", v, err)
	}
}

var egressSource = egress.Source{Name: "batch.jsonl", Digest: "sha256:01"}

func noEvents(add func(*egress.Event) error) error { return nil }

// Another tool's migrations table, in the store's schema or later on the
// search_path (golang-migrate's schema_migrations, at a version far
// beyond wardgate's), is not wardgate's; nor is another wardgate's, in a
// schema later on the search_path: the store opens and migrates its own.
func TestOtherToolsMigrations(t *testing.T) {
	t.Parallel()
	dsn := freshSchema(t)
	other := schemaDSN(t, serverDSN(t))
	u, _ := url.Parse(dsn)
	ou, _ := url.Parse(other)
	ours, theirs := u.Query().Get("search_path"), ou.Query().Get("search_path")
	for _, schema := range []string{ours, theirs} {
		admin(t, dsn, `CREATE TABLE `+schema+`.schema_migrations (version bigint PRIMARY KEY, dirty boolean NOT NULL)`)
		admin(t, dsn, `INSERT INTO `+schema+`.schema_migrations VALUES (20240101120000, false)`)
	}
	admin(t, dsn, `CREATE TABLE `+theirs+`.wardgate_migrations (version integer PRIMARY KEY)`)
	admin(t, dsn, `INSERT INTO `+theirs+`.wardgate_migrations VALUES (99)`)
	q := u.Query()
	q.Set("search_path", ours+","+theirs)
	u.RawQuery = q.Encode()
	db := openDB(t, u.String())
	if v, err := db.SchemaVersion(t.Context()); err != nil || v != 7 {
		t.Fatalf("SchemaVersion = %d, %v; want 7", v, err)
	}
}

// legacyEvents makes dsn's schema what an earlier wardgate left: its
// events as rows of telemetry_events (inserted in the order given), and
// the migrations from version since on undone.
func legacyEvents(t *testing.T, dsn string, since int, evs []egress.Event) {
	t.Helper()
	openDB(t, dsn).Close()
	undo := `ALTER TABLE installations DROP COLUMN id; DROP TABLE telemetry_blocks;
		CREATE TABLE telemetry_events (
		id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, ts bigint NOT NULL, device text NOT NULL, device_id text NOT NULL,
		action text NOT NULL, remote_ip text NOT NULL, remote_port integer NOT NULL, remote_url text NOT NULL, remote_ip_type text NOT NULL,
		local_ip text NOT NULL, local_port integer NOT NULL, protocol text NOT NULL, process text NOT NULL, sent bigint NOT NULL, received bigint NOT NULL);
		CREATE INDEX telemetry_events_ts ON telemetry_events (ts, id);`
	if since <= 5 {
		undo += `DROP TABLE telemetry_groups, telemetry_group_backfill; ALTER TABLE telemetry_sources DROP COLUMN batch;`
	}
	admin(t, dsn, undo)
	admin(t, dsn, `DELETE FROM wardgate_migrations WHERE version >= $1`, since)
	c, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	addr := func(a netip.Addr) string {
		if !a.IsValid() {
			return ""
		}
		return a.String()
	}
	var rows [][]any
	for _, ev := range evs {
		rows = append(rows, []any{ev.Time.UnixNano(), ev.DeviceName, ev.DeviceID, ev.ActionType, addr(ev.RemoteIP), int32(ev.RemotePort),
			ev.RemoteURL, ev.RemoteIPType, addr(ev.LocalIP), int32(ev.LocalPort), ev.Protocol, ev.Process, ev.SentBytes, ev.ReceivedBytes})
	}
	if _, err := c.CopyFrom(t.Context(), pgx.Identifier{"telemetry_events"}, []string{"ts", "device", "device_id", "action", "remote_ip", "remote_port",
		"remote_url", "remote_ip_type", "local_ip", "local_port", "protocol", "process", "sent", "received"}, pgx.CopyFromRows(rows)); err != nil {
		t.Fatal(err)
	}
}

func allEvents(t *testing.T, db *postgres.DB) []egress.Event {
	t.Helper()
	var out []egress.Event
	if err := db.Events(t.Context(), func(ev *egress.Event) error { out = append(out, *ev); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// A schema with events from before groups were kept (and before events
// were kept in blocks) has them grouped on open, once.
func TestGroupsBackfilled(t *testing.T) {
	dsn := freshSchema(t)
	ctx := t.Context()
	t0 := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	evs := []egress.Event{
		{Time: t0, DeviceName: "A", ActionType: egress.ActionConnectionSuccess, RemoteIP: netip.MustParseAddr("52.1.1.1"), RemoteURL: "x.example.com", RemoteIPType: "Public", SentBytes: 5},
		{Time: t0.Add(time.Minute), DeviceName: "A", ActionType: egress.ActionConnectionSuccess, RemoteIP: netip.MustParseAddr("52.1.1.1"), RemoteURL: "x.example.com", RemoteIPType: "Public", SentBytes: 7},
		{Time: t0.Add(2 * time.Hour), DeviceName: "B", ActionType: egress.ActionConnectionFailed},
	}
	legacyEvents(t, dsn, 5, evs)
	admin(t, dsn, `INSERT INTO telemetry_sources(digest, name, events, ingested_at) VALUES ('sha256:b', 'b', 3, 0)`)
	gr := egress.NewGrouper()
	for i := range evs {
		gr.Add(evs[i].DeviceName, &evs[i])
	}
	var want []egress.Group
	for _, g := range gr.Groups() {
		want = append(want, *g)
	}
	for range 2 { // grouped on the first open, left alone on the second
		db := openDB(t, dsn)
		var got []egress.Group
		last, err := db.Groups(ctx, 0, func(g *egress.Group) error { got = append(got, *g.Clone()); return nil })
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(got, func(x, y egress.Group) int { return egress.CompareGroupKeys(x.GroupKey, y.GroupKey) })
		if last != 1 || !reflect.DeepEqual(got, want) {
			t.Fatalf("last batch %d, groups\n%+v\nwant\n%+v", last, got, want)
		}
		if got := allEvents(t, db); !reflect.DeepEqual(got, evs) {
			t.Fatalf("events after the conversion\n%+v\nwant\n%+v", got, evs)
		}
		db.Close()
	}
}

// telemetry_events rows are converted to blocks on open: Events gives
// them as ORDER BY ts, id did (ties in the order they were inserted), the
// rows of more than one block too, and events ingested afterwards that
// tie with them come after them.
func TestEventsConvertedToBlocks(t *testing.T) {
	dsn := freshSchema(t)
	t0 := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	var evs []egress.Event
	for i := range 70_000 { // more than one block
		evs = append(evs, egress.Event{Time: t0.Add(time.Duration((i*7919)%50_000) * time.Millisecond), DeviceName: fmt.Sprint("dev-", i%13),
			DeviceID: fmt.Sprint(i), ActionType: egress.ActionConnectionSuccess, RemoteIP: netip.AddrFrom4([4]byte{52, 1, byte(i), 1}),
			RemotePort: 443, RemoteURL: "x.example.com", RemoteIPType: "Public", LocalIP: netip.MustParseAddr("fe80::1%eth0"), LocalPort: uint16(i),
			Protocol: "Tcp", Process: "svc", SentBytes: int64(i), ReceivedBytes: -1})
	}
	legacyEvents(t, dsn, 6, evs)
	want := slices.Clone(evs)
	slices.SortStableFunc(want, func(x, y egress.Event) int { return x.Time.Compare(y.Time) })
	db := openDB(t, dsn)
	if got := allEvents(t, db); !reflect.DeepEqual(got, want) {
		t.Fatalf("converted events are not in ORDER BY ts, id order (%d events, want %d)", len(got), len(want))
	}
	late := egress.Event{Time: t0, DeviceName: "late", ActionType: egress.ActionConnectionFailed}
	if added, err := db.Ingest(t.Context(), egress.Source{Name: "late", Digest: "sha256:late"}, func(add func(*egress.Event) error) error { return add(&late) }); err != nil || !added {
		t.Fatal(added, err)
	}
	got := allEvents(t, db)
	ties := 0
	for _, ev := range want {
		if ev.Time.Equal(t0) {
			ties++
		}
	}
	if len(got) != len(want)+1 || !reflect.DeepEqual(got[:ties], want[:ties]) || got[ties].DeviceName != "late" || !reflect.DeepEqual(got[ties+1:], want[ties:]) {
		t.Fatalf("an event ingested after the conversion is not after the converted ones of its time (%d ties)", ties)
	}
	c, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var gone bool
	var blocks int
	if err := c.QueryRow(t.Context(), `SELECT to_regclass('telemetry_events') IS NULL, (SELECT count(*) FROM telemetry_blocks WHERE source = '')`).Scan(&gone, &blocks); err != nil || !gone || blocks != 2 {
		t.Fatalf("telemetry_events dropped: %v; %d blocks of converted events, want 2; %v", gone, blocks, err)
	}
}

// A stored block that does not decode fails Events with an error naming
// the block, not a panic.
func TestCorruptBlock(t *testing.T) {
	dsn := freshSchema(t)
	db := openDB(t, dsn)
	ev := egress.Event{Time: time.Unix(100, 0).UTC(), DeviceName: "A"}
	if _, err := db.Ingest(t.Context(), egress.Source{Name: "a", Digest: "sha256:a"}, func(add func(*egress.Event) error) error { return add(&ev) }); err != nil {
		t.Fatal(err)
	}
	admin(t, dsn, `UPDATE telemetry_blocks SET data = '\x28b52ffd0000'::bytea`)
	err := db.Events(t.Context(), func(*egress.Event) error { return nil })
	if !errors.Is(err, eventblock.ErrCorrupt) || !strings.Contains(err.Error(), "event block 1") {
		t.Fatalf("err = %v", err)
	}
}
