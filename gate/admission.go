package gate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/evidence"
	"github.com/wardgate/wardgate/internal/groupcommit"
	"github.com/wardgate/wardgate/policy"
)

// The second phase of the two-phase model. An update is evaluated once
// (Evaluate: signatures, SBOM, diff, drift, policy) and its evaluation is
// kept in Records; each device that asks for it is then admitted (Admit)
// from that record, the device's context and the update's current fleet
// risk, through the same policy engine, without verifying or scanning
// anything again.

// Errors of the admission phase. Admit turns each into the fail-closed
// could-not-evaluate deny; callers use errors.Is to tell them apart.
var (
	// ErrUnknownUpdate: no evaluation of the update is recorded.
	ErrUnknownUpdate = errors.New("gate: update not evaluated")
	// ErrAmbiguousRelease: a vendor/product/version names more than one
	// evaluated digest; the caller must ask by digest.
	ErrAmbiguousRelease = errors.New("gate: release names more than one evaluated digest")
	// ErrStaleEvaluation: the update was evaluated under another trust
	// configuration than the gate's (a reload changed it); it must be
	// evaluated again before any device is admitted.
	ErrStaleEvaluation = errors.New("gate: update evaluated under another trust configuration")
	// ErrInvalidDevice: the admission request does not name the device's
	// ID and class.
	ErrInvalidDevice = errors.New("gate: device id and class are required")
)

// AdmitRequest asks whether one device may install one evaluated update.
// The update is named by Digest, or else by Vendor, Product and Version.
type AdmitRequest struct {
	Digest                   string
	Vendor, Product, Version string
	Device                   evidence.Device
	// Record, when set, is called with the update's digest and the policy's
	// decision once it is made, at the same time as the log and
	// installation writes, to keep the caller's own record of it (the
	// server's audit trail): the answer waits for it, and its error fails
	// the admission closed like theirs do. It is not called when no
	// decision is made (unknown update, fleet store down, ...).
	Record func(ctx context.Context, digest string, d policy.Decision) error
	// DryRun decides and logs the verdict as usual but records no
	// installation (a Kubernetes dry run must have no side effects).
	DryRun bool
}

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

// Records keeps the evaluation of every update by artifact digest: in
// memory, and as one JSON file per digest (DIR/sha256-<hex>.json, written
// to a temporary file, synced and renamed into place, so a crash leaves
// the previous record or the new one, never half of one). A restarted
// server reads them all back.
//
// Records also memoises device-level decisions (see Admit). It outlives
// any one Gate: a reload swaps the gate, and the memo is dropped for it.
// Records is safe for concurrent use.
type Records struct {
	dir string

	mu        sync.RWMutex
	byDigest  map[string]*Record
	byRelease map[releaseKey][]string

	memoMu sync.RWMutex
	memo   map[memoKey]*memoEntry
}

// OpenRecords loads the records kept in dir, creating it if needed. A
// record that cannot be read is an error: the operator must look.
func OpenRecords(dir string) (*Records, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("records: %w", err)
	}
	r := &Records{dir: dir, byDigest: map[string]*Record{}, byRelease: map[releaseKey][]string{}, memo: map[memoKey]*memoEntry{}}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("records: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".tmp-") {
			_ = os.Remove(filepath.Join(dir, name)) // a write cut short by a crash
			continue
		}
		if !strings.HasPrefix(name, "sha256-") || !strings.HasSuffix(name, ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("records: %w", err)
		}
		var rec Record
		if err := json.Unmarshal(b, &rec); err != nil {
			return nil, fmt.Errorf("records: %s: %w", name, err)
		}
		if p, err := r.path(rec.Evidence.Artifact.Digest); err != nil || filepath.Base(p) != name {
			return nil, fmt.Errorf("records: %s holds the record of %q", name, rec.Evidence.Artifact.Digest)
		}
		r.index(&rec)
	}
	return r, nil
}

