package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/wardgate/wardgate/evidence"
	"github.com/wardgate/wardgate/gate"
	"github.com/wardgate/wardgate/kube"
	"github.com/wardgate/wardgate/policy"
	"github.com/wardgate/wardgate/trust"
)

// KubernetesConfig configures the Kubernetes admission webhook routes
// (POST /v1/kubernetes/validate and /mutate, docs/kubernetes.md).
type KubernetesConfig struct {
	// Deadline is the time a review is answered within (default
	// kube.DefaultDeadline, 8 s: below the API server's 10 s).
	Deadline time.Duration
	// MaxReviewBytes bounds one AdmissionReview (default 8 MiB: the
	// object and the old object, each up to the API server's 3 MiB).
	MaxReviewBytes int64
	// TagTTL keeps each tag's resolution to a digest this long
	// (kube.WithTagTTL; default 0: the registry is asked on every review).
	TagTTL time.Duration
}

// DefaultMaxReviewBytes bounds an AdmissionReview body.
const DefaultMaxReviewBytes = 8 << 20

// WithKubernetes configures the admission webhook routes; without it they
// use the defaults.
func WithKubernetes(k KubernetesConfig) Option {
	return func(c *config) error {
		if k.Deadline < 0 || k.MaxReviewBytes < 0 || k.TagTTL < 0 {
			return errors.New("server: negative kubernetes deadline, review limit or tag ttl")
		}
		c.kube.TagTTL = k.TagTTL
		if k.Deadline > 0 {
			c.kube.Deadline = k.Deadline
		}
		if k.MaxReviewBytes > 0 {
			c.kube.MaxReviewBytes = k.MaxReviewBytes
		}
		return nil
	}
}

var kubeDefaults = KubernetesConfig{Deadline: kube.DefaultDeadline, MaxReviewBytes: DefaultMaxReviewBytes}

// kubeRoutes are the only routes the Kubernetes listener serves.
var kubeRoutes = []string{"/v1/kubernetes/validate", "/v1/kubernetes/mutate", "/healthz", "/readyz"}

func (s *Server) registerKubernetes(c KubernetesConfig) error {
	rv, err := kube.NewReviewer(kubeGate{s}, kube.WithRegistries(s.regs...), kube.WithDeadline(c.Deadline), kube.WithTagTTL(c.TagTTL),
		kube.WithEvaluations(s.limits.Evaluations, s.limits.EvaluateTimeout), kube.WithLogger(s.log.WithGroup("kubernetes")))
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	s.kube = rv
	// The route's own timeout is past the reviewer's deadline: the
	// reviewer answers a deny naming the deadline before it.
	o := routeOpts{roles: []Role{RoleKubernetes}, timeout: c.Deadline + 2*time.Second, body: c.MaxReviewBytes}
	s.handle("POST", "/v1/kubernetes/validate", s.postKubeValidate, o)
	s.handle("POST", "/v1/kubernetes/mutate", s.postKubeMutate, o)
	return nil
}

// closeKube stops the image evaluations the admission webhook started in
// the background (Close calls it).
func (s *Server) closeKube() {
	if s.kube != nil {
		s.kube.Close()
	}
}

func (s *Server) readReview(r *http.Request) ([]byte, error) {
	if mt := mediaType(r); mt != "application/json" {
		return nil, unsupported(r.Header.Get("Content-Type"), "application/json")
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err // MaxBytesError: 413; a slow body: 408
	}
	return b, nil
}

func (s *Server) postKubeValidate(w http.ResponseWriter, r *http.Request) error {
	st := state(r)
	// The review's audit record: written with the review's verdicts (the
	// same group commit) when images go to the gate, else at the end; a
	// second one when the final answer's decision differs.
	record := func(ctx context.Context, workload, decision string) error {
		if err := s.audit(r, st, workload, http.StatusOK, decision); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		return nil
	}
	return s.kubeReview(w, r, "validate", func(ctx context.Context, k *trust.Kubernetes, body []byte) (*kube.Answer, error) {
		return s.kube.Validate(ctx, k, body, record)
	})
}

func (s *Server) postKubeMutate(w http.ResponseWriter, r *http.Request) error {
	return s.kubeReview(w, r, "mutate", s.kube.Mutate)
}

type reviewFunc func(ctx context.Context, k *trust.Kubernetes, body []byte) (*kube.Answer, error)

