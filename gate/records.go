package gate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wardgate/wardgate/evidence"
	"github.com/wardgate/wardgate/policy"
	"github.com/wardgate/wardgate/store"
)

// Record is the kept evaluation of one update: the evidence it was judged
// on (without a device) and the decision.
type Record struct {
	Evidence   evidence.Evidence `json:"evidence"`
	Decision   policy.Decision   `json:"decision"`
	LogEntry   *LogRef           `json:"logEntry,omitempty"`
	RecordedAt time.Time         `json:"recordedAt"`
}

type releaseKey struct{ vendor, product, version string }

// memoKey is what a device-level decision depends on besides the gate,
// the clock and the fleet state (held in memoEntry).
type memoKey struct{ digest, class, installed string }

// memoEntry is one memoised decision; decision and err are set before
// ready is closed.
type memoEntry struct {
	gate     *Gate
	at       time.Time
	fleet    evidence.Fleet
	ready    chan struct{}
	decision policy.Decision
	err      error
}

// maxMemo bounds the admission decision memo; it is cleared when full.
const maxMemo = 4096

// Records keeps the evaluation of every update by artifact digest. The
// store (store.Evaluations) keeps them; Records holds them in memory too,
// read back when it opens, so that the admission path does not go to the
// store for an update it knows. An update it does not know is looked up
// in the store (kept by another process) before it is called unknown.
//
// Records also memoises device-level decisions (see Admit). It outlives
// any one Gate: a reload swaps the gate, and the memo is dropped for it.
// Records is safe for concurrent use.
type Records struct {
	st store.Evaluations

	mu        sync.RWMutex
	byDigest  map[string]*Record
	byRelease map[releaseKey][]string

	memoMu sync.RWMutex
	memo   map[memoKey]*memoEntry

	// fresh, when set and false, says other replicas' changes may be
	// missing (Pipeline.Fresh): records are then read from the store and
	// the memo is not used.
	fresh func() bool
}

// cached reports whether what Records holds in memory may answer.
func (r *Records) cached() bool { return r.fresh == nil || r.fresh() }

// forget drops the record of digest (another replica kept a new one) and
// the memo.
func (r *Records) forget(digest string) {
	r.mu.Lock()
	if rec, ok := r.byDigest[digest]; ok {
		delete(r.byDigest, digest)
		a := rec.Evidence.Artifact
		k := releaseKey{a.Vendor, a.Product, a.Version}
		r.byRelease[k] = slices.DeleteFunc(r.byRelease[k], func(d string) bool { return d == digest })
		if len(r.byRelease[k]) == 0 {
			delete(r.byRelease, k)
		}
	}
	r.mu.Unlock()
	r.memoMu.Lock()
	clear(r.memo)
	r.memoMu.Unlock()
}

// refresh reads the record of digest from the store again (another
// replica kept a new one); when that fails, the record is dropped, to be
// read when next asked for.
func (r *Records) refresh(ctx context.Context, digest string) error {
	r.forget(digest)
	_, err := r.lookup(ctx, digest)
	return err
}

// reload reads every record from the store again, replacing what is held
// (changes may have been missed); when that fails, everything is dropped,
// each record to be read when next asked for. The memo is dropped.
func (r *Records) reload(ctx context.Context) error {
	byDigest, byRelease := map[string]*Record{}, map[releaseKey][]string{}
	fresh := &Records{byDigest: byDigest, byRelease: byRelease}
	err := r.st.ListEvaluations(ctx, func(e store.Evaluation) error {
		rec, err := decodeRecord(e)
		if err != nil {
			return err
		}
		fresh.index(rec)
		return nil
	})
	r.mu.Lock()
	if err != nil {
		clear(r.byDigest)
		clear(r.byRelease)
	} else {
		r.byDigest, r.byRelease = byDigest, byRelease
	}
	r.mu.Unlock()
	r.memoMu.Lock()
	clear(r.memo)
	r.memoMu.Unlock()
	return err
}

