package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wardgate/wardgate/store"
)

// RecordRelease implements store.Ledger: one statement.
func (db *DB) RecordRelease(ctx context.Context, r store.Release) error {
	if err := r.Validate(); err != nil {
		return err
	}
	codes := r.Codes
	if codes == nil {
		codes = []string{}
	}
	_, err := db.w.Exec(ctx, `INSERT INTO releases
		(vendor, product, version, digest, allowed, codes, sbom_digest, policy_digest, trust_digest, evaluated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		r.Vendor, r.Product, r.Version, r.Digest, r.Allowed, codes, r.SBOMDigest, r.PolicyDigest, r.TrustDigest, r.EvaluatedAt.UnixNano())
	return db.classify("record release in", err)
}

const releaseCols = `vendor, product, version, digest, allowed, codes, sbom_digest, policy_digest, trust_digest, evaluated_at`

// The id breaks ties of time in insertion order.
const (
	oldestFirst = ` ORDER BY evaluated_at, id`
	newestOnly  = ` ORDER BY evaluated_at DESC, id DESC LIMIT 1`
)

func (db *DB) releases(ctx context.Context, where, order string, args ...any) ([]store.Release, error) {
	rows, err := db.r.Query(ctx, `SELECT `+releaseCols+` FROM releases WHERE `+where+order, args...)
	if err != nil {
		return nil, db.classify("read ledger", err)
	}
	out, err := pgx.AppendRows(make([]store.Release, 0), rows, func(row pgx.CollectableRow) (store.Release, error) {
		var r store.Release
		var at int64
		err := row.Scan(&r.Vendor, &r.Product, &r.Version, &r.Digest, &r.Allowed, &r.Codes, &r.SBOMDigest, &r.PolicyDigest, &r.TrustDigest, &at)
		r.EvaluatedAt = time.Unix(0, at).UTC()
		return r, err
	})
	return out, db.classify("read ledger", err)
}

// LatestAdmitted implements store.Ledger.
func (db *DB) LatestAdmitted(ctx context.Context, vendor, product string) (store.Release, error) {
	rs, err := db.releases(ctx, `vendor = $1 AND product = $2 AND allowed`, newestOnly, vendor, product)
	if err != nil {
		return store.Release{}, err
	}
	if len(rs) == 0 {
		return store.Release{}, store.ErrNotFound
	}
	return rs[0], nil
}

// ReleaseByVersion implements store.Ledger.
func (db *DB) ReleaseByVersion(ctx context.Context, vendor, product, version string) ([]store.Release, error) {
	return db.releases(ctx, `vendor = $1 AND product = $2 AND version = $3`, oldestFirst, vendor, product, version)
}

// Releases implements store.Ledger.
func (db *DB) Releases(ctx context.Context, vendor, product string) ([]store.Release, error) {
	return db.releases(ctx, `vendor = $1 AND product = $2`, oldestFirst, vendor, product)
}
