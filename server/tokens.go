package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/wardgate/wardgate/store"
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

// TokenStore is what Tokens keeps its tokens and audit records in.
type TokenStore interface {
	store.Tokens
	store.Audit
	Ping(ctx context.Context) error
}

// Tokens authenticates API tokens, kept in a TokenStore as their SHA-256
// (never the token), and writes the audit trail there. Audit records are
// group-committed by the store: concurrent calls share one durable write.
type Tokens struct {
	st TokenStore

	mu    sync.RWMutex
	cache map[[32]byte]cachedPrincipal
	// fresh, when set and false, says another replica's token change may
	// be missing: the cache is not used (see Follow).
	fresh func() bool
}

// Follow makes the cache answer only while fresh says so (replicas on
// one store: gate.Pipeline.Fresh); Forget is then called for every token
// change another replica makes. Call it before the first Authenticate.
func (t *Tokens) Follow(fresh func() bool) { t.fresh = fresh }

// Forget drops every cached answer (a token was created or revoked
// elsewhere).
func (t *Tokens) Forget() {
	t.mu.Lock()
	clear(t.cache)
	t.mu.Unlock()
}

type cachedPrincipal struct {
	p   Principal
	ok  bool
	exp time.Time
}

// tokenCacheTTL bounds how long a revoked token keeps working in a running
// server (and how long an unknown token stays unknown) when it was revoked
// by another process (replicas on PostgreSQL follow each other's changes
// instead: Follow).
const tokenCacheTTL = 10 * time.Second

// NewTokens authenticates the tokens kept in st and audits into it.
func NewTokens(st TokenStore) *Tokens {
	return &Tokens{st: st, cache: map[[32]byte]cachedPrincipal{}}
}

// Ping checks the store answers.
func (t *Tokens) Ping(ctx context.Context) error { return t.st.Ping(ctx) }

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
	err := t.st.PutToken(ctx, store.Token{Hash: hex.EncodeToString(h[:]), Name: name, Role: string(role), Created: time.Now().UTC()})
	switch {
	case errors.Is(err, store.ErrExists):
		return "", fmt.Errorf("a token named %q exists", name)
	case err != nil:
		return "", fmt.Errorf("tokens: %w", err)
	}
	return Secret(secret), nil
}

// Revoke revokes the token called name.
func (t *Tokens) Revoke(ctx context.Context, name string) error {
	switch err := t.st.RevokeToken(ctx, name); {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("no token named %q", name)
	case err != nil:
		return fmt.Errorf("tokens: %w", err)
	}
	t.mu.Lock()
	clear(t.cache)
	t.mu.Unlock()
	return nil
}

// List describes every token.
func (t *Tokens) List(ctx context.Context) ([]TokenInfo, error) {
	ts, err := t.st.ListTokens(ctx)
	if err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	out := make([]TokenInfo, len(ts))
	for i, tk := range ts {
		out[i] = TokenInfo{Name: tk.Name, Role: Role(tk.Role), Created: tk.Created, Revoked: tk.Revoked}
	}
	return out, nil
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
	if hit && now.Before(c.exp) && (t.fresh == nil || t.fresh()) {
		if !c.ok {
			return Principal{}, ErrUnauthenticated
		}
		return c.p, nil
	}
	tk, err := t.st.TokenByHash(ctx, hex.EncodeToString(h[:]))
	p, revoked := Principal{Name: tk.Name, Role: Role(tk.Role)}, tk.Revoked
	switch {
	case errors.Is(err, store.ErrNotFound):
		p, revoked = Principal{}, true
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

// Audit records rec durably (it returns once the record is committed, or
// as soon as ctx ends).
func (t *Tokens) Audit(ctx context.Context, rec AuditRecord) error {
	return t.st.Audit(ctx, store.AuditRecord{Time: rec.Time, RequestID: rec.RequestID, Token: rec.Token, Role: string(rec.Role),
		Action: rec.Action, Target: rec.Target, Status: rec.Status, Outcome: rec.Outcome})
}

// ExpectAudit announces an audit record on its way (an admission being
// decided): the group commit waits for it, up to its linger, rather than
// commit just before it comes. Call the returned func once Audit has
// returned or will not be called.
func (t *Tokens) ExpectAudit() (done func()) { return t.st.ExpectAudit() }

// AuditFilter selects audit records.
type AuditFilter struct {
	Since  time.Time
	Action string
	Limit  int // 0: 1000
}

// AuditLog returns audit records in time order.
func (t *Tokens) AuditLog(ctx context.Context, f AuditFilter) ([]AuditRecord, error) {
	recs, err := t.st.AuditLog(ctx, store.AuditFilter{Since: f.Since, Action: f.Action, Limit: f.Limit})
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	out := make([]AuditRecord, len(recs))
	for i, a := range recs {
		out[i] = AuditRecord{Time: a.Time, RequestID: a.RequestID, Token: a.Token, Role: Role(a.Role), Action: a.Action, Target: a.Target, Status: a.Status, Outcome: a.Outcome}
	}
	return out, nil
}
