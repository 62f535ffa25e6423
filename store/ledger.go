package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wardgate/wardgate/evidence"
)

// ErrInvalid is wrapped when a release to record is incomplete.
var ErrInvalid = errors.New("store: invalid release")

// Release is one evaluation of one release, as recorded in the ledger.
type Release struct {
	Vendor  string `json:"vendor"`
	Product string `json:"product"`
	Version string `json:"version"`
	// Digest is the artifact's digest, "sha256:<hex>".
	Digest string `json:"digest"`
	// Allowed is the decision.
	Allowed bool `json:"allowed"`
	// Codes are the reason codes of the violations, if denied.
	Codes []string `json:"codes"`
	// SBOMDigest is the digest of the SBOM evaluated, if any.
	SBOMDigest string `json:"sbomDigest,omitempty"`
	// PolicyDigest and TrustDigest identify the policy and configuration.
	PolicyDigest string `json:"policyDigest,omitempty"`
	TrustDigest  string `json:"trustDigest,omitempty"`
	// EvaluatedAt is when the decision was made.
	EvaluatedAt time.Time `json:"evaluatedAt"`
}

// Validate checks the fields every release must have.
func (r Release) Validate() error {
	var errs []error
	for _, f := range []struct{ name, v string }{{"vendor", r.Vendor}, {"product", r.Product}, {"version", r.Version}} {
		if f.v == "" {
			errs = append(errs, fmt.Errorf("%w: %s is empty", ErrInvalid, f.name))
		}
	}
	if !evidence.IsDigest(r.Digest) {
		errs = append(errs, fmt.Errorf("%w: digest %q is not sha256:<64 hex>", ErrInvalid, r.Digest))
	}
	if r.SBOMDigest != "" && !evidence.IsDigest(r.SBOMDigest) {
		errs = append(errs, fmt.Errorf("%w: sbom digest %q is not sha256:<64 hex>", ErrInvalid, r.SBOMDigest))
	}
	if r.EvaluatedAt.IsZero() {
		errs = append(errs, fmt.Errorf("%w: evaluation time is zero", ErrInvalid))
	}
	return errors.Join(errs...)
}

// Ledger records evaluated releases and answers the questions the gate asks
// before deciding. Implementations are safe for concurrent use.
type Ledger interface {
	// RecordRelease appends one evaluation, atomically.
	RecordRelease(ctx context.Context, r Release) error
	// LatestAdmitted returns the most recently admitted release of a
	// product, or ErrNotFound.
	LatestAdmitted(ctx context.Context, vendor, product string) (Release, error)
	// ReleaseByVersion returns every evaluation of one version, oldest
	// first; an empty slice when there is none.
	ReleaseByVersion(ctx context.Context, vendor, product, version string) ([]Release, error)
	// Releases returns every evaluation of a product, oldest first.
	Releases(ctx context.Context, vendor, product string) ([]Release, error)
}

// EvidenceLedger converts the evaluations of one version (from
// ReleaseByVersion) into the evidence document's ledger section.
func EvidenceLedger(rs []Release) evidence.Ledger {
	l := evidence.Ledger{Entries: make([]evidence.LedgerEntry, 0, len(rs))}
	for _, r := range rs {
		l.Entries = append(l.Entries, evidence.LedgerEntry{Digest: r.Digest, Allowed: r.Allowed, RecordedAt: r.EvaluatedAt})
	}
	return l
}

// EvidencePrevious converts a LatestAdmitted result into the evidence
// document's previous-release section.
func EvidencePrevious(r Release) *evidence.Release {
	return &evidence.Release{Version: r.Version, Digest: r.Digest, AdmittedAt: r.EvaluatedAt}
}