func (s *Server) kubeReview(w http.ResponseWriter, r *http.Request, what string, review reviewFunc) error {
	st := state(r)
	body, err := s.readReview(r)
	if err != nil {
		return err
	}
	ans, err := review(r.Context(), &s.gate.Load().Trust().Kubernetes, body)
	var re *kube.ReviewError
	if errors.As(err, &re) {
		return badRequest("%s", re.Error())
	}
	if err != nil {
		return err
	}
	st.decision = ans.Decision
	if what == "validate" {
		s.metrics.decision("kubernetes", ans.Decision != kube.DecisionDeny, nil)
	}
	writeJSON(w, http.StatusOK, ans.Review)
	return nil
}

// kubeGate is the gate as the admission webhook sees it: the server's
// current gate and its kept evaluations.
type kubeGate struct{ s *Server }

var _ kube.Gate = kubeGate{}

func digestPart(ref string) string { return ref[strings.LastIndexByte(ref, '@')+1:] }

// Evaluated implements kube.Gate.
func (k kubeGate) Evaluated(ctx context.Context, img kube.Image) bool {
	rec, ok, err := k.s.deps.Records.Lookup(ctx, digestPart(img.Digest)) // kept by another replica, too
	return err == nil && ok && rec.Evidence.TrustConfigDigest == k.s.gate.Load().Trust().Digest()
}

// Evaluate implements kube.Gate: the same evaluation as POST /v1/updates
// with an image, kept in Records.
func (k kubeGate) Evaluate(ctx context.Context, img kube.Image) error {
	u := gate.Update{Source: img.Digest, Kind: evidence.KindImage, Vendor: img.Vendor, Product: img.Product, Version: img.Version}
	out, err := k.s.gate.Load().Evaluate(ctx, u)
	if out.Evaluated {
		if perr := k.s.deps.Records.Put(ctx, out); perr != nil {
			return fmt.Errorf("keep evaluation: %w", perr)
		}
		k.s.metrics.decision("evaluate", out.Decision.Allow, codesOf(out.Decision))
	}
	if err != nil {
		k.s.log.LogAttrs(ctx, slog.LevelWarn, "image evaluation could not decide", slog.String("image", img.Digest), slogErr(err))
		if ctx.Err() != nil {
			return fmt.Errorf("evaluating %s: %w", img.Digest, ctx.Err())
		}
		return fmt.Errorf("the gate could not evaluate %s; see the server log", img.Digest)
	}
	return nil
}

// Admit implements kube.Gate with the gate's device admission, all the
// images of a review in one gate.AdmitBatch (one log append): the workload
// is the device, the image's mapped device class its class. record goes
// with the verdicts' writes, announced to the audit's group committer so
// that one commit takes both.
func (k kubeGate) Admit(ctx context.Context, as []kube.Admission, record func(context.Context, []kube.Admitted) error) []kube.Admitted {
	g := k.s.gate.Load()
	got := make([]kube.Admitted, len(as))
	var reqs []gate.AdmitRequest
	var idx []int // reqs[j] is as[idx[j]]
	for i, a := range as {
		img, d := a.Image, digestPart(a.Image.Digest)
		rec, ok, err := k.s.deps.Records.Lookup(ctx, d) // kept by another replica, too
		if err != nil {
			got[i].Err = err
			continue
		}
		if !ok || rec.Evidence.TrustConfigDigest != g.Trust().Digest() {
			got[i].Err = kube.ErrNotEvaluated
			continue
		}
		if ar := rec.Evidence.Artifact; ar.Vendor != img.Vendor || ar.Product != img.Product {
			got[i].Err = fmt.Errorf("%w: %s was evaluated as %s/%s, the trust configuration maps %s to %s/%s", kube.ErrOtherProduct, d, ar.Vendor, ar.Product, img.Ref, img.Vendor, img.Product)
			continue
		}
		reqs = append(reqs, gate.AdmitRequest{Digest: d, DryRun: a.Workload.DryRun,
			Device: evidence.Device{ID: a.Workload.ID, Class: img.DeviceClass, InstalledVersion: a.Workload.InstalledVersion}})
		idx = append(idx, i)
	}
	if len(reqs) == 0 {
		return got
	}
	var rec func(context.Context, []policy.Decision) error
	if record != nil {
		audited := k.s.deps.Tokens.ExpectAudit()
		defer audited()
		rec = func(ctx context.Context, ds []policy.Decision) error {
			decided := slices.Clone(got)
			for j, d := range ds {
				decided[idx[j]] = kube.Admitted{Verdict: verdict(d, d.Allow, nil)}
			}
			defer audited()
			return record(ctx, decided)
		}
	}
	outs, errs := g.AdmitBatch(ctx, k.s.deps.Records, reqs, rec)
	for j, i := range idx {
		out, err := outs[j], errs[j]
		switch {
		case errors.Is(err, gate.ErrUnknownUpdate) || errors.Is(err, gate.ErrStaleEvaluation):
			got[i].Err = kube.ErrNotEvaluated
		case err != nil:
			id := ""
			if st, ok := ctx.Value(stateKey{}).(*reqState); ok {
				id = st.id
			}
			k.s.log.LogAttrs(ctx, slog.LevelError, "kubernetes admission failed closed", slog.String("request_id", id), slog.String("image", as[i].Image.Digest), slogErr(err))
			if ctx.Err() != nil {
				got[i].Err = ctx.Err()
			} else {
				got[i].Err = fmt.Errorf("the gate could not decide; quote request id %s", id)
			}
		default:
			got[i].Verdict = verdict(out.Decision, out.Evaluated && out.Decision.Allow, out.LogEntry)
		}
	}
	return got
}

