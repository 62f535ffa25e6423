package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/wardgate/wardgate/store"
)

// PutToken implements store.Tokens.
func (db *DB) PutToken(ctx context.Context, t store.Token) error {
	return db.main.tx(ctx, "keep token in", func(tx *sql.Tx) error {
		var one int
		switch err := tx.QueryRowContext(ctx, `SELECT 1 FROM tokens WHERE name = ?`, t.Name).Scan(&one); {
		case err == nil:
			return fmt.Errorf("a token named %q: %w", t.Name, store.ErrExists)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		revoked := 0
		if t.Revoked {
			revoked = 1
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO tokens(hash, name, role, created, revoked) VALUES (?, ?, ?, ?, ?)`, t.Hash, t.Name, t.Role, t.Created.Unix(), revoked)
		return err
	})
}

// RevokeToken implements store.Tokens.
func (db *DB) RevokeToken(ctx context.Context, name string) error {
	res, err := db.main.w.ExecContext(ctx, `UPDATE tokens SET revoked = 1 WHERE name = ?`, name)
	if err != nil {
		return db.main.classify("revoke token in", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("token %q: %w", name, store.ErrNotFound)
	}
	return nil
}

const tokenCols = `hash, name, role, created, revoked`

func scanToken(sc interface{ Scan(...any) error }) (store.Token, error) {
	var t store.Token
	var created int64
	err := sc.Scan(&t.Hash, &t.Name, &t.Role, &created, &t.Revoked)
	t.Created = time.Unix(created, 0).UTC()
	return t, err
}

// TokenByHash implements store.Tokens.
func (db *DB) TokenByHash(ctx context.Context, hash string) (store.Token, error) {
	t, err := scanToken(db.main.r.QueryRowContext(ctx, `SELECT `+tokenCols+` FROM tokens WHERE hash = ?`, hash))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.Token{}, store.ErrNotFound
	case err != nil:
		return store.Token{}, db.main.classify("read tokens from", err)
	}
	return t, nil
}

// ListTokens implements store.Tokens.
func (db *DB) ListTokens(ctx context.Context) ([]store.Token, error) {
	rows, err := db.main.r.QueryContext(ctx, `SELECT `+tokenCols+` FROM tokens ORDER BY name`)
	if err != nil {
		return nil, db.main.classify("read tokens from", err)
	}
	defer rows.Close()
	out := []store.Token{}
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, db.main.classify("read tokens from", err)
		}
		out = append(out, t)
	}
	return out, db.main.classify("read tokens from", rows.Err())
}

const insertAudit = `INSERT INTO audit(time, request_id, token, role, action, target, status, outcome) VALUES (?,?,?,?,?,?,?,?)`

// Audit implements store.Audit: the record goes to wardgate.db's group
// committer.
func (db *DB) Audit(ctx context.Context, rec store.AuditRecord) error {
	r, err := db.main.writer.Submit(ctx, op{kind: opAudit, rec: rec})
	if err == nil {
		err = r.err
	}
	return err
}

// ExpectAudit implements store.Audit.
func (db *DB) ExpectAudit() (done func()) { return db.main.writer.Expect() }

// AuditLog implements store.Audit.
func (db *DB) AuditLog(ctx context.Context, f store.AuditFilter) ([]store.AuditRecord, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 1000
	}
	q := `SELECT time, request_id, token, role, action, target, status, outcome FROM audit WHERE time >= ?`
	args := []any{f.Since.UnixNano()}
	if f.Action != "" {
		q += ` AND action = ?`
		args = append(args, f.Action)
	}
	q += ` ORDER BY id LIMIT ?`
	args = append(args, limit)
	rows, err := db.main.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, db.main.classify("read audit from", err)
	}
	defer rows.Close()
	out := []store.AuditRecord{}
	for rows.Next() {
		var a store.AuditRecord
		var ts int64
		if err := rows.Scan(&ts, &a.RequestID, &a.Token, &a.Role, &a.Action, &a.Target, &a.Status, &a.Outcome); err != nil {
			return nil, db.main.classify("read audit from", err)
		}
		a.Time = time.Unix(0, ts).UTC()
		out = append(out, a)
	}
	return out, db.main.classify("read audit from", rows.Err())
}
