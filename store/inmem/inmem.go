// Package inmem is an in-memory store.Ledger, for tests of the packages that
// use a ledger. It keeps nothing across processes.
//
// Imports: the standard library and store. Must not import any database
// driver or other wardgate package.
package inmem

import (
	"context"
	"slices"
	"sync"

	"github.com/wardgate/wardgate/store"
)

var _ store.Ledger = (*Ledger)(nil)

// Ledger is an in-memory release ledger. The zero value is ready to use.
type Ledger struct {
	mu       sync.Mutex
	releases []store.Release
}

// New returns an empty ledger.
func New() *Ledger { return &Ledger{} }

func clone(r store.Release) store.Release {
	r.Codes = slices.Clone(r.Codes)
	if r.Codes == nil {
		r.Codes = []string{}
	}
	r.EvaluatedAt = r.EvaluatedAt.UTC()
	return r
}

// RecordRelease appends one evaluation.
func (l *Ledger) RecordRelease(ctx context.Context, r store.Release) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := r.Validate(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.releases = append(l.releases, clone(r))
	return nil
}

func (l *Ledger) filter(keep func(store.Release) bool) []store.Release {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := []store.Release{}
	for _, r := range l.releases {
		if keep(r) {
			out = append(out, clone(r))
		}
	}
	// Stable: equal times keep insertion order, as SQLite's rowid does.
	slices.SortStableFunc(out, func(a, b store.Release) int { return a.EvaluatedAt.Compare(b.EvaluatedAt) })
	return out
}

// LatestAdmitted returns the most recently admitted release of a product.
func (l *Ledger) LatestAdmitted(ctx context.Context, vendor, product string) (store.Release, error) {
	if err := ctx.Err(); err != nil {
		return store.Release{}, err
	}
	rs := l.filter(func(r store.Release) bool { return r.Vendor == vendor && r.Product == product && r.Allowed })
	if len(rs) == 0 {
		return store.Release{}, store.ErrNotFound
	}
	return rs[len(rs)-1], nil
}

// ReleaseByVersion returns every evaluation of one version, oldest first.
func (l *Ledger) ReleaseByVersion(ctx context.Context, vendor, product, version string) ([]store.Release, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return l.filter(func(r store.Release) bool {
		return r.Vendor == vendor && r.Product == product && r.Version == version
	}), nil
}

// Releases returns every evaluation of a product, oldest first.
func (l *Ledger) Releases(ctx context.Context, vendor, product string) ([]store.Release, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return l.filter(func(r store.Release) bool { return r.Vendor == vendor && r.Product == product }), nil
}
