// Package sqlite is the release ledger on an embedded SQLite database
// (modernc.org/sqlite, pure Go, no cgo): one file, ledger.db, in the state
// directory, in WAL mode so readers never wait for the writer, with a busy
// timeout so concurrent writers (parallel CI jobs) queue instead of failing,
// a schema_migrations table, and every write in one transaction.
//
// Imports: the standard library, modernc.org/sqlite, store and evidence.
// Must not import policy, verify, sbom, net/http server types, or cobra.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/wardgate/wardgate/store"
)

var _ store.Ledger = (*DB)(nil)

// FileName is the database file inside the state directory.
const FileName = "ledger.db"

// DefaultBusyTimeout is how long a write waits for another writer.
const DefaultBusyTimeout = 5 * time.Second

// ErrLocked is wrapped when the database stayed locked by another
// connection or process for longer than the busy timeout.
var ErrLocked = errors.New("store: ledger is locked by another writer")

// StateDirError is returned when the state directory cannot be used.
type StateDirError struct {
	Dir string
	Err error
}

func (e *StateDirError) Error() string { return fmt.Sprintf("state directory %s: %v", e.Dir, e.Err) }

// Unwrap returns the underlying error.
func (e *StateDirError) Unwrap() error { return e.Err }

// DB is a release ledger in one SQLite file. It is safe for concurrent use.
type DB struct {
	db   *sql.DB
	path string
	busy time.Duration
}

type config struct{ busy time.Duration }

// Option configures Open.
type Option func(*config) error

// WithBusyTimeout sets how long a write waits for a lock held by another
// writer before failing with ErrLocked.
func WithBusyTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("store: negative busy timeout %s", d)
		}
		c.busy = d
		return nil
	}
}

// migrations are applied in order; each runs once, in its own transaction,
// and is recorded in schema_migrations. Never edit one: append.
var migrations = []string{
	`CREATE TABLE releases (
		id            INTEGER PRIMARY KEY,
		vendor        TEXT NOT NULL,
		product       TEXT NOT NULL,
		version       TEXT NOT NULL,
		digest        TEXT NOT NULL,
		allowed       INTEGER NOT NULL CHECK (allowed IN (0, 1)),
		codes         TEXT NOT NULL,
		sbom_digest   TEXT NOT NULL,
		policy_digest TEXT NOT NULL,
		trust_digest  TEXT NOT NULL,
		evaluated_at  TEXT NOT NULL
	);
	CREATE INDEX releases_product ON releases (vendor, product, evaluated_at);
	CREATE INDEX releases_version ON releases (vendor, product, version);`,
}

// Open opens (creating if needed) the ledger in dir. The directory is
// created with mode 0700 and the database file with 0600.
func Open(ctx context.Context, dir string, opts ...Option) (*DB, error) {
	cfg := config{busy: DefaultBusyTimeout}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
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
	path := filepath.Join(dir, FileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, &StateDirError{Dir: dir, Err: err}
	}
	if err := f.Close(); err != nil {
		return nil, &StateDirError{Dir: dir, Err: err}
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", cfg.busy.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate") // take the write lock at BEGIN: no upgrade deadlocks
	sdb, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open ledger %s: %w", path, err)
	}
	db := &DB{db: sdb, path: path, busy: cfg.busy}
	if err := db.migrate(ctx); err != nil {
		sdb.Close()
		return nil, err
	}
	return db, nil
}

// Path is the database file.
func (db *DB) Path() string { return db.path }

// Close closes the database.
func (db *DB) Close() error { return db.db.Close() }

// classify maps SQLite's busy and locked results to ErrLocked.
func (db *DB) classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return fmt.Errorf("%s %s: %w (waited %s): %v", op, db.path, ErrLocked, db.busy, err)
		}
	}
	return fmt.Errorf("%s %s: %w", op, db.path, err)
}

// tx runs fn in one transaction, committed only if fn succeeds.
func (db *DB) tx(ctx context.Context, op string, fn func(*sql.Tx) error) error {
	tx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return db.classify(op, err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return db.classify(op, err)
	}
	return db.classify(op, tx.Commit())
}