// OpenRecords reads every evaluation kept in st. A record that cannot be
// read is an error: the operator must look.
func OpenRecords(ctx context.Context, st store.Evaluations) (*Records, error) {
	r := &Records{st: st, byDigest: map[string]*Record{}, byRelease: map[releaseKey][]string{}, memo: map[memoKey]*memoEntry{}}
	err := st.ListEvaluations(ctx, func(e store.Evaluation) error {
		rec, err := decodeRecord(e)
		if err != nil {
			return err
		}
		r.index(rec)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("records: %w", err)
	}
	return r, nil
}

func decodeRecord(e store.Evaluation) (*Record, error) {
	var rec Record
	if err := json.Unmarshal(e.Record, &rec); err != nil {
		return nil, fmt.Errorf("evaluation of %s: %w", e.Digest, err)
	}
	if rec.Evidence.Artifact.Digest != e.Digest {
		return nil, fmt.Errorf("evaluation of %s holds the record of %q", e.Digest, rec.Evidence.Artifact.Digest)
	}
	return &rec, nil
}

// index adds rec to the maps; the caller holds mu or owns r.
func (r *Records) index(rec *Record) {
	a := rec.Evidence.Artifact
	if _, seen := r.byDigest[a.Digest]; !seen {
		k := releaseKey{a.Vendor, a.Product, a.Version}
		r.byRelease[k] = append(r.byRelease[k], a.Digest)
	}
	r.byDigest[a.Digest] = rec
}

// Put keeps the evaluation in out. Only a completed evaluation (Evaluated,
// with an artifact digest) is kept: an update that could not be evaluated
// stays unknown, and its devices are denied. Put returns once the record
// is durable.
func (r *Records) Put(ctx context.Context, out *Outcome) error {
	if out == nil || !out.Evaluated {
		return errors.New("records: only a completed evaluation is kept")
	}
	ev := out.Evidence
	ev.Device = nil
	rec := &Record{Evidence: ev, Decision: out.Decision, LogEntry: out.LogEntry, RecordedAt: ev.EvaluatedAt}
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("records: %w", err)
	}
	a := ev.Artifact
	if err := r.st.PutEvaluation(ctx, store.Evaluation{Digest: a.Digest, Vendor: a.Vendor, Product: a.Product, Version: a.Version, RecordedAt: rec.RecordedAt, Record: b}); err != nil {
		return fmt.Errorf("records: %w", err)
	}
	r.mu.Lock()
	r.index(rec)
	r.mu.Unlock()
	r.memoMu.Lock()
	clear(r.memo) // the decisions of the old record are void
	r.memoMu.Unlock()
	return nil
}

// Get returns the record of digest, as this process knows it.
func (r *Records) Get(digest string) (*Record, bool) {
	r.mu.RLock()
	rec, ok := r.byDigest[digest]
	r.mu.RUnlock()
	return rec, ok
}

// List returns every record this process knows, ordered by digest.
func (r *Records) List() []*Record {
	r.mu.RLock()
	out := make([]*Record, 0, len(r.byDigest))
	for _, rec := range r.byDigest {
		out = append(out, rec)
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b *Record) int { return strings.Compare(a.Evidence.Artifact.Digest, b.Evidence.Artifact.Digest) })
	return out
}

// Lookup returns the record of digest as Get does, or else from the store
// (kept by another process, a replica on the same store): false when
// there is none.
func (r *Records) Lookup(ctx context.Context, digest string) (*Record, bool, error) {
	rec, err := r.lookup(ctx, digest)
	return rec, rec != nil, err
}

// lookup returns the record of digest, from memory or else from the store
// (kept since by another process); nil when there is none.
func (r *Records) lookup(ctx context.Context, digest string) (*Record, error) {
	if rec, ok := r.Get(digest); ok && r.cached() {
		return rec, nil
	}
	e, err := r.st.Evaluation(ctx, digest)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("records: %w", err)
	}
	rec, err := decodeRecord(e)
	if err != nil {
		return nil, fmt.Errorf("records: %w", err)
	}
	r.mu.Lock()
	if old, ok := r.byDigest[digest]; ok {
		if oa, na := old.Evidence.Artifact, rec.Evidence.Artifact; oa.Vendor != na.Vendor || oa.Product != na.Product || oa.Version != na.Version {
			r.mu.Unlock()
			r.forget(digest) // re-evaluated under another release name
			r.mu.Lock()
		}
	}
	r.index(rec)
	r.mu.Unlock()
	return rec, nil
}

// Find returns the record the request names.
func (r *Records) Find(ctx context.Context, req AdmitRequest) (*Record, error) {
	if req.Digest != "" {
		rec, err := r.lookup(ctx, req.Digest)
		if err != nil || rec != nil {
			return rec, err
		}
		return nil, fmt.Errorf("%w: %s; evaluate it first (POST /v1/updates or wardgate admit)", ErrUnknownUpdate, req.Digest)
	}
	if req.Vendor == "" || req.Product == "" || req.Version == "" {
		return nil, fmt.Errorf("%w: name the update by digest, or by vendor, product and version", ErrUnknownUpdate)
	}
	k := releaseKey{req.Vendor, req.Product, req.Version}
	var ds []string
	if r.cached() {
		r.mu.RLock()
		ds = slices.Clone(r.byRelease[k])
		r.mu.RUnlock()
	}
	if len(ds) == 0 {
		var err error
		if ds, err = r.st.ReleaseDigests(ctx, req.Vendor, req.Product, req.Version); err != nil {
			return nil, fmt.Errorf("records: %w", err)
		}
	}
	switch {
	case len(ds) == 0:
		return nil, fmt.Errorf("%w: %s/%s %s; evaluate it first", ErrUnknownUpdate, req.Vendor, req.Product, req.Version)
	case len(ds) > 1:
		slices.Sort(ds)
		return nil, fmt.Errorf("%w: %s/%s %s is %s; ask by digest", ErrAmbiguousRelease, req.Vendor, req.Product, req.Version, strings.Join(ds, ", "))
	}
	rec, err := r.lookup(ctx, ds[0])
	if err == nil && rec == nil {
		err = fmt.Errorf("%w: %s", ErrUnknownUpdate, ds[0])
	}
	return rec, err
}