func verdict(d policy.Decision, allowed bool, e *gate.LogRef) kube.Verdict {
	v := kube.Verdict{Allowed: allowed, Violations: reasons(d.Violations), Warnings: reasons(d.Warnings)}
	if e != nil {
		i := e.Index
		v.LogIndex = &i
	}
	return v
}

func reasons(vs []policy.Violation) []kube.Reason {
	out := make([]kube.Reason, len(vs))
	for i, v := range vs {
		out[i] = kube.Reason{Code: string(v.Code), Message: v.Message}
	}
	return out
}

// certPrincipal authenticates a request on the Kubernetes listener by its
// client certificate: one that the listener's client CA verified (the API
// server's) is the kubernetes role, for the routes that role may call.
func (s *Server) certPrincipal(r *http.Request, roles []Role) (Principal, bool) {
	if on, _ := r.Context().Value(kubeListenerKey{}).(bool); !on || r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || !slices.Contains(roles, RoleKubernetes) {
		return Principal{}, false
	}
	return Principal{Name: "mtls:" + r.TLS.VerifiedChains[0][0].Subject.CommonName, Role: RoleKubernetes}, true
}

type kubeListenerKey struct{}

// KubernetesHandler serves the admission webhook's routes, /healthz and
// /readyz, and nothing else, for a listener of their own (the API server
// reaches it through a Service). On it a client certificate verified by
// the listener's TLS configuration (KubernetesTLSConfig) authenticates as
// the kubernetes role; a kubernetes bearer token does too.
func (s *Server) KubernetesHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !slices.Contains(kubeRoutes, r.URL.Path) {
			st := &reqState{id: s.newID(), route: "kubernetes-unmatched"}
			w.Header().Set("X-Request-Id", st.id)
			start := time.Now()
			sw := &statusWriter{ResponseWriter: w}
			s.writeError(sw, r, st, errorf(http.StatusNotFound, "not-found", "no route %s on the Kubernetes listener", r.URL.Path))
			s.finish(r, st, sw.status, start)
			return
		}
		s.handler.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), kubeListenerKey{}, true)))
	})
}

// KubernetesHTTPServer is an http.Server for KubernetesHandler, with every
// timeout set a little past the review deadline.
func (s *Server) KubernetesHTTPServer(addr string, tlsConfig *tls.Config) *http.Server {
	d := s.kubeCfg.Deadline
	return &http.Server{
		Addr:              addr,
		Handler:           s.KubernetesHandler(),
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: s.limits.ReadHeaderTimeout,
		ReadTimeout:       d + 5*time.Second,
		WriteTimeout:      d + 10*time.Second,
		IdleTimeout:       s.limits.IdleTimeout,
		MaxHeaderBytes:    s.limits.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// KubernetesTLSConfig loads the webhook's serving certificate and key;
// with clientCA, a client certificate it signed authenticates as the
// kubernetes role (the API server's, see docs/kubernetes.md), and a client
// without one must present a kubernetes bearer token.
func KubernetesTLSConfig(certFile, keyFile, clientCA string) (*tls.Config, error) {
	c, err := TLSConfig(certFile, keyFile, "")
	if err != nil {
		return nil, err
	}
	if clientCA != "" {
		b, err := os.ReadFile(clientCA)
		if err != nil {
			return nil, fmt.Errorf("tls: kubernetes client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("tls: kubernetes client CA %s: no PEM certificate", clientCA)
		}
		c.ClientCAs, c.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	return c, nil
}