func (r *Records) path(digest string) (string, error) {
	alg, hexd, ok := strings.Cut(digest, ":")
	if !ok || alg != "sha256" || len(hexd) != 64 || strings.Trim(hexd, "0123456789abcdef") != "" {
		return "", fmt.Errorf("records: bad digest %q", digest)
	}
	return filepath.Join(r.dir, "sha256-"+hexd+".json"), nil
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
func (r *Records) Put(out *Outcome) error {
	if out == nil || !out.Evaluated {
		return errors.New("records: only a completed evaluation is kept")
	}
	ev := out.Evidence
	ev.Device = nil
	rec := &Record{Evidence: ev, Decision: out.Decision, LogEntry: out.LogEntry, RecordedAt: ev.EvaluatedAt}
	p, err := r.path(ev.Artifact.Digest)
	if err != nil {
		return err
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("records: %w", err)
	}
	if err := writeAtomic(r.dir, p, b); err != nil {
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

func writeAtomic(dir, path string, b []byte) error {
	f, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync() // the rename itself must survive a crash
}

// Get returns the record of digest.
func (r *Records) Get(digest string) (*Record, bool) {
	r.mu.RLock()
	rec, ok := r.byDigest[digest]
	r.mu.RUnlock()
	return rec, ok
}

// List returns every record, ordered by digest.
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

// Find returns the record the request names.
func (r *Records) Find(req AdmitRequest) (*Record, error) {
	if req.Digest != "" {
		if rec, ok := r.Get(req.Digest); ok {
			return rec, nil
		}
		return nil, fmt.Errorf("%w: %s; evaluate it first (POST /v1/updates or wardgate admit)", ErrUnknownUpdate, req.Digest)
	}
	if req.Vendor == "" || req.Product == "" || req.Version == "" {
		return nil, fmt.Errorf("%w: name the update by digest, or by vendor, product and version", ErrUnknownUpdate)
	}
	r.mu.RLock()
	ds := r.byRelease[releaseKey{req.Vendor, req.Product, req.Version}]
	var rec *Record
	if len(ds) == 1 {
		rec = r.byDigest[ds[0]]
	}
	ds = slices.Clone(ds)
	r.mu.RUnlock()
	switch {
	case len(ds) == 0:
		return nil, fmt.Errorf("%w: %s/%s %s; evaluate it first", ErrUnknownUpdate, req.Vendor, req.Product, req.Version)
	case len(ds) > 1:
		slices.Sort(ds)
		return nil, fmt.Errorf("%w: %s/%s %s is %s; ask by digest", ErrAmbiguousRelease, req.Vendor, req.Product, req.Version, strings.Join(ds, ", "))
	}
	return rec, nil
}

// deviceSentinel stands in for the device ID when a decision is memoised
// for a device class: the default policies use the ID only in messages,
// where it is substituted back. It cannot be a real ID (it holds NULs).
const deviceSentinel = "\x00wardgate-device\x00"

var (
	defaultPolicyOnce   sync.Once
	defaultPolicyDigest string
)

// memoisable reports whether the engine runs only the default policies,
// whose decisions do not depend on the device ID except in messages. With
// user policies every admission is evaluated for its own device.
func (g *Gate) memoisable(ctx context.Context) bool {
	defaultPolicyOnce.Do(func() {
		if e, err := policy.New(context.WithoutCancel(ctx)); err == nil {
			defaultPolicyDigest = e.PolicyDigest()
		}
	})
	return defaultPolicyDigest != "" && g.engine.PolicyDigest() == defaultPolicyDigest
}

// Admit decides whether one device may install an evaluated update. It
// answers from the update's record in recs, with the device's context, the
// update's current fleet risk (the gate's FleetRisk, see WithFleet and
// RiskCache) and the evaluation time, through the gate's policy engine:
// the update's own violations, plus the device-level rules
// (wrong-device-class, rollback below the installed version) and the fleet
// rule (quarantined). An allowed admission is recorded as an installation
// intent (WithInstallations); every decision on a known update is signed
// into the log (WithLog).
//
// The clock has a resolution of one second: the evidence's evaluatedAt is
// the admission time truncated to the second. With the default policies,
// decisions are memoised per update, device class, installed version,
// second, fleet state and gate, so thousands of devices of one class cost
// one policy evaluation per second; the decision for each device is the
// one the engine gives for that device (the device ID enters the default
// policies only in messages). A quarantine changes the fleet state and so
// takes effect on the next admission.
//
// Admit fails closed: an unknown update, an update evaluated under another
// trust configuration, a fleet store that cannot be read, a log or
// installation store that cannot be written all yield the could-not-evaluate
// deny (Evaluated false) and an error saying why.
func (g *Gate) Admit(ctx context.Context, recs *Records, req AdmitRequest) (*Outcome, error) {
	// This admission's verdict is on its way to the log, and maybe its
	// installation to the installation store: their group commits wait for
	// them rather than commit just before they come (see Expecter).
	logged, installed := func() {}, func() {}
	if g.log != nil {
		logged = g.log.Expect()
	}
	if e, ok := g.installs.(Expecter); ok {
		installed = e.Expect()
	}
	defer logged()
	defer installed()
	now := g.now().UTC().Truncate(time.Second)
	out := &Outcome{}
	dev := req.Device
	out.Evidence.Device = &dev
	out.Evidence.Artifact.Digest = req.Digest
	if dev.ID == "" || dev.Class == "" {
		out.Decision = policy.CouldNotEvaluate(ErrInvalidDevice)
		return out, ErrInvalidDevice
	}
	if recs == nil {
		err := fmt.Errorf("%w: no records", ErrUnknownUpdate)
		out.Decision = policy.CouldNotEvaluate(err)
		return out, err
	}
	rec, err := recs.Find(req)
	if err != nil {
		out.Decision = policy.CouldNotEvaluate(err)
		return out, err
	}
	ev := rec.Evidence
	ev.EvaluatedAt = now
	ev.Device = &dev
	out.Evidence = ev
	u := Update{Source: ev.Artifact.Name, Kind: ev.Artifact.Kind, Vendor: ev.Artifact.Vendor, Product: ev.Artifact.Product, Version: ev.Artifact.Version, Device: &dev}
	if ev.TrustConfigDigest != g.trust.Digest() {
		return g.admitFail(ctx, out, u, fmt.Errorf("%w: %s was evaluated under %s, the gate runs %s; evaluate it again",
			ErrStaleEvaluation, ev.Artifact.Digest, ev.TrustConfigDigest, g.trust.Digest()))
	}
	if g.fleet != nil {
		f, err := g.fleet.Risk(ctx, ev.Artifact.Digest)
		if err != nil {
			return g.admitFail(ctx, out, u, fmt.Errorf("fleet risk: %w", err))
		}
		out.Evidence.Fleet = f
	}
	d, err := g.admitDecision(ctx, recs, out.Evidence)
	if err != nil {
		return g.admitFail(ctx, out, u, err)
	}
	out.Decision, out.Evaluated = d, true
	// The installation intent and the signed verdict are written to two
	// stores at once (each group-commits); the answer waits for both. An
	// intent whose verdict then fails to log is a device told no that is
	// recorded as meant to install: harmless, and visible.
	var ierr, rerr error
	var wg sync.WaitGroup
	if d.Allow && g.installs != nil && !req.DryRun {
		wg.Go(func() {
			ierr = g.recordInstallation(ctx, out, u, now)
			installed()
		})
	} else {
		installed()
	}
	if req.Record != nil {
		wg.Go(func() { rerr = req.Record(ctx, ev.Artifact.Digest, d) })
	}
	lerr := g.logVerdict(ctx, out, u)
	logged()
	wg.Wait()
	switch {
	case lerr != nil:
		out.Decision, out.Evaluated = policy.CouldNotEvaluate(fmt.Errorf("log verdict: %w", lerr)), false
		return out, errors.Join(lerr, ierr)
	case ierr != nil:
		out.Decision, out.Evaluated = policy.CouldNotEvaluate(fmt.Errorf("record installation: %w", ierr)), false
		return out, ierr
	case rerr != nil:
		out.Decision, out.Evaluated = policy.CouldNotEvaluate(fmt.Errorf("record decision: %w", rerr)), false
		return out, rerr
	}
	return out, nil
}

// Expecter is a store whose group commit can be told that a write is on
// its way (attest.Log, InstallationBatcher): Expect announces it, and the
// returned func says it was made or will not be.
type Expecter interface {
	Expect() (done func())
}

// admitFail is the could-not-evaluate deny for a known update, signed into
// the log when possible.
func (g *Gate) admitFail(ctx context.Context, out *Outcome, u Update, err error) (*Outcome, error) {
	out.Decision, out.Evaluated = policy.CouldNotEvaluate(err), false
	if lerr := g.logVerdict(ctx, out, u); lerr != nil {
		err = errors.Join(err, fmt.Errorf("log verdict: %w", lerr))
	}
	return out, err
}

// admitDecision evaluates the policy for ev (which names its device), or
// reuses the decision made for the same device class in the same second.
// Concurrent admissions that miss the memo together share one evaluation.
func (g *Gate) admitDecision(ctx context.Context, recs *Records, ev evidence.Evidence) (policy.Decision, error) {
	dev := ev.Device
	if !g.memoisable(ctx) {
		return g.engine.Evaluate(ctx, ev)
	}
	k := memoKey{ev.Artifact.Digest, dev.Class, dev.InstalledVersion}
	fresh := func(m *memoEntry) bool {
		return m != nil && m.gate == g && m.at.Equal(ev.EvaluatedAt) && sameFleet(m.fleet, ev.Fleet)
	}
	recs.memoMu.RLock()
	m := recs.memo[k]
	recs.memoMu.RUnlock()
	if !fresh(m) {
		recs.memoMu.Lock()
		if m = recs.memo[k]; !fresh(m) {
			if len(recs.memo) >= maxMemo {
				clear(recs.memo)
			}
			m = &memoEntry{gate: g, at: ev.EvaluatedAt, fleet: ev.Fleet, ready: make(chan struct{})}
			recs.memo[k] = m
			recs.memoMu.Unlock()
			anon := *dev
			anon.ID = deviceSentinel
			ev.Device = &anon
			m.decision, m.err = g.engine.Evaluate(context.WithoutCancel(ctx), ev) // shared: not one caller's cancellation
			close(m.ready)
			if m.err != nil {
				recs.memoMu.Lock()
				if recs.memo[k] == m {
					delete(recs.memo, k) // do not keep a failure (a cancelled caller's, say)
				}
				recs.memoMu.Unlock()
				return policy.Decision{}, m.err
			}
			return withDevice(m.decision, dev.ID), nil
		}
		recs.memoMu.Unlock()
	}
	select {
	case <-m.ready:
	case <-ctx.Done():
		return policy.Decision{}, ctx.Err()
	}
	if m.err != nil {
		return policy.Decision{}, m.err
	}
	return withDevice(m.decision, dev.ID), nil
}

// withDevice puts the device ID back into a memoised decision's messages.
// An allow has no violations and costs nothing.
func withDevice(d policy.Decision, id string) policy.Decision {
	d.Violations = substitute(d.Violations, id)
	d.Warnings = substitute(d.Warnings, id)
	return d
}

func substitute(vs []policy.Violation, id string) []policy.Violation {
	if len(vs) == 0 {
		return vs
	}
	out := make([]policy.Violation, len(vs))
	for i, v := range vs {
		v.Message = strings.ReplaceAll(v.Message, deviceSentinel, id)
		out[i] = v
	}
	return out
}

// sameFleet compares two fleet sections field by field (whatever fields a
// finding grows); clean updates have no findings and cost nothing.
func sameFleet(a, b evidence.Fleet) bool {
	return a.RiskState == b.RiskState && len(a.Findings) == len(b.Findings) && (len(a.Findings) == 0 || reflect.DeepEqual(a.Findings, b.Findings))
}

// Analyze runs the fleet detections over everything stored, e.g.
//
//	func(ctx context.Context) (egress.Report, error) { return egress.AnalyzeStore(ctx, db, inv, cfg) }
type Analyze func(ctx context.Context) (egress.Report, error)

// RiskCache is a FleetRisk that analyses the fleet telemetry once and
// answers every update's risk from that analysis until Invalidate is
// called (the caller does so whenever it stores telemetry) or the TTL
// passes (telemetry stored by another process). Once the TTL has passed,
// the next call starts a new analysis and, until it is done (for at most
// another TTL), callers are answered from the previous one instead of
// waiting: the hot admission path never stalls on a periodic refresh. An
// analysis in flight when Invalidate is called is not used by callers that
// arrive afterwards: a quarantine takes effect on the next admission, never
// served stale from the cache. Concurrent misses share one analysis.
type RiskCache struct {
	analyze Analyze
	ttl     time.Duration
	timeout time.Duration
	now     func() time.Time

	gen atomic.Uint64
	cur atomic.Pointer[riskSnapshot]

	mu   sync.Mutex
	call *riskCall
}

type riskSnapshot struct {
	gen    uint64
	at     time.Time
	report egress.Report
	fleets map[string]evidence.Fleet
}

type riskCall struct {
	gen  uint64
	done chan struct{}
	snap *riskSnapshot
	err  error
}

// NewRiskCache caches analyze's report for at most ttl. now is the clock
// (time.Now when nil).
func NewRiskCache(analyze Analyze, ttl time.Duration, now func() time.Time) (*RiskCache, error) {
	if analyze == nil {
		return nil, errors.New("gate: nil fleet analysis")
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("gate: risk cache TTL %s not positive", ttl)
	}
	if now == nil {
		now = time.Now
	}
	return &RiskCache{analyze: analyze, ttl: ttl, timeout: time.Minute, now: now}, nil
}

// Invalidate forgets the cached analysis: the next call analyses again.
func (c *RiskCache) Invalidate() {
	c.mu.Lock()
	c.gen.Add(1)
	c.cur.Store(nil)
	c.mu.Unlock()
}

// Generation counts the invalidations.
func (c *RiskCache) Generation() uint64 { return c.gen.Load() }

// Risk implements FleetRisk. An update no device is recorded as having
// installed is clean.
func (c *RiskCache) Risk(ctx context.Context, digest string) (evidence.Fleet, error) {
	s, err := c.snapshot(ctx)
	if err != nil {
		return evidence.Fleet{}, err
	}
	if f, ok := s.fleets[digest]; ok {
		return f, nil
	}
	return evidence.Fleet{RiskState: evidence.RiskClean}, nil
}

// Report returns the current analysis. The caller must not modify it.
func (c *RiskCache) Report(ctx context.Context) (egress.Report, error) {
	s, err := c.snapshot(ctx)
	if err != nil {
		return egress.Report{}, err
	}
	return s.report, nil
}

func (c *RiskCache) snapshot(ctx context.Context) (*riskSnapshot, error) {
	if s := c.cur.Load(); s != nil && s.gen == c.gen.Load() {
		switch age := c.now().Sub(s.at); {
		case age < c.ttl:
			return s, nil
		case age < 2*c.ttl:
			// Past the TTL but not invalidated: answer from it while one
			// analysis runs in the background, rather than hold every
			// admission until it is done.
			c.mu.Lock()
			c.start(s.gen)
			c.mu.Unlock()
			return s, nil
		}
	}
	c.mu.Lock()
	gen := c.gen.Load()
	if s := c.cur.Load(); s != nil && s.gen == gen && c.now().Sub(s.at) < c.ttl {
		c.mu.Unlock()
		return s, nil
	}
	call := c.start(gen)
	c.mu.Unlock()
	select {
	case <-call.done:
		return call.snap, call.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// start returns the analysis in flight for generation gen, starting one if
// there is none; the caller holds mu.
func (c *RiskCache) start(gen uint64) *riskCall {
	call := c.call
	if call == nil || call.gen != gen {
		call = &riskCall{gen: gen, done: make(chan struct{})}
		c.call = call
		go c.run(call)
	}
	return call
}

// run analyses on behalf of every caller waiting on call; it is not bound
// to any one caller's context.
func (c *RiskCache) run(call *riskCall) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	at := c.now()
	rep, err := c.analyze(ctx)
	if err != nil {
		call.err = fmt.Errorf("fleet analysis: %w", err)
	} else {
		s := &riskSnapshot{gen: call.gen, at: at, report: rep, fleets: make(map[string]evidence.Fleet, len(rep.Updates))}
		for _, u := range rep.Updates {
			f := rep.Fleet(u.Digest)
			if f.RiskState == "" {
				f.RiskState = evidence.RiskClean
			}
			s.fleets[u.Digest] = f
		}
		call.snap = s
	}
	c.mu.Lock()
	if err == nil && call.gen == c.gen.Load() {
		c.cur.Store(call.snap)
	}
	if c.call == call {
		c.call = nil
	}
	c.mu.Unlock()
	close(call.done)
}

// BatchInstallations is an installation store that records many
// installations in one transaction.
type BatchInstallations interface {
	RecordInstallations(ctx context.Context, ins []egress.Installation) error
}

// InstallationBatcher is an Installations that groups concurrent
// RecordInstallation calls into one write (group commit): each call returns
// once its installation is stored. When the destination implements
// BatchInstallations a batch is one transaction; otherwise installations
// are written one by one from a single goroutine.
type InstallationBatcher struct {
	dst    Installations
	coming groupcommit.Announcer
	reqs   chan installReq
	done   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

type installReq struct {
	in    egress.Installation
	reply chan error
}

// maxInstallBatch bounds one group commit.
const maxInstallBatch = 512

// NewInstallationBatcher starts a batcher writing to dst; Close stops it.
func NewInstallationBatcher(dst Installations) *InstallationBatcher {
	b := &InstallationBatcher{dst: dst, reqs: make(chan installReq, maxInstallBatch), done: make(chan struct{})}
	b.wg.Add(1)
	go b.run()
	return b
}

// RecordInstallation implements Installations.
func (b *InstallationBatcher) RecordInstallation(ctx context.Context, in egress.Installation) error {
	r := installReq{in: in, reply: make(chan error, 1)}
	select {
	case b.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-b.done:
		return errors.New("installations: closed")
	}
	select {
	case err := <-r.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Expect implements Expecter.
func (b *InstallationBatcher) Expect() (done func()) { return b.coming.Announce() }

// Close stops the batcher; calls after Close fail.
func (b *InstallationBatcher) Close() {
	b.once.Do(func() { close(b.done) })
	b.wg.Wait()
}

func (b *InstallationBatcher) run() {
	defer b.wg.Done()
	batch := make([]installReq, 0, maxInstallBatch)
	ins := make([]egress.Installation, 0, maxInstallBatch)
	bdst, batched := b.dst.(BatchInstallations)
	c := groupcommit.Collector[installReq]{Reqs: b.reqs, Done: b.done, Max: maxInstallBatch, Linger: groupcommit.DefaultLinger, Expected: b.coming.Count}
	for {
		var ok bool
		if batch, ok = c.Next(batch); !ok {
			return
		}
		ins = ins[:0]
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if batched {
			valid := batch[:0]
			for _, r := range batch {
				if err := r.in.Validate(); err != nil {
					r.reply <- err // one bad record must not fail the batch
					continue
				}
				valid = append(valid, r)
				ins = append(ins, r.in)
			}
			if len(valid) > 0 {
				err := bdst.RecordInstallations(ctx, ins)
				for _, r := range valid {
					r.reply <- err
				}
			}
		} else {
			for _, r := range batch {
				r.reply <- b.dst.RecordInstallation(ctx, r.in)
			}
		}
		cancel()
	}
}
