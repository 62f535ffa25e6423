package store

import (
	"context"
	"time"
)

// Token is a stored API token: the SHA-256 of the secret (never the
// secret), its unique name and its role.
type Token struct {
	Hash    string // hex SHA-256 of the secret
	Name    string
	Role    string
	Created time.Time
	Revoked bool
}

// Tokens keeps API tokens.
type Tokens interface {
	// PutToken keeps t; ErrExists when its name is taken.
	PutToken(ctx context.Context, t Token) error
	// RevokeToken revokes the token called name; ErrNotFound when there is
	// none.
	RevokeToken(ctx context.Context, name string) error
	// TokenByHash returns the token with the hash, or ErrNotFound.
	TokenByHash(ctx context.Context, hash string) (Token, error)
	// ListTokens returns every token, by name.
	ListTokens(ctx context.Context) ([]Token, error)
}

// AuditRecord is one state-changing call: who, what, when, and how it ended.
type AuditRecord struct {
	Time      time.Time
	RequestID string
	Token     string // the token's name
	Role      string
	Action    string // the route, e.g. "POST /v1/admissions"
	Target    string // digest, device, telemetry batch digest
	Status    int
	Outcome   string // allow, deny, ingested, duplicate, error...
}

// AuditFilter selects audit records.
type AuditFilter struct {
	Since  time.Time
	Action string
	Limit  int // 0: 1000
}

// Audit keeps the audit trail.
type Audit interface {
	// Audit records rec (group-committed) and returns once it is durable.
	Audit(ctx context.Context, rec AuditRecord) error
	// ExpectAudit announces an Audit on its way.
	ExpectAudit() (done func())
	// AuditLog returns the records f selects, oldest first.
	AuditLog(ctx context.Context, f AuditFilter) ([]AuditRecord, error)
}
