package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/internal/groupcommit"
	"github.com/wardgate/wardgate/store"
)

// sync is a file's durability: FULL fsyncs the write-ahead log at every
// commit (a power cut loses nothing acknowledged); NORMAL fsyncs only at
// checkpoints (a power cut may lose the last commits; a killed process
// loses nothing either way).
type syncMode string

const (
	syncFull   syncMode = "FULL"
	syncNormal syncMode = "NORMAL"
)

// spec describes one database file of the state directory.
type spec struct {
	name       string
	sync       syncMode
	migrations []migration
	// steps are Go code run after the SQL of the migration of that
	// version, in its transaction.
	steps map[int]migrationStep
}

// file is one open database file: a writer pool of one connection (every
// write of this process is serialised on it, so writers never meet
// SQLITE_BUSY from each other, and a transaction takes the write lock at
// BEGIN), a reader pool that never writes, and the group committer of the
// writes on the admission path.
type file struct {
	path   string
	busy   time.Duration
	w, r   *sql.DB
	writer *groupcommit.Writer[op, opResult]
	// prepared holds the statements prepared once on w (the one writer
	// connection), by name.
	prepared map[string]*sql.Stmt
	// queue, when set (egress.db), orders the transactions waiting for
	// the writer: a small batch ahead of large ones (txQueue).
	queue *txQueue
}

// dsn is the one place the pragmas are set. Every connection is in WAL
// mode (readers never wait for the writer, nor the writer for readers),
// waits busy for locks held by another process, and checks foreign keys;
// reader connections are query_only.
func dsn(path string, busy time.Duration, mode syncMode, reader bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous("+string(mode)+")")
	if reader {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Set("_txlock", "immediate") // take the write lock at BEGIN: no upgrade deadlocks
	}
	return "file:" + path + "?" + q.Encode()
}

// openFile opens (creating with mode 0600) the file s in dir and applies
// its migrations.
func openFile(ctx context.Context, dir string, s spec, o store.Options) (*file, error) {
	path := filepath.Join(dir, s.name)
	fh, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, &StateDirError{Dir: dir, Err: err}
	}
	if err := fh.Close(); err != nil {
		return nil, &StateDirError{Dir: dir, Err: err}
	}
	f := &file{path: path, busy: o.BusyTimeout, prepared: map[string]*sql.Stmt{}}
	if f.w, err = sql.Open("sqlite", dsn(path, o.BusyTimeout, s.sync, false)); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	f.w.SetMaxOpenConns(1)
	f.w.SetMaxIdleConns(1)
	f.w.SetConnMaxLifetime(0)
	f.w.SetConnMaxIdleTime(0)
	if err := f.migrate(ctx, s.migrations, s.steps); err != nil {
		f.w.Close()
		return nil, err
	}
	if f.r, err = sql.Open("sqlite", dsn(path, o.BusyTimeout, s.sync, true)); err != nil {
		f.w.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	f.r.SetMaxOpenConns(o.ReadConns)
	f.r.SetMaxIdleConns(o.ReadConns)
	return f, nil
}

// prepare prepares the statements every write of the admission path runs,
// once, on the writer connection.
func (f *file) prepare(ctx context.Context, stmts map[string]string) error {
	for name, q := range stmts {
		st, err := f.w.PrepareContext(ctx, q)
		if err != nil {
			return f.classify("prepare", err)
		}
		f.prepared[name] = st
	}
	return nil
}

func (f *file) close() error {
	if f.writer != nil {
		f.writer.Close()
	}
	var errs []error
	for _, st := range f.prepared {
		errs = append(errs, st.Close())
	}
	if f.r != nil {
		errs = append(errs, f.r.Close())
	}
	errs = append(errs, f.w.Close())
	return errors.Join(errs...)
}

// classify names the file in an error, and maps SQLite's busy and locked
// results to ErrLocked.
func (f *file) classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return fmt.Errorf("%s %s: %w (waited %s): %v", op, f.path, ErrLocked, f.busy, err)
		}
	}
	return fmt.Errorf("%s %s: %w", op, f.path, err)
}

// tx runs fn in one write transaction, committed only if fn succeeds.
// With a queue, it waits its turn there first (the size it is queued with
// is egress.BatchBytes of ctx).
func (f *file) tx(ctx context.Context, op string, fn func(*sql.Tx) error) error {
	if f.queue != nil {
		size, _ := egress.BatchBytes(ctx)
		release, err := f.queue.acquire(ctx, size)
		if err != nil {
			return f.classify(op, err)
		}
		defer release()
	}
	tx, err := f.w.BeginTx(ctx, nil)
	if err != nil {
		return f.classify(op, err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return f.classify(op, err)
	}
	return f.classify(op, tx.Commit())
}

// ping checks the file answers a read.
func (f *file) ping(ctx context.Context) error {
	var n int
	return f.classify("ping", f.r.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n))
}
