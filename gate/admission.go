package gate

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/wardgate/wardgate/attest"
	"github.com/wardgate/wardgate/evidence"
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
	// ID and class, or names them with what cannot be an identifier
	// (evidence.CheckIdentifier).
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
	// them rather than commit just before they come (ExpectLog,
	// ExpectInstallation).
	logged, installed := func() {}, func() {}
	if g.log != nil {
		logged = g.log.Expect()
	}
	if g.installs != nil {
		installed = g.installs.ExpectInstallation()
	}
	defer logged()
	defer installed()
	now := g.now().UTC().Truncate(time.Second)
	out, u, known, err := g.prepareAdmit(ctx, recs, req, now)
	if err != nil {
		if known {
			return g.admitFail(ctx, out, u, err)
		}
		return out, err
	}
	d := out.Decision
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
		wg.Go(func() { rerr = req.Record(ctx, out.Evidence.Artifact.Digest, d) })
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

// AdmitBatch admits several requests at once (the images of one
// Kubernetes workload), each as Admit would, except for how the writes
// are made: every verdict, allowed, denied or could-not-evaluate, is
// signed and then appended to the log in one append (one write: all of
// them or none), beside the installations of the allowed ones, and record,
// when not nil, is called once with every request's decision at the same
// time as those writes (AdmitBatch waits for it). The store group-commits
// them together: one commit for the whole batch, not one per request.
// AdmitRequest.Record is not used.
//
// outs[i] and errs[i] are what Admit would answer for reqs[i]; it fails
// closed the same way. A log append that fails fails every request whose
// verdict it held; record's error fails every request that was decided.
func (g *Gate) AdmitBatch(ctx context.Context, recs *Records, reqs []AdmitRequest, record func(ctx context.Context, ds []policy.Decision) error) (outs []*Outcome, errs []error) {
	logged := func() {}
	if g.log != nil {
		logged = g.log.Expect()
	}
	installed := make([]func(), len(reqs))
	for i := range reqs {
		installed[i] = func() {}
		if g.installs != nil {
			installed[i] = g.installs.ExpectInstallation()
		}
	}
	defer func() {
		logged()
		for _, f := range installed {
			f()
		}
	}()
	now := g.now().UTC().Truncate(time.Second)
	outs, errs = make([]*Outcome, len(reqs)), make([]error, len(reqs))
	us := make([]Update, len(reqs))
	var items []attest.Item
	var itemOf []int // items[k] is the verdict of outs[itemOf[k]]
	for i, req := range reqs {
		out, u, known, err := g.prepareAdmit(ctx, recs, req, now)
		outs[i], us[i], errs[i] = out, u, err
		if err != nil {
			if !known {
				continue
			}
			out.Decision, out.Evaluated = policy.CouldNotEvaluate(err), false
		}
		if g.log == nil {
			continue
		}
		it, ok, serr := g.verdictItem(ctx, out, u)
		switch {
		case serr != nil && err == nil:
			out.Decision, out.Evaluated = policy.CouldNotEvaluate(fmt.Errorf("log verdict: %w", serr)), false
			errs[i] = serr
		case serr != nil:
			errs[i] = errors.Join(err, fmt.Errorf("log verdict: %w", serr))
		case ok:
			items, itemOf = append(items, it), append(itemOf, i)
		}
	}
	// The installation intents, the record and the signed verdicts are
	// written at once; the answer waits for all of them (as in Admit).
	var wg sync.WaitGroup
	ierrs := make([]error, len(reqs))
	for i, out := range outs {
		if errs[i] == nil && out.Decision.Allow && g.installs != nil && !reqs[i].DryRun {
			wg.Go(func() {
				ierrs[i] = g.recordInstallation(ctx, out, us[i], now)
				installed[i]()
			})
		} else {
			installed[i]()
		}
	}
	var rerr error
	if record != nil {
		ds := make([]policy.Decision, len(outs))
		for i, out := range outs {
			ds[i] = out.Decision
		}
		wg.Go(func() { rerr = record(ctx, ds) })
	}
	var lerr error
	var es []attest.Entry
	if len(items) > 0 {
		es, lerr = g.log.AppendBatch(ctx, items)
	}
	logged()
	wg.Wait()
	inLog := make([]bool, len(reqs))
	for k, i := range itemOf {
		inLog[i] = true
		if lerr == nil {
			g.logged(outs[i], es[k], items[k].Envelope)
		}
	}
	for i, out := range outs {
		switch {
		case errs[i] != nil:
			if inLog[i] && lerr != nil {
				errs[i] = errors.Join(errs[i], fmt.Errorf("log verdict: %w", lerr))
			}
		case inLog[i] && lerr != nil:
			out.Decision, out.Evaluated = policy.CouldNotEvaluate(fmt.Errorf("log verdict: %w", lerr)), false
			errs[i] = errors.Join(lerr, ierrs[i])
		case ierrs[i] != nil:
			out.Decision, out.Evaluated = policy.CouldNotEvaluate(fmt.Errorf("record installation: %w", ierrs[i])), false
			errs[i] = ierrs[i]
		case rerr != nil:
			out.Decision, out.Evaluated = policy.CouldNotEvaluate(fmt.Errorf("record decision: %w", rerr)), false
			errs[i] = rerr
		}
	}
	return outs, errs
}

