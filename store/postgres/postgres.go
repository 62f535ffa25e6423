// Package postgres is the shared store: everything wardgate keeps, in one
// PostgreSQL database, so that several wardgate processes (replicas) on
// one database behave as one gate. store.Open uses it for postgres:// and
// postgresql:// locations; importing the package registers it.
//
// The tables live in the first schema of the connection's search_path
// (the DSN may set it: ?search_path=wardgate). Migrations (schema.go) are
// versioned in its wardgate_migrations table; each runs in its own
// transaction, under an advisory lock, so replicas starting together
// migrate once, and a migration cut short reruns whole on the next open.
// A schema from a newer wardgate is refused (store.ErrNewerSchema).
//
// The verdict log has one sequence across every process: an append's
// transaction first locks the log's checkpoint row (SELECT … FOR UPDATE)
// and so reads the head; a second replica's append waits at that row
// until the first commits, and then reads the head the first wrote.
//
// Connections come from two pgxpool pools: readers (store.Options
// ReadConns) and writers (the three group committers of the admission
// path: log appends, installations, audit; and the other writes). A lost
// connection fails the operations on it with store.ErrUnavailable; the
// pools replace broken connections by themselves, so the store works again
// once the server is back, without a restart.
//
// Times are kept as Unix nanoseconds (bigint): timestamptz keeps
// microseconds, and what is read back must equal what was written.
//
// Imports: the standard library, github.com/jackc/pgx/v5, store, egress,
// internal/groupcommit and internal/eventblock. Must not import policy,
// verify, sbom, attest, gate, net/http server types, or cobra.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/internal/groupcommit"
	"github.com/wardgate/wardgate/store"
)

var (
	_ store.Store          = (*DB)(nil)
	_ store.CommitReporter = (*DB)(nil)
)

func init() { store.Register("postgres", open) }

// Defaults.
const (
	// DefaultReadConns is the size of the reader pool.
	DefaultReadConns = 4
	// WriteConns is the size of the writer pool: one connection for each
	// of the three group committers and three for the other writes
	// (ledger, evaluations, blobs, telemetry ingests, tokens).
	WriteConns = 6
	// DefaultConnectTimeout bounds one connection attempt when the DSN
	// sets no connect_timeout.
	DefaultConnectTimeout = 10 * time.Second
)

// DB is the store in one PostgreSQL schema. It is safe for concurrent use.
type DB struct {
	// where names the server and database in errors: host:port/database,
	// never the password.
	where string
	r, w  *pgxpool.Pool

	logw *groupcommit.Writer[logOp, logResult]
	// lastSize is the log size this process last committed (-1: none), so
	// an append reads the tree's nodes only when another replica wrote.
	lastSize atomic.Int64
	insw     *groupcommit.Writer[egress.Installation, struct{}]
	auditw   *groupcommit.Writer[store.AuditRecord, struct{}]

	feed *feed // the change feed (notify.go)

	groups *groupCache // the telemetry groups this replica merged last
}

// Open connects to the database of dsn, migrates its schema, and returns
// the store. A server that cannot be reached is an error wrapping
// store.ErrUnavailable that names the host, never the password.
func Open(ctx context.Context, dsn string, opts ...store.Option) (*DB, error) {
	var o store.Options
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	return openDB(ctx, dsn, o)
}

func open(ctx context.Context, dsn string, o store.Options) (store.Store, error) {
	db, err := openDB(ctx, dsn, o)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return db, nil
}

func openDB(ctx context.Context, dsn string, o store.Options) (*DB, error) {
	if o.ReadConns == 0 {
		o.ReadConns = DefaultReadConns
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgconn's message redacts the password of a URL.
		return nil, fmt.Errorf("store: postgres DSN: %w", err)
	}
	cc := cfg.ConnConfig
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = DefaultConnectTimeout
	}
	if _, ok := cc.RuntimeParams["application_name"]; !ok {
		cc.RuntimeParams["application_name"] = "wardgate"
	}
	db := &DB{groups: newGroupCache(), where: net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port))) + "/" + cc.Database}
	wcfg := cfg.Copy()
	wcfg.MaxConns = WriteConns
	cfg.MaxConns = int32(o.ReadConns)
	if db.w, err = pgxpool.NewWithConfig(ctx, wcfg); err != nil {
		return nil, db.classify("connect to", err)
	}
	if err := db.migrate(ctx, migrations); err != nil {
		db.w.Close()
		return nil, err
	}
	if err := db.newFeed(ctx, wcfg); err != nil {
		db.w.Close()
		return nil, err
	}
	if db.r, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		db.w.Close()
		return nil, db.classify("connect to", err)
	}
	db.lastSize.Store(-1)
	if err := db.backfillGroups(ctx); err != nil {
		db.w.Close()
		db.r.Close()
		return nil, err
	}
	db.logw = groupcommit.NewWriter(db.commitLog, groupcommit.Options{})
	db.insw = groupcommit.NewWriter(db.commitInstallations, groupcommit.Options{})
	db.auditw = groupcommit.NewWriter(db.commitAudit, groupcommit.Options{})
	return db, nil
}

// CommitStats reports the group committers of the log, the installations
// and the audit trail (store.CommitReporter).
func (db *DB) CommitStats() []store.CommitStats {
	return []store.CommitStats{
		{Writer: "log", Stats: db.logw.Stats()},
		{Writer: "installations", Stats: db.insw.Stats()},
		{Writer: "audit", Stats: db.auditw.Stats()},
	}
}

// Where is the server and database the store is in, as errors name it:
// host:port/database.
func (db *DB) Where() string { return db.where }

// Ping checks that the server answers on both pools and that the schema
// is there.
func (db *DB) Ping(ctx context.Context) error {
	var n int
	err := db.r.QueryRow(ctx, `SELECT count(*) FROM wardgate_migrations`).Scan(&n)
	return errors.Join(db.classify("ping", err), db.classify("ping", db.w.Ping(ctx)))
}

// Expecting is the number of writes announced to the group committers
// and not yet done.
func (db *DB) Expecting() int {
	return db.logw.Expecting() + db.insw.Expecting() + db.auditw.Expecting()
}

// Close commits what the group committers hold and closes the pools.
// Calling it again does nothing.
func (db *DB) Close() error {
	db.logw.Close()
	db.insw.Close()
	db.auditw.Close()
	db.closeFeed()
	db.r.Close()
	db.w.Close()
	return nil
}

// classify names the server in an error and marks the errors of a server
// that cannot be reached (refused, reset, shut down, lost) with
// store.ErrUnavailable. A context's end stays itself.
func (db *DB) classify(op string, err error) error {
	if err == nil {
		return nil
	}
	if unreachable(err) {
		// The network or the server went away: every pooled connection
		// is likely dead too. Drop them all (those in use when they come
		// back), so the next operation dials afresh instead of failing on
		// a dead connection once the server is back.
		if db.r != nil {
			db.r.Reset()
		}
		if db.w != nil {
			db.w.Reset()
		}
		return fmt.Errorf("%s postgres %s: %w: %w", op, db.where, store.ErrUnavailable, err)
	}
	return fmt.Errorf("%s postgres %s: %w", op, db.where, err)
}

// unreachable reports whether err says the server could not be reached or
// the connection was lost, rather than that the server refused the
// statement.
func unreachable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// Class 08: connection exception; 57P01-57P03: the server is
		// shutting down, or not yet accepting connections.
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case errors.As(err, &ce), errors.As(err, &ne),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		pgconn.SafeToRetry(err):
		return true
	}
	return strings.Contains(err.Error(), "conn closed")
}
