package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/wardgate/wardgate/store"
	"github.com/wardgate/wardgate/store/sqlite"
	"github.com/wardgate/wardgate/store/storetest"
)

func open(t testing.TB, dir string, opts ...sqlite.Option) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Ledger { return open(t, t.TempDir()) })
}

func TestOpenCreatesPrivateFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "wardgate")
	db := open(t, dir)
	for p, want := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, db.Path(): 0o600} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, st.Mode(), want)
		}
	}
	if db.Path() != filepath.Join(dir, "ledger.db") {
		t.Fatalf("path %s", db.Path())
	}
	var mode string
	raw, err := sql.Open("sqlite", db.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := raw.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v; want wal", mode, err)
	}
}

func TestReopenAndRead(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir)
	want := []store.Release{storetest.Release("2.3.0", 'a', true, 0), storetest.Release("2.4.0", 'b', false, 1)}
	for _, r := range want {
		if err := db.RecordRelease(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db2 := open(t, dir)
	got, err := db2.Releases(t.Context(), "acme", "pump")
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("after reopen: %+v, %v", got, err)
	}
	if v, err := db2.SchemaVersion(t.Context()); v != 1 || err != nil {
		t.Fatalf("schema version %d, %v", v, err)
	}
}

func TestConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	// Two handles on one file behave like two processes (separate pools).
	dbs := []*sqlite.DB{open(t, dir), open(t, dir)}
	const writers, each = 8, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db := dbs[w%2]
			for i := range each {
				r := storetest.Release(fmt.Sprintf("%d.%d.0", w, i), 'a', i%2 == 0, w*each+i)
				if err := db.RecordRelease(t.Context(), r); err != nil {
					errs <- err
				}
			}
		}()
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
	latest, err := dbs[1].LatestAdmitted(t.Context(), "acme", "pump")
	if err != nil || latest.Version != fmt.Sprintf("%d.%d.0", writers-1, each-2) {
		t.Fatalf("latest %+v, %v", latest, err)
	}
}

func TestLockedDatabase(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir, sqlite.WithBusyTimeout(100*time.Millisecond))
	// Another process holds the write lock.
	other, err := sql.Open("sqlite", db.Path())
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
	want := fmt.Sprintf("record release in %s: store: ledger is locked by another writer (waited 100ms): database is locked (5) (SQLITE_BUSY)", db.Path())
	if err.Error() != want {
		t.Fatalf("err:\n got %s\nwant %s", err, want)
	}
	if el := time.Since(start); el < 100*time.Millisecond || el > 5*time.Second {
		t.Fatalf("waited %s", el)
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

func TestNewerSchemaRefused(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir)
	raw, err := sql.Open("sqlite", db.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`INSERT INTO schema_migrations VALUES (99, '2030-01-01T00:00:00Z')`); err != nil {
		t.Fatal(err)
	}
	_, err = sqlite.Open(t.Context(), dir)
	want := "ledger " + db.Path() + " has schema version 99, newer than this wardgate knows (1); upgrade wardgate"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v", err)
	}
}