// prepareAdmit makes the decision of one admission, without writing
// anything: the device checked, the update's record found, its fleet risk,
// the policy's decision and the rollout's hold. On success out holds the
// decision (Evaluated). On failure err says why; known reports whether the
// update is known (its could-not-evaluate verdict is then logged, see
// admitFail), and out's decision is set only when it is not.
func (g *Gate) prepareAdmit(ctx context.Context, recs *Records, req AdmitRequest, now time.Time) (out *Outcome, u Update, known bool, err error) {
	out = &Outcome{}
	dev := req.Device
	out.Evidence.Device = &dev
	out.Evidence.Artifact.Digest = req.Digest
	if dev.ID == "" || dev.Class == "" {
		out.Decision = policy.CouldNotEvaluate(ErrInvalidDevice)
		return out, u, false, ErrInvalidDevice
	}
	for _, f := range []struct{ name, v string }{{"id", dev.ID}, {"class", dev.Class}, {"installedVersion", dev.InstalledVersion}, {"segment", dev.Segment}} {
		if f.v == "" {
			continue
		}
		if err := evidence.CheckIdentifier(f.v); err != nil {
			err = fmt.Errorf("%w: device.%s %v", ErrInvalidDevice, f.name, err)
			out.Decision = policy.CouldNotEvaluate(err)
			return out, u, false, err
		}
	}
	if recs == nil {
		err := fmt.Errorf("%w: no records", ErrUnknownUpdate)
		out.Decision = policy.CouldNotEvaluate(err)
		return out, u, false, err
	}
	rec, err := recs.Find(ctx, req)
	if err != nil {
		out.Decision = policy.CouldNotEvaluate(err)
		return out, u, false, err
	}
	ev := rec.Evidence
	ev.EvaluatedAt = now
	ev.Device = &dev
	out.Evidence = ev
	u = Update{Source: ev.Artifact.Name, Kind: ev.Artifact.Kind, Vendor: ev.Artifact.Vendor, Product: ev.Artifact.Product, Version: ev.Artifact.Version, Device: &dev}
	if ev.TrustConfigDigest != g.trust.Digest() {
		return out, u, true, fmt.Errorf("%w: %s was evaluated under %s, the gate runs %s; evaluate it again",
			ErrStaleEvaluation, ev.Artifact.Digest, ev.TrustConfigDigest, g.trust.Digest())
	}
	if g.fleet != nil {
		f, err := g.fleet.Risk(ctx, ev.Artifact.Digest)
		if err != nil {
			return out, u, true, fmt.Errorf("fleet risk: %w", err)
		}
		out.Evidence.Fleet = f
	}
	d, err := g.admitDecision(ctx, recs, out.Evidence)
	if err != nil {
		return out, u, true, err
	}
	if g.rollout != nil {
		// Every admission moves the rollout on (a stop is recorded on the
		// first admission after a quarantine); only an allow is held.
		h, retry, err := g.rolloutGate(ctx, out.Evidence)
		if err != nil {
			return out, u, true, fmt.Errorf("rollout: %w", err)
		}
		if h != nil && d.Allow {
			d, out.Hold = holdDecision(d, dev.ID, h, retry), h
			if !retry.IsZero() {
				out.RetryAfter = &retry
			}
		}
	}
	out.Decision, out.Evaluated = d, true
	return out, u, true, nil
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
	if !g.memoisable(ctx) || !recs.cached() {
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
