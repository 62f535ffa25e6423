package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Reason codes of the refusals the webhook makes itself, before or instead
// of a gate decision. The gate's own codes (unsigned, untrusted-signer,
// same-version-different-digest, ...) come from its policy. They are
// documented in docs/kubernetes.md and do not change silently.
const (
	// CodeInvalidImage: the image reference does not parse.
	CodeInvalidImage = "invalid-image"
	// CodeRegistryNotAllowed: the image's registry is not one the gate may
	// fetch from (serve --registry).
	CodeRegistryNotAllowed = "registry-not-allowed"
	// CodeImageUnmapped: no kubernetes.images entry of the trust
	// configuration maps the image's repository to a product.
	CodeImageUnmapped = "image-unmapped"
	// CodeImageUnresolved: the registry did not resolve the tag to a
	// digest (no such tag, registry error).
	CodeImageUnresolved = "image-unresolved"
	// CodeOtherProduct: the digest was evaluated before as another
	// product than the one the trust configuration maps it to.
	CodeOtherProduct = "evaluated-as-other-product"
	// CodeDeadlineExceeded: the answer could not be made within the
	// webhook's deadline.
	CodeDeadlineExceeded = "deadline-exceeded"
	// CodeCouldNotEvaluate: the gate could not decide (the same code as
	// the gate's fail-closed deny).
	CodeCouldNotEvaluate = "could-not-evaluate"
)

// Errors a Gate returns.
var (
	// ErrNotEvaluated: the image digest has no kept evaluation under the
	// gate's current trust configuration; Evaluate it first.
	ErrNotEvaluated = errors.New("kube: image not evaluated")
	// ErrOtherProduct: the digest's kept evaluation is of another vendor
	// or product than the image maps to.
	ErrOtherProduct = errors.New("kube: image evaluated as another product")
)

// ReviewError is a review the webhook cannot read (the server answers 400).
type ReviewError struct{ Msg string }

func (e *ReviewError) Error() string { return "admission review: " + e.Msg }

func reviewErrorf(format string, args ...any) error {
	return &ReviewError{Msg: fmt.Sprintf(format, args...)}
}

// Image is one image of a workload, resolved to its digest and mapped to
// a product.
type Image struct {
	// Ref is the reference as the workload names it.
	Ref string
	// Digest is registry/repository@sha256:<hex>: what is evaluated.
	Digest string
	// Vendor, Product and DeviceClass come from the trust configuration's
	// kubernetes.images mapping.
	Vendor, Product, DeviceClass string
	// Version is the tag the image was named by, or the digest when it was
	// named by digest alone.
	Version string
}

// Workload is what asks to run an image.
type Workload struct {
	// ID names the workload: k8s/<namespace>/<kind>/<name>.
	ID string
	// InstalledVersion is the version this image replaces (on UPDATE: the
	// same container's previous image of the same repository, when both
	// tags are versions); the gate's rollback rule compares them.
	InstalledVersion string
	// DryRun: decide and log as usual, but record nothing as installed.
	DryRun bool
}

// Reason is one reason code and its message.
type Reason struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Verdict is the gate's decision on one workload's use of one image.
type Verdict struct {
	Allowed    bool
	Violations []Reason
	Warnings   []Reason
	// LogIndex is the signed verdict's index in the log; nil when none was
	// logged.
	LogIndex *uint64
}

// Admission asks whether a workload may run an image.
type Admission struct {
	Image    Image
	Workload Workload
}

// Admitted is the gate's answer to one Admission: its verdict, or the
// error that kept it from deciding.
type Admitted struct {
	Verdict Verdict
	Err     error
}

// Gate is the gate as the webhook sees it. Implementations must be safe for
// concurrent use.
type Gate interface {
	// Evaluate evaluates an image digest (verification, SBOM, policy) and
	// keeps the evaluation, allowed or denied; it returns an error only
	// when no evaluation could be made (nothing is kept then).
	Evaluate(ctx context.Context, img Image) error
	// Admit decides, for each admission, whether its workload may run its
	// evaluated image (the kept evaluation, the device class, the current
	// fleet risk), and signs every verdict into the log in one append:
	// one log write per review, not one per image. record, when not nil,
	// is called once with the answers as decided, at the same time as the
	// verdicts are written (Admit waits for it), so that what the caller
	// keeps of the review is written with them; its error fails the
	// admissions closed. The answers are in the order of as; an answer's
	// Err is ErrNotEvaluated when its image has no kept evaluation,
	// ErrOtherProduct when it was evaluated as another product.
	Admit(ctx context.Context, as []Admission, record func(ctx context.Context, got []Admitted) error) []Admitted
	// Evaluated reports whether img has a kept evaluation under the
	// gate's current trust configuration (without deciding anything);
	// false when that cannot be told (it is then evaluated).
	Evaluated(ctx context.Context, img Image) bool
}

