package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/Masterminds/semver/v3"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/wardgate/wardgate/trust"
)

// Decisions, as Answer.Decision and the "decision" audit annotation.
const (
	DecisionAllow     = "allow"     // every image checked was allowed
	DecisionDeny      = "deny"      // an image was refused: not admitted
	DecisionWarn      = "warn"      // an image was refused in a warn-only namespace: admitted with warnings
	DecisionExempt    = "exempt"    // the namespace is exempt: admitted unchecked
	DecisionUnhandled = "unhandled" // a kind the webhook does not check: admitted with a warning
	DecisionSkipped   = "skipped"   // an operation that runs nothing new (DELETE, CONNECT, no new image)
	DecisionPinned    = "pinned"    // mutate: images pinned to digests
	DecisionUnchanged = "unchanged" // mutate: nothing to pin
)

// Annotation keys of AdmissionResponse.auditAnnotations (the API server
// prefixes them with the webhook's name).
const (
	AnnotationDecision   = "decision"
	AnnotationLogIndexes = "log-indexes"
	AnnotationVerdicts   = "verdicts"
)

// Answer is the answer to one review, with what the server logs and
// audits.
type Answer struct {
	// Review is the AdmissionReview to send back.
	Review *admissionv1.AdmissionReview
	// Decision is one of the Decision constants.
	Decision string
	// Workload names what was reviewed: k8s/<namespace>/<kind>/<name>.
	Workload string
}

// ImageVerdict is one image's part in a validating answer, as the
// "verdicts" audit annotation lists it.
type ImageVerdict struct {
	Image    string   `json:"image"`
	Digest   string   `json:"digest,omitempty"`
	Allowed  bool     `json:"allowed"`
	Codes    []string `json:"codes,omitempty"`
	LogIndex *uint64  `json:"logIndex,omitempty"`
}

// review is one decoded request.
type review struct {
	req      *admissionv1.AdmissionRequest
	mode     trust.NamespaceMode
	workload string
	handled  bool
	ctrs     []container
	old      map[string]string // on UPDATE: container name -> previous image
	oldRefs  map[string]bool   // on UPDATE: every previous image
}

// decode reads an AdmissionReview as the API server sends it. Fields it
// does not know are ignored (a newer API server may send more); a body
// that is not JSON, not an admission.k8s.io/v1 AdmissionReview, has no
// request or uid, or an object of a handled kind that does not decode is a
// ReviewError.
func decode(k *trust.Kubernetes, body []byte) (*review, error) {
	var rv admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &rv); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return nil, reviewErrorf("malformed JSON at byte %d", se.Offset)
		case errors.As(err, &te):
			return nil, reviewErrorf("field %q must be %s", te.Field, te.Type.Kind())
		}
		return nil, reviewErrorf("malformed JSON: %v", err)
	}
	if gv := admissionv1.SchemeGroupVersion.String(); rv.APIVersion != gv || rv.Kind != "AdmissionReview" {
		return nil, reviewErrorf("apiVersion %q kind %q: want %s AdmissionReview", rv.APIVersion, rv.Kind, gv)
	}
	req := rv.Request
	if req == nil || req.UID == "" {
		return nil, reviewErrorf("no request, or a request without uid")
	}
	r := &review{req: req, mode: k.NamespaceMode(req.Namespace)}
	name := req.Name
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		r.workload = workloadID(req.Namespace, req.Kind.Kind, name)
		return r, nil
	}
	if len(req.Object.Raw) == 0 {
		return nil, reviewErrorf("%s of %s without an object", req.Operation, req.Kind.Kind)
	}
	gvk := schema.GroupVersionKind{Group: req.Kind.Group, Version: req.Kind.Version, Kind: req.Kind.Kind}
	spec, meta, pointer, ok, err := podSpecOf(gvk, req.Object.Raw)
	if err != nil {
		return nil, reviewErrorf("object: %v", err)
	}
	if !ok {
		r.workload = workloadID(req.Namespace, req.Kind.Kind, name)
		return r, nil
	}
	r.handled = true
	if name == "" {
		name = meta.Name
	}
	if name == "" && meta.GenerateName != "" {
		name = meta.GenerateName + "*"
	}
	r.workload = workloadID(req.Namespace, req.Kind.Kind, name)
	r.ctrs = containers(spec, pointer)
	if req.Operation == admissionv1.Update && len(req.OldObject.Raw) > 0 {
		ospec, _, _, _, err := podSpecOf(gvk, req.OldObject.Raw)
		if err != nil {
			return nil, reviewErrorf("oldObject: %v", err)
		}
		r.old, r.oldRefs = map[string]string{}, map[string]bool{}
		for _, c := range containers(ospec, "") {
			r.old[c.name] = c.image
			r.oldRefs[c.image] = true
		}
	}
	return r, nil
}