func (db *DB) migrate(ctx context.Context) error {
	err := db.tx(ctx, "migrate ledger", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)`)
		return err
	})
	if err != nil {
		return err
	}
	for i, m := range migrations {
		version := i + 1
		err := db.tx(ctx, "migrate ledger", func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, m); err != nil {
				return fmt.Errorf("migration %d: %w", version, err)
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, version, time.Now().UTC().Format(time.RFC3339Nano))
			return err
		})
		if err != nil {
			return err
		}
	}
	var newest int
	if err := db.db.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&newest); err != nil {
		return db.classify("read ledger schema", err)
	}
	if newest > len(migrations) {
		return fmt.Errorf("ledger %s has schema version %d, newer than this wardgate knows (%d); upgrade wardgate", db.path, newest, len(migrations))
	}
	return nil
}

// SchemaVersion returns the newest applied migration.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := db.db.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v)
	return v, db.classify("read ledger schema", err)
}

// RecordRelease appends one evaluation in one transaction.
func (db *DB) RecordRelease(ctx context.Context, r store.Release) error {
	if err := r.Validate(); err != nil {
		return err
	}
	codes := r.Codes
	if codes == nil {
		codes = []string{}
	}
	cj, err := json.Marshal(codes)
	if err != nil {
		return fmt.Errorf("record release: %w", err)
	}
	allowed := 0
	if r.Allowed {
		allowed = 1
	}
	return db.tx(ctx, "record release in", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO releases
			(vendor, product, version, digest, allowed, codes, sbom_digest, policy_digest, trust_digest, evaluated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.Vendor, r.Product, r.Version, r.Digest, allowed, string(cj), r.SBOMDigest, r.PolicyDigest, r.TrustDigest,
			r.EvaluatedAt.UTC().Format(time.RFC3339Nano))
		return err
	})
}

const columns = `vendor, product, version, digest, allowed, codes, sbom_digest, policy_digest, trust_digest, evaluated_at`

// Times are stored as RFC 3339 text in UTC with nanoseconds; ordering uses
// julianday() so that "…:00Z" and "…:00.5Z" sort as times, with the row id
// breaking ties in insertion order.
const (
	oldestFirst = ` ORDER BY julianday(evaluated_at), id`
	newestOnly  = ` ORDER BY julianday(evaluated_at) DESC, id DESC LIMIT 1`
)

func (db *DB) query(ctx context.Context, op, where, order string, args ...any) ([]store.Release, error) {
	rows, err := db.db.QueryContext(ctx, `SELECT `+columns+` FROM releases WHERE `+where+order, args...)
	if err != nil {
		return nil, db.classify(op, err)
	}
	defer rows.Close()
	out := []store.Release{}
	for rows.Next() {
		var r store.Release
		var allowed int
		var codes, at string
		if err := rows.Scan(&r.Vendor, &r.Product, &r.Version, &r.Digest, &allowed, &codes, &r.SBOMDigest, &r.PolicyDigest, &r.TrustDigest, &at); err != nil {
			return nil, db.classify(op, err)
		}
		r.Allowed = allowed == 1
		if err := json.Unmarshal([]byte(codes), &r.Codes); err != nil {
			return nil, fmt.Errorf("%s %s: codes column: %w", op, db.path, err)
		}
		if r.EvaluatedAt, err = time.Parse(time.RFC3339Nano, at); err != nil {
			return nil, fmt.Errorf("%s %s: evaluated_at column: %w", op, db.path, err)
		}
		out = append(out, r)
	}
	return out, db.classify(op, rows.Err())
}

// LatestAdmitted returns the most recently admitted release of a product.
func (db *DB) LatestAdmitted(ctx context.Context, vendor, product string) (store.Release, error) {
	rows, err := db.query(ctx, "read ledger", `vendor = ? AND product = ? AND allowed = 1`, newestOnly, vendor, product)
	if err != nil {
		return store.Release{}, err
	}
	if len(rows) == 0 {
		return store.Release{}, store.ErrNotFound
	}
	return rows[0], nil
}

// ReleaseByVersion returns every evaluation of one version, oldest first.
func (db *DB) ReleaseByVersion(ctx context.Context, vendor, product, version string) ([]store.Release, error) {
	return db.query(ctx, "read ledger", `vendor = ? AND product = ? AND version = ?`, oldestFirst, vendor, product, version)
}

// Releases returns every evaluation of a product, oldest first.
func (db *DB) Releases(ctx context.Context, vendor, product string) ([]store.Release, error) {
	return db.query(ctx, "read ledger", `vendor = ? AND product = ?`, oldestFirst, vendor, product)
}