// Resolver resolves a tag to the digest it points to now
// ("sha256:<hex>").
type Resolver interface {
	Resolve(ctx context.Context, ref string) (string, error)
}

// Defaults.
const (
	// DefaultDeadline is the time a review is answered within: below the
	// API server's default webhook timeout of 10 s, so a slow registry is
	// a deny naming the timeout and not a failed call.
	DefaultDeadline = 8 * time.Second
	// DefaultEvaluateTimeout bounds one image evaluation, which goes on
	// after a review's deadline so that the next review finds it kept.
	DefaultEvaluateTimeout = 5 * time.Minute
	// DefaultEvaluations is how many image evaluations run at once.
	DefaultEvaluations = 2
	// MaxImages bounds the images of one workload.
	MaxImages = 256
)

type config struct {
	registries  []string
	resolver    Resolver
	tagTTL      time.Duration
	deadline    time.Duration
	evalTimeout time.Duration
	evaluations int
	log         *slog.Logger
	now         func() time.Time
}

// Option configures NewReviewer.
type Option func(*config) error

// WithRegistries names the registries images may come from (host or
// host:port, as in the reference; Docker Hub is index.docker.io). Images
// from any other registry are refused. Without it every image is.
func WithRegistries(hosts ...string) Option {
	return func(c *config) error {
		for _, h := range hosts {
			if h == "" || strings.ContainsAny(h, "/@ ") {
				return fmt.Errorf("kube: registry %q: want host or host:port", h)
			}
		}
		c.registries = append(c.registries, hosts...)
		return nil
	}
}

// WithResolver replaces the registry resolver (default: an HTTP HEAD of
// the manifest, anonymous, as the gate's verification fetches).
func WithResolver(r Resolver) Option {
	return func(c *config) error {
		if r == nil {
			return errors.New("kube: nil resolver")
		}
		c.resolver = r
		return nil
	}
}

// MaxTagTTL bounds WithTagTTL: a moved tag is seen at most this late.
const MaxTagTTL = 5 * time.Minute

// WithTagTTL keeps each tag's resolution to a digest for ttl (default 0:
// the registry is asked on every review). Within ttl a review of the tag
// is decided for the digest it named when it was resolved, without asking
// the registry; a tag moved meanwhile is seen once ttl has passed. A
// failed resolution is not kept.
func WithTagTTL(ttl time.Duration) Option {
	return func(c *config) error {
		if ttl < 0 || ttl > MaxTagTTL {
			return fmt.Errorf("kube: tag ttl %s: want from 0 to %s", ttl, MaxTagTTL)
		}
		c.tagTTL = ttl
		return nil
	}
}

// WithDeadline sets the time a review is answered within (default
// DefaultDeadline). Keep it below the webhook's timeoutSeconds.
func WithDeadline(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 || d > 30*time.Second {
			return fmt.Errorf("kube: deadline %s: want more than 0 and at most 30s (the API server's longest webhook timeout)", d)
		}
		c.deadline = d
		return nil
	}
}

// WithEvaluations bounds the image evaluations running at once and how
// long each may take.
func WithEvaluations(n int, timeout time.Duration) Option {
	return func(c *config) error {
		if n <= 0 || timeout <= 0 {
			return fmt.Errorf("kube: evaluations %d, timeout %s: want both positive", n, timeout)
		}
		c.evaluations, c.evalTimeout = n, timeout
		return nil
	}
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("kube: nil logger")
		}
		c.log = l
		return nil
	}
}

// Reviewer answers admission reviews. Build one with NewReviewer; it is
// safe for concurrent use. Close stops the evaluations it started.
type Reviewer struct {
	gate Gate
	cfg  config

	base   context.Context // evaluations run under it; Close cancels it
	cancel context.CancelFunc
	sem    chan struct{}
	wg     sync.WaitGroup

	mu       sync.Mutex
	inflight map[string]*evaluation // by digest
	closed   bool

	tags tagCache
}

