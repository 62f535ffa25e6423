package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wardgate/wardgate/evidence"
)

// Evaluation is the kept evaluation of one update, by artifact digest:
// the gate's record (its evidence and decision, as JSON the store does not
// read) and what it is looked up by.
type Evaluation struct {
	Digest                   string
	Vendor, Product, Version string
	RecordedAt               time.Time
	// Record is the gate's kept record, JSON.
	Record []byte
}

// Validate checks the fields every kept evaluation must have.
func (e Evaluation) Validate() error {
	var errs []error
	if !evidence.IsDigest(e.Digest) {
		errs = append(errs, fmt.Errorf("evaluation: digest %q is not sha256:<64 hex>", e.Digest))
	}
	// The version may be unknown: an update refused before the gate
	// learnt it (from TUF metadata that was rolled back, say) is kept too.
	if e.Vendor == "" || e.Product == "" {
		errs = append(errs, errors.New("evaluation: vendor and product are required"))
	}
	if len(e.Record) == 0 {
		errs = append(errs, errors.New("evaluation: empty record"))
	}
	return errors.Join(errs...)
}

// Evaluations keeps the evaluation of every update, so that devices are
// admitted from it without evaluating again, after a restart too.
type Evaluations interface {
	// PutEvaluation keeps e, replacing the digest's previous evaluation.
	// It returns once e is durable.
	PutEvaluation(ctx context.Context, e Evaluation) error
	// Evaluation returns the evaluation of digest, or ErrNotFound.
	Evaluation(ctx context.Context, digest string) (Evaluation, error)
	// ReleaseDigests returns the digests evaluated under one vendor,
	// product and version, sorted; empty when there is none.
	ReleaseDigests(ctx context.Context, vendor, product, version string) ([]string, error)
	// ListEvaluations calls fn with every evaluation, by digest.
	ListEvaluations(ctx context.Context, fn func(Evaluation) error) error
}
