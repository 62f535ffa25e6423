package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/wardgate/wardgate/store"
)

// migration is one schema change, run in its own transaction together
// with its row in wardgate_migrations: a migration cut short (a crash, a
// lost connection) leaves nothing and runs again, whole, on the next open.
type migration string

// failMigration, when set (by tests), fails the migration of that version
// inside its transaction, after its statements ran, as a crash in the
// middle of it would.
var failMigration func(version int) error

// lockMigrations serialises migrations of one schema across processes
// (replicas started together): a transaction-scoped advisory lock keyed by
// the schema's name, released at commit or rollback.
const lockMigrations = `SELECT pg_advisory_xact_lock(2024061401, hashtext(current_schema()))`

// migrate applies the migrations the schema lacks. A schema whose newest
// migration is beyond what this wardgate knows is refused before anything
// is changed: it was written by a newer wardgate.
func (db *DB) migrate(ctx context.Context, ms []migration) error {
	var schema *string
	var exists bool
	err := db.w.QueryRow(ctx, `SELECT current_schema(), to_regclass(quote_ident(current_schema()) || '.wardgate_migrations') IS NOT NULL`).Scan(&schema, &exists)
	if err != nil {
		return db.classify("open", err) // the first query: connecting fails here
	}
	if schema == nil {
		return fmt.Errorf("migrate postgres %s: the search_path names no schema that exists: create it, or set search_path in the DSN", db.where)
	}
	if !exists {
		err := pgx.BeginFunc(ctx, db.w, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, lockMigrations); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS wardgate_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`)
			return err
		})
		if err != nil {
			return db.classify("migrate", err)
		}
	}
	var newest int
	if err := db.w.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM wardgate_migrations`).Scan(&newest); err != nil {
		return db.classify("read schema version of", err)
	}
	if newest > len(ms) {
		return fmt.Errorf("postgres %s schema %s has schema version %d, newer than this wardgate knows (%d): %w; upgrade wardgate", db.where, *schema, newest, len(ms), store.ErrNewerSchema)
	}
	// Those up to newest are applied (migrations are applied in order);
	// each later one is checked again under the lock, as another process
	// may be applying it.
	for i, m := range ms[newest:] {
		version := newest + i + 1
		err := pgx.BeginFunc(ctx, db.w, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, lockMigrations); err != nil {
				return err
			}
			var done bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM wardgate_migrations WHERE version = $1)`, version).Scan(&done); err != nil || done {
				return err
			}
			if _, err := tx.Exec(ctx, string(m)); err != nil {
				return fmt.Errorf("migration %d: %w", version, err)
			}
			if step := migrationSteps[version]; step != nil {
				if err := step(ctx, tx); err != nil {
					return fmt.Errorf("migration %d: %w", version, err)
				}
			}
			if failMigration != nil {
				if err := failMigration(version); err != nil {
					return fmt.Errorf("migration %d: %w", version, err)
				}
			}
			_, err := tx.Exec(ctx, `INSERT INTO wardgate_migrations (version) VALUES ($1)`, version)
			return err
		})
		if err != nil {
			return db.classify("migrate", err)
		}
	}
	return nil
}

// SchemaVersion returns the schema's newest applied migration.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := db.r.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM wardgate_migrations`).Scan(&v)
	return v, db.classify("read schema version of", err)
}