func workloadID(ns, kind, name string) string {
	if ns == "" {
		ns = "-"
	}
	if name == "" {
		name = "-"
	}
	return "k8s/" + ns + "/" + kind + "/" + name
}

func (rv *review) respond(allowed bool) *admissionv1.AdmissionReview {
	out := &admissionv1.AdmissionReview{Response: &admissionv1.AdmissionResponse{UID: rv.req.UID, Allowed: allowed}}
	out.APIVersion, out.Kind = admissionv1.SchemeGroupVersion.String(), "AdmissionReview"
	return out
}

func dryRun(req *admissionv1.AdmissionRequest) bool { return req.DryRun != nil && *req.DryRun }

// installedVersion is the version the image in container c replaces, when
// the old and new tags of the same repository are both versions.
func (rv *review) installedVersion(c container, now ref) string {
	old, ok := rv.old[c.name]
	if !ok || now.tag == "" {
		return ""
	}
	o, err := parseRef(old)
	if err != nil || o.tag == "" || o.repository() != now.repository() {
		return ""
	}
	if _, err := semver.NewVersion(o.tag); err != nil {
		return ""
	}
	if _, err := semver.NewVersion(now.tag); err != nil {
		return ""
	}
	return o.tag
}

// check is one image to decide: the containers naming it, what it
// resolved to, and the answer.
type check struct {
	image     string
	installed string
	res       resolved
	verdict   *Verdict
	refuse    *Reason
}

// Recorder keeps what the server records of a validating review (its
// audit record): the workload and the decision (one of the Decision
// constants).
type Recorder func(ctx context.Context, workload, decision string) error

// recording calls a Recorder for one review: with the answer as decided,
// at the same time as the gate writes the verdicts (one group commit for
// both), and again at the end only when the final answer's decision is
// another (a verdict that could not be logged turns an allow into a deny).
type recording struct {
	fn       Recorder
	mu       sync.Mutex
	decision string // the decision recorded, "" before
	closed   bool   // the final answer is recorded: later calls are late
}

func (rc *recording) record(ctx context.Context, workload, decision string) error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.fn == nil || rc.closed {
		return nil
	}
	if err := rc.fn(ctx, workload, decision); err != nil {
		return err
	}
	rc.decision = decision
	return nil
}

// final records a when its decision is not the one recorded already.
func (rc *recording) final(ctx context.Context, a *Answer) error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.closed = true
	if rc.fn == nil || rc.decision == a.Decision {
		return nil
	}
	if err := rc.fn(ctx, a.Workload, a.Decision); err != nil {
		return err
	}
	rc.decision = a.Decision
	return nil
}

// Validate answers a validating AdmissionReview: every image of the
// workload is resolved, evaluated once per digest and decided for the
// workload; the workload is admitted when every image is, or when its
// namespace is warn-only or exempt. The answer comes within the deadline:
// an image not decided by then is refused as deadline-exceeded. err is a
// *ReviewError when body is not a review it can read, or record's error.
//
// record, when not nil, is called with the answer: when images went to
// the gate, with the answer as decided, while the gate writes their
// verdicts (so the store commits them together), and once more at the end
// only if the final answer's decision differs; otherwise once, at the end.
func (r *Reviewer) Validate(ctx context.Context, k *trust.Kubernetes, body []byte, record Recorder) (*Answer, error) {
	rv, err := decode(k, body)
	if err != nil {
		return nil, err
	}
	req := rv.req
	ans := &Answer{Workload: rv.workload}
	rc := &recording{fn: record}
	switch {
	case req.Operation != admissionv1.Create && req.Operation != admissionv1.Update:
		ans.Review, ans.Decision = rv.respond(true), DecisionSkipped
	case !rv.handled:
		ans.Review, ans.Decision = rv.respond(true), DecisionUnhandled
		ans.Review.Response.Warnings = []string{fmt.Sprintf("wardgate does not check %s (%s); admitted unchecked", req.Kind.Kind, req.Kind.Group+"/"+req.Kind.Version)}
	case rv.mode == trust.NamespaceExempt:
		ans.Review, ans.Decision = rv.respond(true), DecisionExempt
	default:
		r.validate(ctx, k, rv, ans, rc)
	}
	if ans.Review.Response.AuditAnnotations == nil {
		ans.Review.Response.AuditAnnotations = map[string]string{}
	}
	ans.Review.Response.AuditAnnotations[AnnotationDecision] = ans.Decision
	if err := rc.final(ctx, ans); err != nil {
		return nil, err
	}
	return ans, nil
}

