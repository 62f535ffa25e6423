package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/wardgate/wardgate/store"
)

// migration is one schema change. Migrations are applied in order; each
// runs once, in its own transaction together with its row in
// schema_migrations, so a migration cut short (a crash, a full disk) left
// nothing and runs again, whole, on the next open. Never edit one: append.
type migration string

// migrationStep is a migration's part that SQL cannot do (converting rows
// to another encoding), run in the migration's transaction after its SQL.
type migrationStep func(ctx context.Context, tx *sql.Tx) error

// failMigration, when set (by tests), fails the migration of that version
// inside its transaction, as a crash in the middle of it would.
var failMigration func(path string, version int) error

// migrate applies the migrations this file lacks. A file whose newest
// migration is beyond what this wardgate knows is refused before anything
// is changed: it was written by a newer wardgate.
func (f *file) migrate(ctx context.Context, ms []migration, steps map[int]migrationStep) error {
	err := f.tx(ctx, "migrate", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)`)
		return err
	})
	if err != nil {
		return err
	}
	newest, err := f.schemaVersion(ctx, f.w)
	if err != nil {
		return err
	}
	if newest > len(ms) {
		return fmt.Errorf("%s has schema version %d, newer than this wardgate knows (%d): %w; upgrade wardgate", f.path, newest, len(ms), store.ErrNewerSchema)
	}
	for i, m := range ms {
		version := i + 1
		err := f.tx(ctx, "migrate", func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, string(m)); err != nil {
				return fmt.Errorf("migration %d: %w", version, err)
			}
			if step := steps[version]; step != nil {
				if err := step(ctx, tx); err != nil {
					return fmt.Errorf("migration %d: %w", version, err)
				}
			}
			if failMigration != nil {
				if err := failMigration(f.path, version); err != nil {
					return fmt.Errorf("migration %d: %w", version, err)
				}
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, version, time.Now().UTC().Format(time.RFC3339Nano))
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (f *file) schemaVersion(ctx context.Context, db *sql.DB) (int, error) {
	var v int
	err := db.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v)
	return v, f.classify("read schema version of", err)
}
