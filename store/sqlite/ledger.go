package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/wardgate/wardgate/store"
)

// RecordRelease implements store.Ledger: one transaction.
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
	return db.main.tx(ctx, "record release in", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO releases
			(vendor, product, version, digest, allowed, codes, sbom_digest, policy_digest, trust_digest, evaluated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.Vendor, r.Product, r.Version, r.Digest, allowed, string(cj), r.SBOMDigest, r.PolicyDigest, r.TrustDigest,
			r.EvaluatedAt.UTC().Format(time.RFC3339Nano))
		return err
	})
}

const releaseCols = `vendor, product, version, digest, allowed, codes, sbom_digest, policy_digest, trust_digest, evaluated_at`

// Times are stored as RFC 3339 text in UTC with nanoseconds; ordering uses
// julianday() so that "…:00Z" and "…:00.5Z" sort as times, with the row id
// breaking ties in insertion order.
const (
	oldestFirst = ` ORDER BY julianday(evaluated_at), id`
	newestOnly  = ` ORDER BY julianday(evaluated_at) DESC, id DESC LIMIT 1`
)

func (db *DB) releases(ctx context.Context, where, order string, args ...any) ([]store.Release, error) {
	const op = "read ledger"
	rows, err := db.main.r.QueryContext(ctx, `SELECT `+releaseCols+` FROM releases WHERE `+where+order, args...)
	if err != nil {
		return nil, db.main.classify(op, err)
	}
	defer rows.Close()
	out := []store.Release{}
	for rows.Next() {
		var r store.Release
		var allowed int
		var codes, at string
		if err := rows.Scan(&r.Vendor, &r.Product, &r.Version, &r.Digest, &allowed, &codes, &r.SBOMDigest, &r.PolicyDigest, &r.TrustDigest, &at); err != nil {
			return nil, db.main.classify(op, err)
		}
		r.Allowed = allowed == 1
		if err := json.Unmarshal([]byte(codes), &r.Codes); err != nil {
			return nil, fmt.Errorf("%s %s: codes column: %w", op, db.main.path, err)
		}
		if r.EvaluatedAt, err = time.Parse(time.RFC3339Nano, at); err != nil {
			return nil, fmt.Errorf("%s %s: evaluated_at column: %w", op, db.main.path, err)
		}
		out = append(out, r)
	}
	return out, db.main.classify(op, rows.Err())
}

// LatestAdmitted implements store.Ledger.
func (db *DB) LatestAdmitted(ctx context.Context, vendor, product string) (store.Release, error) {
	rows, err := db.releases(ctx, `vendor = ? AND product = ? AND allowed = 1`, newestOnly, vendor, product)
	if err != nil {
		return store.Release{}, err
	}
	if len(rows) == 0 {
		return store.Release{}, store.ErrNotFound
	}
	return rows[0], nil
}

// ReleaseByVersion implements store.Ledger.
func (db *DB) ReleaseByVersion(ctx context.Context, vendor, product, version string) ([]store.Release, error) {
	return db.releases(ctx, `vendor = ? AND product = ? AND version = ?`, oldestFirst, vendor, product, version)
}

// Releases implements store.Ledger.
func (db *DB) Releases(ctx context.Context, vendor, product string) ([]store.Release, error) {
	return db.releases(ctx, `vendor = ? AND product = ?`, oldestFirst, vendor, product)
}