func (r *Reviewer) validate(ctx context.Context, k *trust.Kubernetes, rv *review, ans *Answer, rc *recording) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.deadline)
	defer cancel()
	// One check per distinct image that is new: on UPDATE an image the old
	// object already ran was admitted with it, and is not decided again
	// (a finalizer or label change must not be refused for it).
	var checks []*check
	byImage := map[string]*check{}
	for _, c := range rv.ctrs {
		if rv.oldRefs[c.image] {
			continue
		}
		ch := byImage[c.image]
		if ch == nil {
			ch = &check{image: c.image}
			byImage[c.image] = ch
			checks = append(checks, ch)
		}
		if rf, err := parseRef(c.image); err == nil && ch.installed == "" {
			ch.installed = rv.installedVersion(c, rf)
		}
	}
	if len(checks) == 0 {
		ans.Review, ans.Decision = rv.respond(true), DecisionSkipped
		return
	}
	if len(checks) > MaxImages {
		ans.Review, ans.Decision = rv.respond(rv.mode == trust.NamespaceWarn), DecisionDeny
		ans.Review.Response.Result = forbidden(fmt.Sprintf("wardgate refused %s: %d images, more than the %d it checks in one workload", rv.workload, len(checks), MaxImages))
		return
	}
	// First each image is resolved and, when the gate has not evaluated
	// it yet, evaluated: concurrently, as a registry or an evaluation may
	// be slow.
	done := make(chan int, len(checks))
	for i, ch := range checks {
		go func() {
			r.prepare(ctx, k, ch)
			done <- i
		}()
	}
	finished := make([]bool, len(checks))
	for n := 0; n < len(checks); n++ {
		select {
		case i := <-done:
			finished[i] = true
			continue
		case <-ctx.Done():
		}
		break
	}
	// Checks still running past the deadline are refused; their goroutines
	// see the cancelled context and end, and are no longer read.
	results := make([]check, len(checks))
	for i, ch := range checks {
		if finished[i] {
			results[i] = *ch
			continue
		}
		results[i] = check{image: ch.image, refuse: &Reason{Code: CodeDeadlineExceeded,
			Message: fmt.Sprintf("no decision within wardgate's deadline of %s: the registry or the gate did not answer in time (an evaluation started goes on, and a retry finds it kept)", r.cfg.deadline)}}
	}
	// Then the gate admits every evaluated image at once: one log append
	// for the review's verdicts, and the review's record written with it.
	var idx []int
	var as []Admission
	for i, ch := range results {
		switch {
		case ch.refuse != nil:
		case ctx.Err() != nil:
			results[i].refuse = r.refusal(ctx, ch.res.img, ctx.Err())
		default:
			idx = append(idx, i)
			as = append(as, Admission{Image: ch.res.img, Workload: Workload{ID: rv.workload, DryRun: dryRun(rv.req), InstalledVersion: ch.installed}})
		}
	}
	if len(as) > 0 {
		decided := slices.Clone(results)
		record := func(ctx context.Context, got []Admitted) error {
			if slices.ContainsFunc(got, func(a Admitted) bool { return errors.Is(a.Err, ErrNotEvaluated) }) {
				return nil // decided again below, and recorded at the end
			}
			res := slices.Clone(decided)
			for j, i := range idx {
				r.apply(ctx, &res[i], got[j])
			}
			return rc.record(ctx, rv.workload, decisionOf(rv, res))
		}
		admitted := make(chan []Admitted, 1)
		go func() { admitted <- r.admit(ctx, as, record) }()
		select {
		case got := <-admitted:
			for j, i := range idx {
				r.apply(ctx, &results[i], got[j])
			}
		case <-ctx.Done():
			for _, i := range idx {
				results[i].refuse = r.refusal(ctx, results[i].res.img, ctx.Err())
			}
		}
	}
	r.compose(rv, results, ans)
}

// prepare resolves one image and has it evaluated when the gate has not
// evaluated it yet.
func (r *Reviewer) prepare(ctx context.Context, k *trust.Kubernetes, ch *check) {
	ch.res = r.resolve(ctx, k, ch.image)
	if ch.res.refuse != nil {
		ch.refuse = ch.res.refuse
		return
	}
	if img := ch.res.img; !r.gate.Evaluated(ctx, img) {
		if err := r.evaluate(ctx, img); err != nil {
			ch.refuse = r.refusal(ctx, img, err)
		}
	}
}

