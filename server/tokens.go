package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/wardgate/wardgate/internal/groupcommit"
)

// Role is what a token may do.
type Role string

// Roles. Admin may call every route.
const (
	RoleCI           Role = "ci"            // POST /v1/updates
	RoleUpdateServer Role = "update-server" // POST /v1/admissions
	RoleSensor       Role = "sensor"        // POST /v1/telemetry
	RoleAuditor      Role = "auditor"       // the read routes and evidence export
	RoleAdmin        Role = "admin"         // everything
	RoleKubernetes   Role = "kubernetes"    // POST /v1/kubernetes/validate and /mutate (the API server's webhooks)
)

// Roles lists every role.
var Roles = []Role{RoleCI, RoleUpdateServer, RoleSensor, RoleAuditor, RoleAdmin, RoleKubernetes}

// ParseRole checks a role name.
func ParseRole(s string) (Role, error) {
	if r := Role(s); slices.Contains(Roles, r) {
		return r, nil
	}
	return "", fmt.Errorf("role %q: want one of ci, update-server, sensor, auditor, admin, kubernetes", s)
}

// Secret is a bearer token. It logs as redacted.
type Secret string

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// TokenPrefix starts every token, so a leaked one is easy to grep for.
const TokenPrefix = "wgt_"

// Principal is who a token belongs to.
type Principal struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
}

// TokenInfo describes a stored token (never the token itself).
type TokenInfo struct {
	Name    string    `json:"name"`
	Role    Role      `json:"role"`
	Created time.Time `json:"created"`
	Revoked bool      `json:"revoked"`
}

// AuditRecord is one state-changing call: who, what, when, and how it ended.
type AuditRecord struct {
	Time      time.Time `json:"time"`
	RequestID string    `json:"requestId"`
	Token     string    `json:"token"` // the token's name
	Role      Role      `json:"role"`
	Action    string    `json:"action"` // the route, e.g. "POST /v1/admissions"
	Target    string    `json:"target"` // digest, device, telemetry batch digest
	Status    int       `json:"status"`
	Outcome   string    `json:"outcome"` // allow, deny, ingested, duplicate, error...
}

// Tokens keeps the API tokens (SHA-256 of each, never the token) and the
// audit table in one SQLite file. Audit records are written by a group
// committer: concurrent calls share one durable transaction.
type Tokens struct {
	db *sql.DB
	// insAudit is prepared once: it is run for every request.
	insAudit *sql.Stmt

	mu    sync.RWMutex
	cache map[[32]byte]cachedPrincipal

	reqs   chan auditReq
	coming groupcommit.Announcer
	done   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

type cachedPrincipal struct {
	p   Principal
	ok  bool
	exp time.Time
}

type auditReq struct {
	rec   AuditRecord
	reply chan error
}

// tokenCacheTTL bounds how long a revoked token keeps working in a running
// server (and how long an unknown token stays unknown).
const tokenCacheTTL = 10 * time.Second

const tokensSchema = `
CREATE TABLE IF NOT EXISTS tokens(hash TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, role TEXT NOT NULL, created INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS audit(id INTEGER PRIMARY KEY, time INTEGER NOT NULL, request_id TEXT NOT NULL, token TEXT NOT NULL, role TEXT NOT NULL,
  action TEXT NOT NULL, target TEXT NOT NULL, status INTEGER NOT NULL, outcome TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_time ON audit(time);
`

// TokensFile is the file name of the tokens and audit database in the
// state directory.
const TokensFile = "server.db"

// OpenTokens opens (creating) the tokens and audit database at path.
func OpenTokens(ctx context.Context, path string) (*Tokens, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, fmt.Errorf("tokens %s: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	if _, err := db.ExecContext(ctx, tokensSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("tokens %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, fmt.Errorf("tokens %s: %w", path, err)
	}
	ins, err := db.PrepareContext(ctx, `INSERT INTO audit(time, request_id, token, role, action, target, status, outcome) VALUES (?,?,?,?,?,?,?,?)`)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("tokens %s: %w", path, err)
	}
	t := &Tokens{db: db, insAudit: ins, cache: map[[32]byte]cachedPrincipal{}, reqs: make(chan auditReq, 1024), done: make(chan struct{})}
	t.wg.Add(1)
	go t.committer()
	return t, nil
}

// Close stops the audit committer and closes the database.
func (t *Tokens) Close() error {
	t.once.Do(func() { close(t.done) })
	t.wg.Wait()
	return t.db.Close()
}