// evaluation is one image evaluation shared by every review waiting for
// it; err is set before done is closed.
type evaluation struct {
	done chan struct{}
	err  error
}

// NewReviewer builds a reviewer over g.
func NewReviewer(g Gate, opts ...Option) (*Reviewer, error) {
	if g == nil {
		return nil, errors.New("kube: nil gate")
	}
	c := config{deadline: DefaultDeadline, evalTimeout: DefaultEvaluateTimeout, evaluations: DefaultEvaluations, log: slog.New(slog.DiscardHandler), now: time.Now}
	for _, o := range opts {
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	if c.resolver == nil {
		c.resolver = NewRegistryResolver(http.DefaultTransport)
	}
	base, cancel := context.WithCancel(context.Background())
	return &Reviewer{gate: g, cfg: c, base: base, cancel: cancel, sem: make(chan struct{}, c.evaluations), inflight: map[string]*evaluation{},
		tags: tagCache{ttl: c.tagTTL, m: map[string]tagEntry{}}}, nil
}

// Deadline is the time a review is answered within.
func (r *Reviewer) Deadline() time.Duration { return r.cfg.deadline }

// Close cancels the evaluations still running and waits for them; no new
// evaluation starts afterwards.
func (r *Reviewer) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
}

// errClosed is the evaluation error once the reviewer is closed.
var errClosed = errors.New("kube: the webhook is shutting down")

// evaluate has the gate evaluate img once: concurrent callers for the same
// digest share one evaluation. It runs under the reviewer's own context and
// timeout, not the caller's: a review that gives up at its deadline leaves
// it running, and the next review of the image finds it kept. A failed
// evaluation is forgotten once done, so the next review tries again.
func (r *Reviewer) evaluate(ctx context.Context, img Image) error {
	e := r.launch(img)
	select {
	case <-e.done:
		return e.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// launch returns img's evaluation in flight, starting one if there is
// none.
func (r *Reviewer) launch(img Image) *evaluation {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		e := &evaluation{done: make(chan struct{}), err: errClosed}
		close(e.done)
		return e
	}
	e := r.inflight[img.Digest]
	if e == nil {
		e = &evaluation{done: make(chan struct{})}
		r.inflight[img.Digest] = e
		r.wg.Add(1)
		go r.run(e, img)
	}
	return e
}

func (r *Reviewer) run(e *evaluation, img Image) {
	defer r.wg.Done()
	ctx, cancel := context.WithTimeout(r.base, r.cfg.evalTimeout)
	defer cancel()
	select {
	case r.sem <- struct{}{}:
		e.err = r.gate.Evaluate(ctx, img)
		<-r.sem
	case <-ctx.Done():
		e.err = fmt.Errorf("waiting for an evaluation slot: %w", ctx.Err())
	}
	if e.err != nil {
		r.cfg.log.LogAttrs(ctx, slog.LevelWarn, "image evaluation failed", slog.String("image", img.Digest), slog.Any("err", e.err))
	}
	r.mu.Lock()
	delete(r.inflight, img.Digest)
	r.mu.Unlock()
	close(e.done)
}

func (c *config) registryAllowed(host string) bool { return slices.Contains(c.registries, host) }

// maxTags bounds the tag cache; when it is full, expired entries are
// dropped, and if none is, all of them.
const maxTags = 4096

// tagCache keeps tag resolutions for a bounded time (WithTagTTL).
type tagCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]tagEntry
}

type tagEntry struct {
	digest string
	at     time.Time
}

// get returns the digest tag resolved to less than ttl before now.
func (c *tagCache) get(tag string, now time.Time) (string, bool) {
	if c.ttl <= 0 {
		return "", false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[tag]
	if !ok || now.Sub(e.at) >= c.ttl || now.Before(e.at) {
		return "", false
	}
	return e.digest, true
}

func (c *tagCache) put(tag, digest string, at time.Time) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxTags {
		for k, e := range c.m {
			if at.Sub(e.at) >= c.ttl {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxTags {
			clear(c.m)
		}
	}
	c.m[tag] = tagEntry{digest: digest, at: at}
}