// admit has the gate admit as; an image whose kept evaluation went stale
// in between (a trust configuration reload) is evaluated again and
// admitted alone.
func (r *Reviewer) admit(ctx context.Context, as []Admission, record func(context.Context, []Admitted) error) []Admitted {
	got := r.gate.Admit(ctx, as, record)
	for j, a := range got {
		if !errors.Is(a.Err, ErrNotEvaluated) {
			continue
		}
		if err := r.evaluate(ctx, as[j].Image); err != nil {
			got[j].Err = err
			continue
		}
		got[j] = r.gate.Admit(ctx, as[j:j+1], nil)[0]
	}
	return got
}

// apply puts the gate's answer on one image into its check.
func (r *Reviewer) apply(ctx context.Context, ch *check, a Admitted) {
	if a.Err != nil {
		ch.refuse = r.refusal(ctx, ch.res.img, a.Err)
		return
	}
	v := a.Verdict
	ch.verdict = &v
}

// refusal is the reason an image the gate could not decide is refused.
func (r *Reviewer) refusal(ctx context.Context, img Image, err error) *Reason {
	switch {
	case ctx.Err() != nil:
		return &Reason{Code: CodeDeadlineExceeded, Message: fmt.Sprintf("no decision on %s within wardgate's deadline of %s; the evaluation goes on and a retry finds it", img.Digest, r.cfg.deadline)}
	case errors.Is(err, ErrOtherProduct):
		return &Reason{Code: CodeOtherProduct, Message: err.Error()}
	default:
		return &Reason{Code: CodeCouldNotEvaluate, Message: err.Error()}
	}
}

// decisionOf is the decision compose makes of checks.
func decisionOf(rv *review, checks []check) string {
	for _, ch := range checks {
		if ch.refuse != nil || ch.verdict == nil || !ch.verdict.Allowed {
			if rv.mode == trust.NamespaceWarn {
				return DecisionWarn
			}
			return DecisionDeny
		}
	}
	return DecisionAllow
}

// compose builds the validating answer from the checks.
func (r *Reviewer) compose(rv *review, checks []check, ans *Answer) {
	var refused []string
	var warnings []string
	var indexes []string
	verdicts := make([]ImageVerdict, 0, len(checks))
	for _, ch := range checks {
		iv := ImageVerdict{Image: ch.image}
		if ch.res.img.Digest != "" {
			iv.Digest = ch.res.img.Digest
		}
		var reasons []Reason
		switch {
		case ch.refuse != nil:
			reasons = []Reason{*ch.refuse}
		case ch.verdict != nil:
			iv.Allowed = ch.verdict.Allowed
			iv.LogIndex = ch.verdict.LogIndex
			if iv.LogIndex != nil {
				indexes = append(indexes, strconv.FormatUint(*iv.LogIndex, 10))
			}
			if !iv.Allowed {
				reasons = ch.verdict.Violations
				if len(reasons) == 0 {
					reasons = []Reason{{Code: CodeCouldNotEvaluate, Message: "the gate denied the image without a reason"}}
				}
			}
			for _, w := range ch.verdict.Warnings {
				warnings = append(warnings, clip(fmt.Sprintf("image %s: %s: %s", ch.image, w.Code, w.Message)))
			}
		}
		for _, rs := range reasons {
			iv.Codes = append(iv.Codes, rs.Code)
		}
		if !iv.Allowed {
			refused = append(refused, describe(ch, reasons))
		}
		verdicts = append(verdicts, iv)
	}
	allowed := len(refused) == 0
	ans.Decision = decisionOf(rv, checks) // what the review's record said
	if ans.Decision == DecisionWarn {
		for _, s := range refused {
			warnings = append(warnings, clip("wardgate would refuse (namespace "+rv.req.Namespace+" is warn-only): "+s))
		}
	}
	ans.Review = rv.respond(allowed || rv.mode == trust.NamespaceWarn)
	resp := ans.Review.Response
	if ans.Decision == DecisionDeny {
		resp.Result = forbidden(fmt.Sprintf("wardgate refused %d of %d images of %s: %s", len(refused), len(checks), rv.workload, strings.Join(refused, "; ")))
	}
	if len(warnings) > maxWarnings {
		warnings = append(warnings[:maxWarnings-1], fmt.Sprintf("and %d more warnings (the verdicts are in wardgate's log)", len(warnings)-maxWarnings+1))
	}
	resp.Warnings = warnings
	resp.AuditAnnotations = map[string]string{}
	if len(indexes) > 0 {
		resp.AuditAnnotations[AnnotationLogIndexes] = strings.Join(indexes, ",")
	}
	if b, err := json.Marshal(verdicts); err == nil {
		resp.AuditAnnotations[AnnotationVerdicts] = string(b)
	}
}