// Ping checks the database answers.
func (t *Tokens) Ping(ctx context.Context) error { return t.db.PingContext(ctx) }

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Create makes a token for role and returns it; only its hash is stored,
// so it cannot be shown again. An empty name becomes ROLE-<random>.
func (t *Tokens) Create(ctx context.Context, role Role, name string) (Secret, error) {
	if _, err := ParseRole(string(role)); err != nil {
		return "", err
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	if name == "" {
		name = string(role) + "-" + hex.EncodeToString(raw[:3])
	}
	if !namePattern.MatchString(name) {
		return "", fmt.Errorf("token name %q: want letters, digits, '.', '_' or '-', at most 64", name)
	}
	secret := TokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	h := sha256.Sum256([]byte(secret))
	_, err := t.db.ExecContext(ctx, `INSERT INTO tokens(hash, name, role, created) VALUES (?, ?, ?, ?)`, hex.EncodeToString(h[:]), name, string(role), time.Now().Unix())
	if err != nil {
		var exists int
		if t.db.QueryRowContext(ctx, `SELECT 1 FROM tokens WHERE name = ?`, name).Scan(&exists) == nil {
			return "", fmt.Errorf("a token named %q exists", name)
		}
		return "", fmt.Errorf("tokens: %w", err)
	}
	return Secret(secret), nil
}

// Revoke revokes the token called name.
func (t *Tokens) Revoke(ctx context.Context, name string) error {
	res, err := t.db.ExecContext(ctx, `UPDATE tokens SET revoked = 1 WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("tokens: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("no token named %q", name)
	}
	t.mu.Lock()
	clear(t.cache)
	t.mu.Unlock()
	return nil
}

// List describes every token.
func (t *Tokens) List(ctx context.Context) ([]TokenInfo, error) {
	rows, err := t.db.QueryContext(ctx, `SELECT name, role, created, revoked FROM tokens ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	defer rows.Close()
	out := []TokenInfo{}
	for rows.Next() {
		var ti TokenInfo
		var created int64
		if err := rows.Scan(&ti.Name, &ti.Role, &created, &ti.Revoked); err != nil {
			return nil, err
		}
		ti.Created = time.Unix(created, 0).UTC()
		out = append(out, ti)
	}
	return out, rows.Err()
}

// Authenticate returns the principal of a bearer token; ErrUnauthenticated
// when it is unknown or revoked. Answers are cached for tokenCacheTTL.
func (t *Tokens) Authenticate(ctx context.Context, secret Secret) (Principal, error) {
	if len(secret) < len(TokenPrefix)+43 || len(secret) > 128 {
		return Principal{}, ErrUnauthenticated
	}
	h := sha256.Sum256([]byte(secret))
	now := time.Now()
	t.mu.RLock()
	c, hit := t.cache[h]
	t.mu.RUnlock()
	if hit && now.Before(c.exp) {
		if !c.ok {
			return Principal{}, ErrUnauthenticated
		}
		return c.p, nil
	}
	var p Principal
	var revoked bool
	err := t.db.QueryRowContext(ctx, `SELECT name, role, revoked FROM tokens WHERE hash = ?`, hex.EncodeToString(h[:])).Scan(&p.Name, &p.Role, &revoked)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		revoked = true
	case err != nil:
		return Principal{}, fmt.Errorf("%w: tokens: %w", ErrUnavailable, err)
	}
	t.mu.Lock()
	if len(t.cache) > 10000 {
		clear(t.cache) // bounded under a flood of made-up tokens
	}
	t.cache[h] = cachedPrincipal{p: p, ok: !revoked, exp: now.Add(tokenCacheTTL)}
	t.mu.Unlock()
	if revoked {
		return Principal{}, ErrUnauthenticated
	}
	return p, nil
}

// Audit records rec durably (it returns once the record is committed).
func (t *Tokens) Audit(ctx context.Context, rec AuditRecord) error {
	req := auditReq{rec: rec, reply: make(chan error, 1)}
	select {
	case t.reqs <- req:
	case <-ctx.Done():
		return ctx.Err()
	case <-t.done:
		return errors.New("audit: closed")
	}
	select {
	case err := <-req.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ExpectAudit announces an audit record on its way (an admission being
// decided): the group commit waits for it, up to its linger, rather than
// commit just before it comes. Call the returned func once Audit has
// returned or will not be called.
func (t *Tokens) ExpectAudit() (done func()) { return t.coming.Announce() }

// maxAuditBatch bounds one group commit.
const maxAuditBatch = 512

func (t *Tokens) committer() {
	defer t.wg.Done()
	c := groupcommit.Collector[auditReq]{Reqs: t.reqs, Done: t.done, Max: maxAuditBatch, Linger: groupcommit.DefaultLinger, Expected: t.coming.Count}
	batch := make([]auditReq, 0, maxAuditBatch)
	for {
		var ok bool
		if batch, ok = c.Next(batch); !ok {
			return
		}
		err := t.commit(batch)
		for _, r := range batch {
			r.reply <- err
		}
	}
}

func (t *Tokens) commit(batch []auditReq) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tx, err := t.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	defer tx.Rollback()
	stmt := tx.StmtContext(ctx, t.insAudit)
	defer stmt.Close()
	for _, r := range batch {
		a := r.rec
		if _, err := stmt.ExecContext(ctx, a.Time.UnixNano(), a.RequestID, a.Token, string(a.Role), a.Action, a.Target, a.Status, a.Outcome); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// AuditFilter selects audit records.
type AuditFilter struct {
	Since  time.Time
	Action string
	Limit  int // 0: 1000
}

// AuditLog returns audit records in time order.
func (t *Tokens) AuditLog(ctx context.Context, f AuditFilter) ([]AuditRecord, error) {
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
	rows, err := t.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	defer rows.Close()
	out := []AuditRecord{}
	for rows.Next() {
		var a AuditRecord
		var ts int64
		if err := rows.Scan(&ts, &a.RequestID, &a.Token, &a.Role, &a.Action, &a.Target, &a.Status, &a.Outcome); err != nil {
			return nil, err
		}
		a.Time = time.Unix(0, ts).UTC()
		out = append(out, a)
	}
	return out, rows.Err()
}
