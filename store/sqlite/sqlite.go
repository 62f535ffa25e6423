// Package sqlite is the embedded store: everything wardgate keeps, in
// SQLite files (modernc.org/sqlite, pure Go, no cgo) in the state
// directory, in WAL mode. store.Open uses it for any location that is not
// a DSN; importing the package registers it.
//
// The files (schema.go): wardgate.db (the ledger, kept evaluations, blobs,
// the verdict log, installations, tokens, audit) and egress.db
// (telemetry). Each has a writer connection, on which every write of the
// process is serialised, a pool of reader connections (query_only) that
// writers never wait for, a schema_migrations table, and a group
// committer for the writes on the admission path. A state directory made
// by an earlier wardgate is migrated on open (legacy.go).
//
// Imports: the standard library, modernc.org/sqlite, store, egress,
// internal/groupcommit and internal/eventblock. Must not import policy,
// verify, sbom, attest, gate, net/http server types, or cobra.
package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/wardgate/wardgate/internal/groupcommit"
	"github.com/wardgate/wardgate/store"
)

var (
	_ store.Store          = (*DB)(nil)
	_ store.CommitReporter = (*DB)(nil)
)

func init() { store.Register("sqlite", open) }

// Defaults.
const (
	// DefaultBusyTimeout is how long a write waits for a lock another
	// process holds.
	DefaultBusyTimeout = 10 * time.Second
	// DefaultReadConns is the size of each file's reader pool.
	DefaultReadConns = 4
)

// ErrLocked is wrapped when a database stayed locked by another process
// for longer than the busy timeout.
var ErrLocked = errors.New("store: locked by another writer")

// StateDirError is returned when the state directory cannot be used.
type StateDirError struct {
	Dir string
	Err error
}

func (e *StateDirError) Error() string { return fmt.Sprintf("state directory %s: %v", e.Dir, e.Err) }

// Unwrap returns the underlying error.
func (e *StateDirError) Unwrap() error { return e.Err }

// DB is the store in one state directory. It is safe for concurrent use.
type DB struct {
	dir    string
	main   *file // everything but telemetry
	egress *file // telemetry
	files  []*file
	groups *groupCache // egress.db's writer's copy of event_groups
	// ckpt checkpoints main's write-ahead log off its commits (writer.go).
	ckpt *checkpointer
}

// Open opens (creating, migrating and importing an earlier layout as
// needed) the store in dir. The directory is created with mode 0700 and
// the files with 0600.
func Open(ctx context.Context, dir string, opts ...store.Option) (*DB, error) {
	var o store.Options
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	return openDB(ctx, dir, o)
}

func open(ctx context.Context, dir string, o store.Options) (store.Store, error) {
	db, err := openDB(ctx, dir, o)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return db, nil
}

func openDB(ctx context.Context, dir string, o store.Options) (*DB, error) {
	if o.BusyTimeout == 0 {
		o.BusyTimeout = DefaultBusyTimeout
	}
	if o.ReadConns == 0 {
		o.ReadConns = DefaultReadConns
	}
	if dir == "" {
		return nil, &StateDirError{Dir: `""`, Err: errors.New("empty path")}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, &StateDirError{Dir: dir, Err: err}
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, &StateDirError{Dir: dir, Err: err}
	}
	if !st.IsDir() {
		return nil, &StateDirError{Dir: dir, Err: errors.New("not a directory")}
	}
	// The order matters for a state directory an earlier wardgate made:
	// its log.db becomes wardgate.db, the other files' rows are moved in,
	// and only then does egress.db drop the installations it held.
	if err := adoptLegacyLog(ctx, dir, o); err != nil {
		return nil, err
	}
	db := &DB{dir: dir, groups: newGroupCache()}
	if db.main, err = openFile(ctx, dir, mainSpec, o); err != nil {
		return nil, err
	}
	db.files = append(db.files, db.main)
	if err := db.importLegacyFiles(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if db.egress, err = openFile(ctx, dir, egressSpec, o); err != nil {
		db.Close()
		return nil, err
	}
	db.egress.queue = &txQueue{} // a sensor's small batch ahead of the load's large ones
	db.files = append(db.files, db.egress)
	if err := db.prepare(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := db.backfillGroups(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if db.ckpt, err = db.main.startCheckpointer(ctx, mainSpec.sync); err != nil {
		db.Close()
		return nil, err
	}
	for _, f := range db.files {
		commit := f.commit
		if f == db.main {
			commit = func(ctx context.Context, ops []op, out []opResult) error {
				err := f.commit(ctx, ops, out)
				db.ckpt.poke()
				return err
			}
		}
		f.writer = groupcommit.NewWriter(commit, groupcommit.Options{})
	}
	if err := db.importLegacyDirs(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// prepare prepares, once, the statements of the writes on the admission
// path (one per admission: preparing them per commit cost about 4% of the
// server's CPU under load), the log head and tree node reads and the
// checkpoint upsert of an append, and the savepoint of a group commit.
func (db *DB) prepare(ctx context.Context) error {
	for _, f := range db.files { // every file's group committer runs these
		if err := f.prepare(ctx, map[string]string{stmtSavepoint: `SAVEPOINT log`, stmtRelease: `RELEASE log`,
			stmtRollbackTo: `ROLLBACK TO log`}); err != nil {
			return err
		}
	}
	return db.main.prepare(ctx, map[string]string{stmtEntry: insertEntry, stmtNode: insertNode, stmtBlob: insertBlob,
		stmtInstallation: insertInstallation, stmtAudit: insertAudit,
		stmtHead: selectHead, stmtCheckpoint: upsertHead, stmtReadNode: selectNode})
}

// Dir is the state directory.
func (db *DB) Dir() string { return db.dir }

// Paths lists the database files.
func (db *DB) Paths() []string {
	out := make([]string, len(db.files))
	for i, f := range db.files {
		out[i] = f.path
	}
	return out
}

// CommitStats reports each file's group committer (store.CommitReporter).
func (db *DB) CommitStats() []store.CommitStats {
	out := make([]store.CommitStats, 0, len(db.files))
	for _, f := range db.files {
		if f.writer != nil {
			out = append(out, store.CommitStats{Writer: filepath.Base(f.path), Stats: f.writer.Stats()})
		}
	}
	return out
}

// Ping checks that every file answers a read.
func (db *DB) Ping(ctx context.Context) error {
	var errs []error
	for _, f := range db.files {
		errs = append(errs, f.ping(ctx))
	}
	return errors.Join(errs...)
}

// Expecting is the number of writes announced to the group committers
// (ExpectLog, ExpectInstallation, ExpectAudit) and not yet done: an
// announcement never marked done would hold later commits for their
// linger.
func (db *DB) Expecting() int {
	n := 0
	for _, f := range db.files {
		n += f.writer.Expecting()
	}
	return n
}

// Close commits what the group committers hold and closes every file.
func (db *DB) Close() error {
	var errs []error
	if db.main != nil && db.main.writer != nil {
		db.main.writer.Close() // its last commits poke the checkpointer
	}
	if db.ckpt != nil {
		errs = append(errs, db.ckpt.stop())
		db.ckpt = nil
	}
	for _, f := range db.files {
		errs = append(errs, f.close())
	}
	db.files = nil
	return errors.Join(errs...)
}

// SchemaVersions returns each file's newest applied migration, by file
// name.
func (db *DB) SchemaVersions(ctx context.Context) (map[string]int, error) {
	out := map[string]int{}
	for _, f := range db.files {
		v, err := f.schemaVersion(ctx, f.r)
		if err != nil {
			return nil, err
		}
		out[filepath.Base(f.path)] = v
	}
	return out, nil
}
