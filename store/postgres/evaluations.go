package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wardgate/wardgate/store"
)

// PutEvaluation implements store.Evaluations.
func (db *DB) PutEvaluation(ctx context.Context, e store.Evaluation) error {
	if err := e.Validate(); err != nil {
		return err
	}
	// One statement (one round trip, one transaction): the write and its
	// announcement on the change feed.
	_, err := db.w.Exec(ctx, `WITH put AS (INSERT INTO evaluations(digest, vendor, product, version, recorded_at, record) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (digest) DO UPDATE SET vendor = excluded.vendor, product = excluded.product, version = excluded.version,
		recorded_at = excluded.recorded_at, record = excluded.record RETURNING 1)
		SELECT pg_notify($7, $8) FROM put`,
		e.Digest, e.Vendor, e.Product, e.Version, e.RecordedAt.UnixNano(), e.Record,
		db.feed.channel, db.feed.payload(store.Change{Kind: store.ChangeEvaluation, Key: e.Digest}))
	return db.classify("keep evaluation in", err)
}

const evaluationCols = `digest, vendor, product, version, recorded_at, record`

func scanEvaluation(row pgx.Row) (store.Evaluation, error) {
	var e store.Evaluation
	var at int64
	err := row.Scan(&e.Digest, &e.Vendor, &e.Product, &e.Version, &at, &e.Record)
	e.RecordedAt = time.Unix(0, at).UTC()
	return e, err
}

// Evaluation implements store.Evaluations.
func (db *DB) Evaluation(ctx context.Context, digest string) (store.Evaluation, error) {
	e, err := scanEvaluation(db.r.QueryRow(ctx, `SELECT `+evaluationCols+` FROM evaluations WHERE digest = $1`, digest))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return store.Evaluation{}, fmt.Errorf("evaluation of %s: %w", digest, store.ErrNotFound)
	case err != nil:
		return store.Evaluation{}, db.classify("read evaluation from", err)
	}
	return e, nil
}

// ReleaseDigests implements store.Evaluations.
func (db *DB) ReleaseDigests(ctx context.Context, vendor, product, version string) ([]string, error) {
	rows, err := db.r.Query(ctx, `SELECT digest FROM evaluations WHERE vendor = $1 AND product = $2 AND version = $3 ORDER BY digest`, vendor, product, version)
	if err != nil {
		return nil, db.classify("read evaluations from", err)
	}
	out, err := pgx.AppendRows(make([]string, 0), rows, pgx.RowTo[string])
	return out, db.classify("read evaluations from", err)
}

// ListEvaluations implements store.Evaluations. It reads them all before
// calling fn, holding no connection while fn runs.
func (db *DB) ListEvaluations(ctx context.Context, fn func(store.Evaluation) error) error {
	rows, err := db.r.Query(ctx, `SELECT `+evaluationCols+` FROM evaluations ORDER BY digest`)
	if err != nil {
		return db.classify("read evaluations from", err)
	}
	all, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Evaluation, error) { return scanEvaluation(row) })
	if err != nil {
		return db.classify("read evaluations from", err)
	}
	for _, e := range all {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}
