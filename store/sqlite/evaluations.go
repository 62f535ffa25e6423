package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/wardgate/wardgate/store"
)

const upsertEvaluation = `INSERT INTO evaluations(digest, vendor, product, version, recorded_at, record) VALUES (?, ?, ?, ?, ?, ?)
	ON CONFLICT(digest) DO UPDATE SET vendor = excluded.vendor, product = excluded.product, version = excluded.version,
	recorded_at = excluded.recorded_at, record = excluded.record`

// PutEvaluation implements store.Evaluations.
func (db *DB) PutEvaluation(ctx context.Context, e store.Evaluation) error {
	if err := e.Validate(); err != nil {
		return err
	}
	_, err := db.main.w.ExecContext(ctx, upsertEvaluation, e.Digest, e.Vendor, e.Product, e.Version, e.RecordedAt.UnixNano(), e.Record)
	return db.main.classify("keep evaluation in", err)
}

const evaluationCols = `digest, vendor, product, version, recorded_at, record`

func scanEvaluation(sc interface{ Scan(...any) error }) (store.Evaluation, error) {
	var e store.Evaluation
	var at int64
	err := sc.Scan(&e.Digest, &e.Vendor, &e.Product, &e.Version, &at, &e.Record)
	e.RecordedAt = time.Unix(0, at).UTC()
	return e, err
}

// Evaluation implements store.Evaluations.
func (db *DB) Evaluation(ctx context.Context, digest string) (store.Evaluation, error) {
	e, err := scanEvaluation(db.main.r.QueryRowContext(ctx, `SELECT `+evaluationCols+` FROM evaluations WHERE digest = ?`, digest))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.Evaluation{}, fmt.Errorf("evaluation of %s: %w", digest, store.ErrNotFound)
	case err != nil:
		return store.Evaluation{}, db.main.classify("read evaluation from", err)
	}
	return e, nil
}

// ReleaseDigests implements store.Evaluations.
func (db *DB) ReleaseDigests(ctx context.Context, vendor, product, version string) ([]string, error) {
	rows, err := db.main.r.QueryContext(ctx, `SELECT digest FROM evaluations WHERE vendor = ? AND product = ? AND version = ? ORDER BY digest`, vendor, product, version)
	if err != nil {
		return nil, db.main.classify("read evaluations from", err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, db.main.classify("read evaluations from", err)
		}
		out = append(out, d)
	}
	return out, db.main.classify("read evaluations from", rows.Err())
}

// ListEvaluations implements store.Evaluations. It reads them all before
// calling fn, holding no connection while fn runs.
func (db *DB) ListEvaluations(ctx context.Context, fn func(store.Evaluation) error) error {
	var all []store.Evaluation
	err := func() error {
		rows, err := db.main.r.QueryContext(ctx, `SELECT `+evaluationCols+` FROM evaluations ORDER BY digest`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			e, err := scanEvaluation(rows)
			if err != nil {
				return err
			}
			all = append(all, e)
		}
		return rows.Err()
	}()
	if err != nil {
		return db.main.classify("read evaluations from", err)
	}
	for _, e := range all {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}
