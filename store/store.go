package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/wardgate/wardgate/internal/groupcommit"
)

// Errors every backend returns for the same conditions.
var (
	// ErrNotFound: no such row (release, evaluation, blob, log entry,
	// token).
	ErrNotFound = errors.New("store: not found")
	// ErrExists: a name that must be unique is taken.
	ErrExists = errors.New("store: already exists")
	// ErrNewerSchema: the store was written by a newer wardgate; this one
	// refuses to run on it rather than misread it.
	ErrNewerSchema = errors.New("store: schema is newer than this wardgate")
	// ErrSequence: a Sequencer returned rows that do not continue the log
	// from its head. Nothing is written.
	ErrSequence = errors.New("store: log append out of sequence")
	// ErrUnavailable: the store's server cannot be reached (down, or the
	// connection was lost). The operation may succeed when retried once
	// the server is back: the gate answers could-not-evaluate, the server
	// 503, and the store reconnects by itself.
	ErrUnavailable = errors.New("store: unavailable")
)

// Store is everything wardgate keeps. Implementations are safe for
// concurrent use.
type Store interface {
	Ledger
	Evaluations
	Blobs
	LogStore
	Telemetry
	Installations
	Tokens
	Audit
	// Ping checks that every part of the store answers (readiness).
	Ping(ctx context.Context) error
	// Close commits what the group committers hold and closes the store.
	Close() error
}

// CommitStats are the commits of one of a store's group committers
// (internal/groupcommit): how long each took, the transaction and its
// fsync. A write on the admission path waits for its commit, so these are
// the floor under that path's latency (the metrics,
// wardgate_store_commit_duration_seconds).
type CommitStats struct {
	// Writer names the committer: the database file it writes (SQLite),
	// or what it writes (PostgreSQL: log, installations, audit).
	Writer string
	groupcommit.Stats
}

// CommitReporter is a store that reports its group committers' commits.
type CommitReporter interface {
	CommitStats() []CommitStats
}

// Options configure a backend; zero fields take the backend's defaults.
type Options struct {
	// ReadConns is how many connections readers (queries, exports,
	// proofs) share, apart from the writer's.
	ReadConns int
	// BusyTimeout is how long a write waits for a lock another process
	// holds (SQLite).
	BusyTimeout time.Duration
}

// Option sets Options.
type Option func(*Options) error

// WithReadConns sets Options.ReadConns.
func WithReadConns(n int) Option {
	return func(o *Options) error {
		if n < 1 {
			return fmt.Errorf("store: %d read connections: want at least 1", n)
		}
		o.ReadConns = n
		return nil
	}
}

// WithBusyTimeout sets Options.BusyTimeout.
func WithBusyTimeout(d time.Duration) Option {
	return func(o *Options) error {
		if d < 0 {
			return fmt.Errorf("store: negative busy timeout %s", d)
		}
		o.BusyTimeout = d
		return nil
	}
}

// OpenFunc opens a backend's store at a location.
type OpenFunc func(ctx context.Context, location string, opts Options) (Store, error)

var (
	backendsMu sync.RWMutex
	backends   = map[string]OpenFunc{}
)

// Register makes a backend available to Open under scheme ("sqlite" for
// state directories; "postgres" for postgres:// and postgresql:// DSNs).
// It panics when scheme is registered twice, as database/sql does.
func Register(scheme string, open OpenFunc) {
	backendsMu.Lock()
	defer backendsMu.Unlock()
	if _, dup := backends[scheme]; dup {
		panic("store: backend " + scheme + " registered twice")
	}
	backends[scheme] = open
}

// Scheme is the backend a location names: "postgres" for a postgres:// or
// postgresql:// DSN, the scheme of any other URL, "sqlite" for anything
// else (a state directory).
func Scheme(location string) string {
	s, _, ok := strings.Cut(location, "://")
	switch {
	case !ok:
		return "sqlite"
	case s == "postgresql":
		return "postgres"
	default:
		// Any other URL names its backend, known or not: an unknown one is
		// refused, never taken for a directory called "mysql:".
		return strings.ToLower(s)
	}
}

// Open opens (creating and migrating if needed) the store at location: a
// state directory, or a DSN of a registered backend.
func Open(ctx context.Context, location string, opts ...Option) (Store, error) {
	var o Options
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if location == "" {
		return nil, errors.New("store: no location: give a state directory")
	}
	scheme := Scheme(location)
	backendsMu.RLock()
	open, ok := backends[scheme]
	known := make([]string, 0, len(backends))
	for s := range backends {
		known = append(known, s)
	}
	backendsMu.RUnlock()
	if !ok {
		sort.Strings(known)
		return nil, fmt.Errorf("store: no %s backend in this wardgate (it has: %s)", scheme, strings.Join(known, ", "))
	}
	return open(ctx, location, o)
}
