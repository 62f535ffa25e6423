package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/wardgate/wardgate/store"
)

// PutToken implements store.Tokens.
func (db *DB) PutToken(ctx context.Context, t store.Token) error {
	_, err := db.w.Exec(ctx, `WITH put AS (INSERT INTO tokens(hash, name, role, created, revoked) VALUES ($1, $2, $3, $4, $5) RETURNING 1)
		SELECT pg_notify($6, $7) FROM put`,
		t.Hash, t.Name, t.Role, t.Created.UnixNano(), t.Revoked, db.feed.channel, db.feed.payload(store.Change{Kind: store.ChangeToken, Key: t.Name}))
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" { // unique_violation
		if pe.ConstraintName == "tokens_name_key" {
			return fmt.Errorf("a token named %q: %w", t.Name, store.ErrExists)
		}
		return fmt.Errorf("a token with that secret: %w", store.ErrExists)
	}
	return db.classify("keep token in", err)
}

// RevokeToken implements store.Tokens.
func (db *DB) RevokeToken(ctx context.Context, name string) error {
	// The revocation and its announcement, in one statement: the SELECT
	// returns one row per token revoked.
	tag, err := db.w.Exec(ctx, `WITH rev AS (UPDATE tokens SET revoked = true WHERE name = $1 RETURNING 1)
		SELECT pg_notify($2, $3) FROM rev`, name, db.feed.channel, db.feed.payload(store.Change{Kind: store.ChangeToken, Key: name}))
	if err != nil {
		return db.classify("revoke token in", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("token %q: %w", name, store.ErrNotFound)
	}
	return nil
}

const tokenCols = `hash, name, role, created, revoked`

func scanToken(row pgx.Row) (store.Token, error) {
	var t store.Token
	var created int64
	err := row.Scan(&t.Hash, &t.Name, &t.Role, &created, &t.Revoked)
	t.Created = time.Unix(0, created).UTC()
	return t, err
}

// TokenByHash implements store.Tokens.
func (db *DB) TokenByHash(ctx context.Context, hash string) (store.Token, error) {
	t, err := scanToken(db.r.QueryRow(ctx, `SELECT `+tokenCols+` FROM tokens WHERE hash = $1`, hash))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return store.Token{}, store.ErrNotFound
	case err != nil:
		return store.Token{}, db.classify("read tokens from", err)
	}
	return t, nil
}

// ListTokens implements store.Tokens.
func (db *DB) ListTokens(ctx context.Context) ([]store.Token, error) {
	rows, err := db.r.Query(ctx, `SELECT `+tokenCols+` FROM tokens ORDER BY name`)
	if err != nil {
		return nil, db.classify("read tokens from", err)
	}
	out, err := pgx.AppendRows(make([]store.Token, 0), rows, func(row pgx.CollectableRow) (store.Token, error) { return scanToken(row) })
	return out, db.classify("read tokens from", err)
}

// Audit implements store.Audit: the record goes to the audit trail's group
// committer.
func (db *DB) Audit(ctx context.Context, rec store.AuditRecord) error {
	_, err := db.auditw.Submit(ctx, rec)
	return err
}

// ExpectAudit implements store.Audit.
func (db *DB) ExpectAudit() (done func()) { return db.auditw.Expect() }

// commitAudit writes a batch of audit records in one transaction.
func (db *DB) commitAudit(ctx context.Context, recs []store.AuditRecord, _ []struct{}) error {
	var b pgx.Batch
	for _, a := range recs {
		b.Queue(`INSERT INTO audit(time, request_id, token, role, action, target, status, outcome) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			a.Time.UnixNano(), a.RequestID, a.Token, a.Role, a.Action, a.Target, int32(a.Status), a.Outcome)
	}
	return db.classify("audit in", pgx.BeginFunc(ctx, db.w, func(tx pgx.Tx) error {
		return tx.SendBatch(ctx, &b).Close()
	}))
}

// AuditLog implements store.Audit.
func (db *DB) AuditLog(ctx context.Context, f store.AuditFilter) ([]store.AuditRecord, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 1000
	}
	q := `SELECT time, request_id, token, role, action, target, status, outcome FROM audit WHERE true`
	var args []any
	if !f.Since.IsZero() {
		args = append(args, f.Since.UnixNano())
		q += fmt.Sprintf(` AND time >= $%d`, len(args))
	}
	if f.Action != "" {
		args = append(args, f.Action)
		q += fmt.Sprintf(` AND action = $%d`, len(args))
	}
	args = append(args, limit)
	q += fmt.Sprintf(` ORDER BY id LIMIT $%d`, len(args))
	rows, err := db.r.Query(ctx, q, args...)
	if err != nil {
		return nil, db.classify("read audit from", err)
	}
	out, err := pgx.AppendRows(make([]store.AuditRecord, 0), rows, func(row pgx.CollectableRow) (store.AuditRecord, error) {
		var a store.AuditRecord
		var ts int64
		var status int32
		err := row.Scan(&ts, &a.RequestID, &a.Token, &a.Role, &a.Action, &a.Target, &status, &a.Outcome)
		a.Time, a.Status = time.Unix(0, ts).UTC(), int(status)
		return a, err
	})
	return out, db.classify("read audit from", err)
}
