package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
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
	if v, err := db.SchemaVersion(t.Context()); err != nil || v != 5 {
		t.Fatalf("SchemaVersion = %d, %v; want 5", v, err)
	}
}

// A schema a newer wardgate migrated is refused, and left as it is.
func TestNewerSchemaRefused(t *testing.T) {
	t.Parallel()
	dsn := freshSchema(t)
	openDB(t, dsn).Close()
	admin(t, dsn, `INSERT INTO wardgate_migrations (version) VALUES (6), (7)`)
	_, err := postgres.Open(t.Context(), dsn)
	if !errors.Is(err, store.ErrNewerSchema) {
		t.Fatalf("open a schema of version 7: %v, want ErrNewerSchema", err)
	}
	u, _ := url.Parse(dsn)
	want := "postgres " + u.Host + u.Path + " schema " + u.Query().Get("search_path") +
		" has schema version 7, newer than this wardgate knows (5): store: schema is newer than this wardgate; upgrade wardgate"
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
	if v, err := db.SchemaVersion(t.Context()); err != nil || v != 5 {
		t.Fatalf("SchemaVersion after the rerun = %d, %v; want 5", v, err)
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
	if v, err := db.SchemaVersion(t.Context()); err != nil || v != 5 {
		t.Fatalf("SchemaVersion = %d, %v; want 5", v, err)
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
	if v, err := db.SchemaVersion(t.Context()); err != nil || v != 5 {
		t.Fatalf("SchemaVersion = %d, %v; want 5", v, err)
	}
}

// A schema with events from before groups were kept (its last migration
// undone) has them grouped on open, once.
func TestGroupsBackfilled(t *testing.T) {
	dsn := freshSchema(t)
	ctx := t.Context()
	db := openDB(t, dsn)
	t0 := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	evs := []egress.Event{
		{Time: t0, DeviceName: "A", ActionType: egress.ActionConnectionSuccess, RemoteIP: netip.MustParseAddr("52.1.1.1"), RemoteURL: "x.example.com", RemoteIPType: "Public", SentBytes: 5},
		{Time: t0.Add(time.Minute), DeviceName: "A", ActionType: egress.ActionConnectionSuccess, RemoteIP: netip.MustParseAddr("52.1.1.1"), RemoteURL: "x.example.com", RemoteIPType: "Public", SentBytes: 7},
		{Time: t0.Add(2 * time.Hour), DeviceName: "B", ActionType: egress.ActionConnectionFailed},
	}
	if _, err := db.Ingest(ctx, egress.Source{Name: "b", Digest: "sha256:b"}, func(add func(*egress.Event) error) error {
		for i := range evs {
			if err := add(&evs[i]); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	admin(t, dsn, `DROP TABLE telemetry_groups, telemetry_group_backfill; ALTER TABLE telemetry_sources DROP COLUMN batch;
		DELETE FROM wardgate_migrations WHERE version = (SELECT max(version) FROM wardgate_migrations)`)
	gr := egress.NewGrouper()
	for i := range evs {
		gr.Add(evs[i].DeviceName, &evs[i])
	}
	var want []egress.Group
	for _, g := range gr.Groups() {
		want = append(want, *g)
	}
	for range 2 { // grouped on the first open, left alone on the second
		db = openDB(t, dsn)
		var got []egress.Group
		last, err := db.Groups(ctx, 0, func(g *egress.Group) error { got = append(got, *g.Clone()); return nil })
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(got, func(x, y egress.Group) int { return egress.CompareGroupKeys(x.GroupKey, y.GroupKey) })
		if last != 1 || !reflect.DeepEqual(got, want) {
			t.Fatalf("last batch %d, groups\n%+v\nwant\n%+v", last, got, want)
		}
		db.Close()
	}
}
