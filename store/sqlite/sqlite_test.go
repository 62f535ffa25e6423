package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/internal/eventblock"
	"github.com/wardgate/wardgate/store"
	"github.com/wardgate/wardgate/store/sqlite"
	"github.com/wardgate/wardgate/store/storetest"
)

func open(t testing.TB, dir string, opts ...store.Option) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// rawMain makes a new state directory and returns it with a connection
// of its own to its wardgate.db (no store open on it), closed at the end
// of the test: to put the file back to an earlier schema.
func rawMain(t *testing.T) (string, *sql.DB) {
	t.Helper()
	dir := t.TempDir()
	open(t, dir).Close()
	raw, err := sql.Open("sqlite", filepath.Join(dir, "wardgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return dir, raw
}

// The whole behaviour suite, on real files on disk, through store.Open.
func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, opts ...store.Option) func() store.Store {
		dir := t.TempDir()
		return func() store.Store {
			s, err := store.Open(context.Background(), dir, opts...)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	})
}

func TestOpenCreatesPrivateFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "wardgate")
	db := open(t, dir)
	want := map[string]os.FileMode{dir: 0o700 | os.ModeDir}
	for _, p := range db.Paths() {
		want[p] = 0o600
	}
	for p, mode := range want {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != mode {
			t.Errorf("%s: mode %v, want %v", p, st.Mode(), mode)
		}
	}
	var names []string
	for _, p := range db.Paths() {
		names = append(names, filepath.Base(p))
		raw, err := sql.Open("sqlite", p)
		if err != nil {
			t.Fatal(err)
		}
		var mode string
		if err := raw.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
			t.Errorf("%s: journal_mode = %q, %v; want wal", p, mode, err)
		}
		raw.Close()
	}
	if want := []string{"wardgate.db", "egress.db"}; !slices.Equal(names, want) {
		t.Fatalf("files %v, want %v", names, want)
	}
	v, err := db.SchemaVersions(t.Context())
	if err != nil || !reflect.DeepEqual(v, map[string]int{"wardgate.db": 3, "egress.db": 5}) {
		t.Fatalf("schema versions %v, %v", v, err)
	}
}

// Two handles on one directory behave like two processes (separate pools):
// their writes queue on SQLite's lock, none fails.
func TestConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	dbs := []*sqlite.DB{open(t, dir), open(t, dir)}
	const writers, each = 8, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			db := dbs[w%2]
			for i := range each {
				r := storetest.Release(fmt.Sprintf("%d.%d.0", w, i), 'a', i%2 == 0, w*each+i)
				if err := db.RecordRelease(t.Context(), r); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	all, err := dbs[0].Releases(t.Context(), "acme", "pump")
	if err != nil || len(all) != writers*each {
		t.Fatalf("%d releases, %v; want %d", len(all), err, writers*each)
	}
}

func TestLockedDatabase(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir, store.WithBusyTimeout(100*time.Millisecond))
	slow := open(t, dir, store.WithBusyTimeout(time.Minute))
	ledger := filepath.Join(dir, "wardgate.db")
	// Another process holds the write lock.
	other, err := sql.Open("sqlite", ledger)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = db.RecordRelease(t.Context(), storetest.Release("1.0.0", 'a', true, 0))
	if !errors.Is(err, sqlite.ErrLocked) {
		t.Fatalf("err = %v, want ErrLocked", err)
	}
	want := fmt.Sprintf("record release in %s: store: locked by another writer (waited 100ms): database is locked (5) (SQLITE_BUSY)", ledger)
	if err.Error() != want {
		t.Fatalf("err:\n got %s\nwant %s", err, want)
	}
	if el := time.Since(start); el < 100*time.Millisecond || el > 5*time.Second {
		t.Fatalf("waited %s", el)
	}
	// A wait for the lock ends with the caller's context, not the busy
	// timeout.
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	if err := slow.RecordRelease(ctx, storetest.Release("1.0.0", 'a', true, 0)); err == nil {
		t.Fatal("a write under another process's lock succeeded")
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("a write with a 200ms budget waited %s", el)
	}
	if _, err := conn.ExecContext(t.Context(), "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	// Nothing was recorded half-way, and the ledger works again.
	if rs, err := db.Releases(t.Context(), "acme", "pump"); err != nil || len(rs) != 0 {
		t.Fatalf("after lock: %v %v", rs, err)
	}
	if err := db.RecordRelease(t.Context(), storetest.Release("1.0.0", 'a', true, 0)); err != nil {
		t.Fatal(err)
	}
}

func TestUnusableStateDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ dir, want string }{
		{file, "state directory " + file + ": mkdir " + file + ": not a directory"},
		{filepath.Join(file, "sub"), "state directory " + filepath.Join(file, "sub") + ": mkdir " + file + ": not a directory"},
		{"", `state directory "": empty path`},
	} {
		_, err := sqlite.Open(t.Context(), tc.dir)
		var se *sqlite.StateDirError
		if !errors.As(err, &se) || err.Error() != tc.want {
			t.Errorf("Open(%q) = %v, want %s", tc.dir, err, tc.want)
		}
	}
}

// A file written by a newer wardgate is refused, and left as it was.
func TestNewerSchemaRefused(t *testing.T) {
	dir := t.TempDir()
	open(t, dir).Close()
	path := filepath.Join(dir, "wardgate.db")
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`INSERT INTO schema_migrations VALUES (99, '2030-01-01T00:00:00Z'); CREATE TABLE from_the_future (x)`); err != nil {
		t.Fatal(err)
	}
	_, err = store.Open(t.Context(), dir)
	want := path + " has schema version 99, newer than this wardgate knows (3): store: schema is newer than this wardgate; upgrade wardgate"
	if !errors.Is(err, store.ErrNewerSchema) || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
	var n int
	if err := raw.QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil || n != 4 {
		t.Fatalf("migrations after the refusal: %d, %v", n, err)
	}
}