// describe names a refused image, its digest, its reason codes and the
// first reason's message.
func describe(ch check, reasons []Reason) string {
	codes := make([]string, len(reasons))
	for i, rs := range reasons {
		codes[i] = rs.Code
	}
	s := "image " + ch.image
	if d := ch.res.img.Digest; d != "" && !strings.HasSuffix(ch.image, d[strings.LastIndexByte(d, '@'):]) {
		s += " (" + d[strings.LastIndexByte(d, '@')+1:] + ")"
	}
	s += " [" + strings.Join(codes, ", ") + "]"
	if len(reasons) > 0 && reasons[0].Message != "" {
		s += ": " + reasons[0].Message
	}
	return s
}

// maxWarning bounds one warning and maxWarnings their number (the API
// server may truncate longer or more).
const (
	maxWarning  = 512
	maxWarnings = 32
)

func clip(s string) string {
	if len(s) <= maxWarning {
		return s
	}
	return s[:maxWarning-3] + "..."
}

func forbidden(msg string) *metav1.Status {
	return &metav1.Status{Status: metav1.StatusFailure, Code: http.StatusForbidden, Reason: metav1.StatusReasonForbidden, Message: msg}
}

// patchOp is one JSONPatch (RFC 6902) operation.
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value string `json:"value"`
}

// Mutate answers a mutating AdmissionReview: each image named by tag, from
// a registry the gate may fetch from and mapped to a product, is resolved
// to its digest and pinned to it (name:tag@sha256:...) with a JSONPatch, so
// the node runs the digest the validating webhook checks; an evaluation of
// each digest not yet evaluated is started. Mutate never refuses: images it
// cannot pin are left as they are, for the validating webhook to refuse.
// Exempt namespaces are not patched.
func (r *Reviewer) Mutate(ctx context.Context, k *trust.Kubernetes, body []byte) (*Answer, error) {
	rv, err := decode(k, body)
	if err != nil {
		return nil, err
	}
	req := rv.req
	ans := &Answer{Workload: rv.workload, Review: rv.respond(true), Decision: DecisionUnchanged}
	switch {
	case req.Operation != admissionv1.Create && req.Operation != admissionv1.Update:
		ans.Decision = DecisionSkipped
		return ans, nil
	case !rv.handled:
		ans.Decision = DecisionUnhandled
		return ans, nil
	case rv.mode == trust.NamespaceExempt:
		ans.Decision = DecisionExempt
		return ans, nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.deadline)
	defer cancel()
	type pin struct {
		c   container
		res resolved
	}
	pins := make([]pin, 0, len(rv.ctrs))
	for _, c := range rv.ctrs {
		if rf, err := parseRef(c.image); err == nil && rf.digest == "" {
			pins = append(pins, pin{c: c})
		}
	}
	if len(pins) > MaxImages {
		pins = pins[:0] // the validating webhook refuses it
	}
	done := make(chan struct{}, len(pins))
	for i := range pins {
		go func() {
			pins[i].res = r.resolve(ctx, k, pins[i].c.image)
			done <- struct{}{}
		}()
	}
	for range pins {
		select {
		case <-done:
			continue
		case <-ctx.Done():
		}
		return ans, nil // nothing pinned: the validating webhook decides
	}
	var ops []patchOp
	for _, p := range pins {
		if p.res.refuse != nil {
			continue
		}
		img := p.res.img
		ops = append(ops, patchOp{Op: "replace", Path: p.c.path, Value: p.res.ref.pinned(img.Digest[strings.LastIndexByte(img.Digest, '@')+1:])})
		r.start(ctx, img)
	}
	if len(ops) == 0 {
		return ans, nil
	}
	b, err := json.Marshal(ops)
	if err != nil {
		return nil, err
	}
	pt := admissionv1.PatchTypeJSONPatch
	ans.Review.Response.Patch, ans.Review.Response.PatchType, ans.Decision = b, &pt, DecisionPinned
	return ans, nil
}

// start begins img's evaluation, if it is not evaluated, without waiting.
func (r *Reviewer) start(ctx context.Context, img Image) {
	if !r.gate.Evaluated(ctx, img) {
		r.launch(img)
	}
}