// A migration cut short leaves nothing of itself, and the next open runs
// it whole. Here egress.db's second migration (installations moved out to
// wardgate.db) fails after the table of an earlier wardgate's egress.db is
// dropped.
func TestInterruptedMigrationReruns(t *testing.T) {
	dir := t.TempDir()
	earlier, err := sql.Open("sqlite", filepath.Join(dir, "egress.db"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = earlier.Exec(`CREATE TABLE installations (device TEXT NOT NULL, digest TEXT NOT NULL, product TEXT NOT NULL, version TEXT NOT NULL, ts INTEGER NOT NULL, PRIMARY KEY (device, digest, ts))`)
	if cerr := earlier.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	crash := errors.New("power cut")
	restore := sqlite.SetFailMigration(func(path string, version int) error {
		if filepath.Base(path) == "egress.db" && version == 2 {
			return crash
		}
		return nil
	})
	_, err = sqlite.Open(t.Context(), dir)
	restore()
	if !errors.Is(err, crash) {
		t.Fatalf("err = %v, want the injected failure", err)
	}
	tables := func() []string {
		t.Helper()
		raw, err := sql.Open("sqlite", filepath.Join(dir, "egress.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		rows, err := raw.Query(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var names []string
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				t.Fatal(err)
			}
			names = append(names, n)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return names
	}
	if got, want := tables(), []string{"events", "installations", "schema_migrations", "sources"}; !slices.Equal(got, want) {
		t.Fatalf("half a migration is left: tables %v, want %v", got, want)
	}
	db := open(t, dir)
	v, err := db.SchemaVersions(t.Context())
	if err != nil || v["egress.db"] != 5 {
		t.Fatalf("schema versions after the rerun: %v, %v", v, err)
	}
	if got, want := tables(), []string{"event_blocks", "event_groups", "group_backfill", "schema_migrations", "sources"}; !slices.Equal(got, want) {
		t.Fatalf("after the rerun: tables %v, want %v", got, want)
	}
}

// legacyEvents makes dir's egress.db what an earlier wardgate left: its
// events as rows of the events table (inserted in the order given), and
// the migrations from version since on undone.
func legacyEvents(t *testing.T, dir string, since int, evs []egress.Event) {
	t.Helper()
	open(t, dir).Close()
	raw, err := sql.Open("sqlite", filepath.Join(dir, "egress.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	undo := `DROP TABLE event_blocks;
		CREATE TABLE events (
		  ts INTEGER NOT NULL, device TEXT NOT NULL, device_id TEXT NOT NULL, action TEXT NOT NULL,
		  remote_ip TEXT NOT NULL, remote_port INTEGER NOT NULL, remote_url TEXT NOT NULL, remote_ip_type TEXT NOT NULL,
		  local_ip TEXT NOT NULL, local_port INTEGER NOT NULL, protocol TEXT NOT NULL, process TEXT NOT NULL,
		  sent INTEGER NOT NULL, received INTEGER NOT NULL);
		CREATE INDEX events_ts ON events(ts);`
	if since <= 3 {
		undo += `DROP TABLE event_groups; DROP TABLE group_backfill;`
	}
	if _, err := raw.Exec(undo); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`DELETE FROM schema_migrations WHERE version >= ?`, since); err != nil {
		t.Fatal(err)
	}
	addr := func(a netip.Addr) string {
		if !a.IsValid() {
			return ""
		}
		return a.String()
	}
	tx, err := raw.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	for _, ev := range evs {
		if _, err := tx.Exec(`INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)`, ev.Time.UnixNano(), ev.DeviceName, ev.DeviceID, ev.ActionType,
			addr(ev.RemoteIP), int(ev.RemotePort), ev.RemoteURL, ev.RemoteIPType, addr(ev.LocalIP), int(ev.LocalPort), ev.Protocol, ev.Process,
			ev.SentBytes, ev.ReceivedBytes); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func ingestAll(t *testing.T, db *sqlite.DB, digest string, evs []egress.Event) {
	t.Helper()
	storetest.IngestAll(t, db, digest, evs)
}

// storedGroups reads every group of db in key order, and the last batch.
func storedGroups(t *testing.T, db *sqlite.DB) ([]egress.Group, int64) {
	t.Helper()
	var got []egress.Group
	last, err := db.Groups(t.Context(), 0, func(g *egress.Group) error { got = append(got, *g.Clone()); return nil })
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(x, y egress.Group) int { return egress.CompareGroupKeys(x.GroupKey, y.GroupKey) })
	return got, last
}

// grouped is what gr holds, in key order (Grouper.Groups).
func grouped(gr *egress.Grouper) []egress.Group {
	var want []egress.Group
	for _, g := range gr.Groups() {
		want = append(want, *g)
	}
	return want
}

func allEvents(t *testing.T, db *sqlite.DB) []egress.Event {
	t.Helper()
	var out []egress.Event
	if err := db.Events(t.Context(), func(ev *egress.Event) error { out = append(out, *ev); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// A state directory whose egress.db has events from before groups were
// kept (and before events were kept in blocks) has them grouped on open,
// once.
func TestGroupsBackfilled(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	evs := []egress.Event{
		{Time: t0, DeviceName: "A", ActionType: egress.ActionConnectionSuccess, RemoteIP: netip.MustParseAddr("52.1.1.1"), RemoteURL: "x.example.com", RemoteIPType: "Public", SentBytes: 5},
		{Time: t0.Add(time.Minute), DeviceName: "A", ActionType: egress.ActionConnectionSuccess, RemoteIP: netip.MustParseAddr("52.1.1.1"), RemoteURL: "x.example.com", RemoteIPType: "Public", SentBytes: 7},
		{Time: t0.Add(2 * time.Hour), DeviceName: "B", ActionType: egress.ActionConnectionFailed},
	}
	legacyEvents(t, dir, 3, evs)
	raw, err := sql.Open("sqlite", filepath.Join(dir, "egress.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`INSERT INTO sources(digest, name, events, ingested_at) VALUES ('sha256:b', 'b', 3, 0)`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	gr := egress.NewGrouper()
	for i := range evs {
		gr.Add(evs[i].DeviceName, &evs[i])
	}
	for range 2 { // grouped on the first open, left alone on the second
		db := open(t, dir)
		got, last := storedGroups(t, db)
		want := grouped(gr)
		if last != 1 || !reflect.DeepEqual(got, want) {
			t.Fatalf("last batch %d, groups\n%+v\nwant\n%+v", last, got, want)
		}
		if got := allEvents(t, db); !reflect.DeepEqual(got, evs) {
			t.Fatalf("events after the conversion\n%+v\nwant\n%+v", got, evs)
		}
		db.Close()
	}
}

// An earlier egress.db's events rows are converted to blocks on open:
// Events gives them as ORDER BY ts, rowid did (ties in the order they
// were inserted), the rows of more than one block too, and events
// ingested afterwards that tie with them come after them.
func TestEventsConvertedToBlocks(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	var evs []egress.Event
	for i := range 70_000 { // more than one block
		evs = append(evs, egress.Event{Time: t0.Add(time.Duration((i*7919)%50_000) * time.Millisecond), DeviceName: fmt.Sprint("dev-", i%13),
			DeviceID: fmt.Sprint(i), ActionType: egress.ActionConnectionSuccess, RemoteIP: netip.AddrFrom4([4]byte{52, 1, byte(i), 1}),
			RemotePort: 443, RemoteURL: "x.example.com", RemoteIPType: "Public", LocalIP: netip.MustParseAddr("fe80::1%eth0"), LocalPort: uint16(i),
			Protocol: "Tcp", Process: "svc", SentBytes: int64(i), ReceivedBytes: -1})
	}
	legacyEvents(t, dir, 4, evs)
	want := slices.Clone(evs)
	slices.SortStableFunc(want, func(x, y egress.Event) int { return x.Time.Compare(y.Time) })
	db := open(t, dir)
	if got := allEvents(t, db); !reflect.DeepEqual(got, want) {
		t.Fatalf("converted events are not in ORDER BY ts, rowid order (%d events, want %d)", len(got), len(want))
	}
	later := []egress.Event{{Time: t0, DeviceName: "late", ActionType: egress.ActionConnectionFailed}}
	ingestAll(t, db, "sha256:later", later)
	db.Close()
	db = open(t, dir)
	got := allEvents(t, db)
	if len(got) != len(want)+1 {
		t.Fatalf("%d events, want %d", len(got), len(want)+1)
	}
	ties := 0
	for _, ev := range want {
		if ev.Time.Equal(t0) {
			ties++
		}
	}
	if !reflect.DeepEqual(got[:ties], want[:ties]) || got[ties].DeviceName != "late" || !reflect.DeepEqual(got[ties+1:], want[ties:]) {
		t.Fatalf("an event ingested after the conversion is not after the converted ones of its time (%d ties)", ties)
	}
	var n int
	raw, err := sql.Open("sqlite", filepath.Join(dir, "egress.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := raw.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name = 'events'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the events table is left: %d, %v", n, err)
	}
	if err := raw.QueryRow(`SELECT count(*) FROM event_blocks WHERE batch = 0`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d blocks of converted events, want 2: %v", n, err)
	}
}

// A stored block that does not decode fails Events with an error naming
// the file and the block, not a panic.
func TestCorruptBlock(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir)
	ingestAll(t, db, "sha256:a", []egress.Event{{Time: time.Unix(100, 0).UTC(), DeviceName: "A"}})
	raw, err := sql.Open("sqlite", filepath.Join(dir, "egress.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`UPDATE event_blocks SET data = x'28b52ffd0000'`); err != nil {
		t.Fatal(err)
	}
	err = db.Events(t.Context(), func(*egress.Event) error { return nil })
	if !errors.Is(err, eventblock.ErrCorrupt) || !strings.Contains(err.Error(), filepath.Join(dir, "egress.db")) || !strings.Contains(err.Error(), "event block 1") {
		t.Fatalf("err = %v", err)
	}
}

// failingSeq is a sequencer that cannot sequence.
type failingSeq struct{ err error }

func (s failingSeq) Sequence(context.Context, store.Checkpoint, store.NodeReader, []store.LogItem) (store.LogBatch, error) {
	return store.LogBatch{}, s.err
}

// A log append that fails in a group commit is rolled back alone (the
// commit's savepoint): the audit records committed with it are kept, and
// the next commits work.
func TestFailedAppendKeepsItsBatch(t *testing.T) {
	db := open(t, t.TempDir())
	ctx := t.Context()
	boom := errors.New("signer unavailable")
	rec := func(i int) store.AuditRecord {
		return store.AuditRecord{Time: storetest.At(i), RequestID: fmt.Sprint("req-", i), Token: "kube", Role: "kubernetes",
			Action: "POST /v1/kubernetes/validate", Target: "ns/pod", Status: 200, Outcome: "deny"}
	}
	for round := range 3 {
		// Announced first, so that the committer waits for both and
		// commits them together.
		doneLog, doneAudit := db.ExpectLog(), db.ExpectAudit()
		var wg sync.WaitGroup
		var appendErr, auditErr error
		wg.Go(func() {
			defer doneLog()
			_, _, appendErr = db.AppendLog(ctx, failingSeq{boom}, []store.LogItem{{Envelope: []byte("{}"), Artifact: storetest.Digest('a'), Time: storetest.At(round)}})
		})
		wg.Go(func() {
			defer doneAudit()
			auditErr = db.Audit(ctx, rec(round))
		})
		wg.Wait()
		if !errors.Is(appendErr, boom) {
			t.Fatalf("round %d: append = %v, want %v", round, appendErr, boom)
		}
		if auditErr != nil {
			t.Fatalf("round %d: audit beside the failed append: %v", round, auditErr)
		}
	}
	if _, err := db.LogHead(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("LogHead after failed appends: %v, want ErrNotFound", err)
	}
	all, err := db.AuditLog(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range all {
		ids = append(ids, r.RequestID)
	}
	slices.Sort(ids)
	if want := []string{"req-0", "req-1", "req-2"}; !slices.Equal(ids, want) {
		t.Fatalf("audit records %v, want %v", ids, want)
	}
}

// Two handles on one directory (two processes) ingest in turns: each
// writer's copy of the groups is refreshed when the other wrote, so every
// group holds every batch's events.
func TestGroupsTwoWriters(t *testing.T) {
	dir := t.TempDir()
	dbs := []*sqlite.DB{open(t, dir), open(t, dir)}
	t0 := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	gr := egress.NewGrouper()
	var all []egress.Event
	for i := range 6 {
		var evs []egress.Event
		for j := range 3 + i {
			ev := egress.Event{Time: t0.Add(time.Duration(i*10+j) * time.Second), DeviceName: fmt.Sprint("dev-", j%2), ActionType: egress.ActionConnectionSuccess,
				RemoteIP: netip.MustParseAddr("52.1.1.1"), RemoteURL: "x.example.com", RemoteIPType: "Public", SentBytes: int64(100*i + j)}
			evs = append(evs, ev)
			gr.Add(ev.DeviceName, &ev)
		}
		all = append(all, evs...)
		ingestAll(t, dbs[i%2], fmt.Sprint("sha256:", i), evs)
	}
	for _, db := range dbs {
		got, _ := storedGroups(t, db)
		want := grouped(gr)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("groups after two writers took turns\n%+v\nwant\n%+v", got, want)
		}
	}
	if got := allEvents(t, dbs[0]); !reflect.DeepEqual(got, all) {
		t.Fatalf("events differ")
	}
}

// With a cache of a few groups, batches over many hours, some of them
// late (hours the cache dropped), still merge into the stored groups.
func TestGroupCacheEvicts(t *testing.T) {
	defer sqlite.SetGroupCacheLimit(6)()
	dir := t.TempDir()
	db := open(t, dir)
	t0 := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	gr := egress.NewGrouper()
	for b := range 12 {
		var evs []egress.Event
		for j := range 8 {
			hour := b + j%3
			if j == 7 {
				hour = b / 3 // late: an hour dropped from the cache
			}
			ev := egress.Event{Time: t0.Add(time.Duration(hour)*time.Hour + time.Duration(b*60+j)*time.Second), DeviceName: fmt.Sprint("dev-", j%2),
				ActionType: egress.ActionConnectionSuccess, RemoteIP: netip.MustParseAddr("52.1.1.1"), RemoteURL: "x.example.com", RemoteIPType: "Public", SentBytes: int64(b*10 + j)}
			evs = append(evs, ev)
			gr.Add(ev.DeviceName, &ev)
		}
		ingestAll(t, db, fmt.Sprint("sha256:", b), evs)
	}
	got, _ := storedGroups(t, db)
	want := grouped(gr)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("groups with a small cache\n%+v\nwant\n%+v", got, want)
	}
}

// The write-ahead log of wardgate.db is copied into the database file by
// the checkpointer, beside the writer, soon after commits, not by the
// commit that takes it past 1,000 pages: 2 MB of audit records (about
// 500 pages, under SQLite's own threshold) are in the database file while
// the store is still open.
func TestCheckpointsBesideTheWriter(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir)
	ctx := t.Context()
	if n, err := sqlite.WriterAutocheckpoint(db); err != nil || n != 10000 {
		t.Fatalf("writer wal_autocheckpoint = %d, %v; want 10000", n, err)
	}
	path := filepath.Join(dir, "wardgate.db")
	size := func() int64 {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	before := size()
	target := string(slices.Repeat([]byte("x"), 4000))
	const n = 500
	for i := range n {
		if err := db.Audit(ctx, store.AuditRecord{Time: storetest.At(i), RequestID: fmt.Sprint("req-", i), Token: "t", Role: "kubernetes",
			Action: "POST /v1/kubernetes/validate", Target: target, Status: 200, Outcome: "allow"}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for size()-before < n*4000 {
		if time.Now().After(deadline) {
			t.Fatalf("wardgate.db is %d bytes (%d before %d KB of audit records) after 10 s, %d checkpoints: the log was not checkpointed", size(), before, n*4, sqlite.Checkpoints(db))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if c := sqlite.Checkpoints(db); c < 1 {
		t.Fatalf("checkpoints run = %d", c)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = open(t, dir)
	all, err := db.AuditLog(ctx, store.AuditFilter{})
	if err != nil || len(all) != n {
		t.Fatalf("after reopening: %d audit records, %v; want %d", len(all), err, n)
	}
}

// A wardgate.db of schema 1 (installations numbered by their implicit
// rowid) is migrated: the installations keep the order they were
// recorded in, and those recorded afterwards come after them.
func TestInstallationsNumbered(t *testing.T) {
	dir, raw := rawMain(t)
	t0 := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	if _, err := raw.Exec(`DROP TABLE installations;
	CREATE TABLE installations (device TEXT NOT NULL, digest TEXT NOT NULL, product TEXT NOT NULL, version TEXT NOT NULL, ts INTEGER NOT NULL,
	  PRIMARY KEY (device, digest, ts));
	CREATE INDEX installations_device_ts ON installations(device, ts);
	INSERT INTO installations VALUES ('b', 'sha256:`+strings.Repeat("b", 64)+`', 'pump', '2', ?2), ('a', 'sha256:`+strings.Repeat("a", 64)+`', 'pump', '1', ?1);
	DROP TABLE nodes; -- and the tree nodes as they were (migration 3)
	CREATE TABLE nodes(level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY(level, idx)) WITHOUT ROWID;
	DELETE FROM schema_migrations WHERE version >= 2;`, t0.UnixNano(), t0.Add(time.Hour).UnixNano()); err != nil {
		t.Fatal(err)
	}
	db := open(t, dir)
	ctx := t.Context()
	if err := db.RecordInstallation(ctx, egress.Installation{Device: "c", Digest: "sha256:" + strings.Repeat("c", 64), Product: "pump", Version: "0", Time: t0.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	names := func(ins []egress.Installation) string {
		var s string
		for _, in := range ins {
			s += in.Device
		}
		return s
	}
	got, next, err := db.InstallationsSince(ctx, 0)
	if err != nil || names(got) != "bac" || next != 3 {
		t.Fatalf("since 0: %q, next %d, %v; want bac, 3", names(got), next, err)
	}
	all, err := db.Installations(ctx)
	if err != nil || names(all) != "cab" {
		t.Fatalf("in time order: %q, %v; want cab", names(all), err)
	}
}

// A wardgate.db of schema 2 (tree nodes keyed by level, then index) is
// migrated: each node is read back by its id as before, and the nodes are
// stored in the order of the leaf they end at.
func TestLogNodesRekeyed(t *testing.T) {
	dir, raw := rawMain(t)
	var ids []store.NodeID
	ins := `DROP TABLE nodes;
	CREATE TABLE nodes(level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY(level, idx)) WITHOUT ROWID;
	DELETE FROM schema_migrations WHERE version >= 3;`
	for level := range 4 {
		for idx := range 16 >> level {
			ids = append(ids, store.NodeID{Level: uint(level), Index: uint64(idx)})
			ins += fmt.Sprintf("INSERT INTO nodes VALUES (%d, %d, CAST('%d/%d' AS BLOB));", level, idx, level, idx)
		}
	}
	if _, err := raw.Exec(ins); err != nil {
		t.Fatal(err)
	}
	db := open(t, dir)
	got, err := db.LogNodes(t.Context(), ids)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		if want := fmt.Sprintf("%d/%d", id.Level, id.Index); string(got[i]) != want {
			t.Fatalf("node %+v: %q, want %q", id, got[i], want)
		}
	}
	var order []string
	rows, err := raw.Query(`SELECT hash FROM nodes WHERE last >= 14`) // in key order
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var h []byte
		if err := rows.Scan(&h); err != nil {
			t.Fatal(err)
		}
		order = append(order, string(h))
	}
	if want := []string{"0/14", "0/15", "1/7", "2/3", "3/1"}; !slices.Equal(order, want) {
		t.Fatalf("nodes ending at leaves 14 and 15 stored as %q, want %q", order, want)
	}
}
