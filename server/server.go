package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/wardgate/wardgate/attest"
	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/gate"
	"github.com/wardgate/wardgate/kube"
	"github.com/wardgate/wardgate/store"
)

// Deps are what the server serves. All are required but Inventory, which
// may return nil (no fleet inventory yet: telemetry is refused), and Ready.
type Deps struct {
	// Gate evaluates and admits; SwapGate replaces it (a reload).
	Gate *gate.Gate
	// Records keeps every evaluated update (the admission phase reads it).
	Records *gate.Records
	// Risk is the fleet analysis behind the gate's FleetRisk; the server
	// invalidates it whenever it stores telemetry.
	Risk *gate.RiskCache
	// Log is the verdict log (checkpoints, entries, evidence packs).
	Log *attest.Log
	// Telemetry stores ingested events.
	Telemetry egress.EventStore
	// Inventory maps telemetry to the fleet's devices.
	Inventory func() *egress.Inventory
	// Tokens authenticates bearer tokens and keeps the audit table.
	Tokens *Tokens
	// WorkDir holds uploads and exports while they are processed.
	WorkDir string
	// Ready is an extra readiness check for /readyz (stores the server
	// does not see); nil means none.
	Ready func(ctx context.Context) error
	// Replicas, when set, reports how this replica follows the others'
	// changes (gate.Pipeline.ReplicaStats), for the metrics.
	Replicas func() (gate.ReplicaStats, bool)
	// Commits, when set, reports the store's group committers (a
	// store.CommitReporter's CommitStats), for the metrics.
	Commits func() []store.CommitStats
}

// RateLimit is a token bucket: Rate requests per second, bursts of Burst.
type RateLimit struct {
	Rate  float64 `json:"rate" yaml:"rate"`
	Burst int     `json:"burst" yaml:"burst"`
}

// DefaultRateLimits are per token, by role: update servers admit whole
// fleets; everyone else calls rarely.
var DefaultRateLimits = map[Role]RateLimit{
	RoleCI:           {Rate: 5, Burst: 20},
	RoleUpdateServer: {Rate: 20000, Burst: 20000},
	RoleSensor:       {Rate: 50, Burst: 100},
	RoleAuditor:      {Rate: 50, Burst: 100},
	RoleAdmin:        {Rate: 20000, Burst: 20000},
	RoleKubernetes:   {Rate: 2000, Burst: 2000},
}

type config struct {
	log        *slog.Logger
	limits     Limits
	rates      map[Role]RateLimit
	registries []string
	console    http.Handler
	kube       KubernetesConfig
}

// Option configures New.
type Option func(*config) error

// WithLogger sets the logger (default: discard). The server logs one line
// per request.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("server: nil logger")
		}
		c.log = l
		return nil
	}
}

// WithRateLimits sets per-token rate limits by role (roles not named keep
// their defaults).
func WithRateLimits(m map[Role]RateLimit) Option {
	return func(c *config) error {
		for r, l := range m {
			if _, err := ParseRole(string(r)); err != nil {
				return fmt.Errorf("server: rate limit: %w", err)
			}
			if l.Rate <= 0 || l.Burst <= 0 {
				return fmt.Errorf("server: rate limit for %s: rate and burst must be positive", r)
			}
			c.rates[r] = l
		}
		return nil
	}
}

// WithRegistries names the registries POST /v1/updates may fetch images
// from (host or host:port, as in the image reference). Without it, image
// references are refused.
func WithRegistries(hosts ...string) Option {
	return func(c *config) error {
		for _, h := range hosts {
			if h == "" || strings.ContainsAny(h, "/@ ") {
				return fmt.Errorf("server: registry %q: want host or host:port", h)
			}
		}
		c.registries = append(c.registries, hosts...)
		return nil
	}
}

// WithConsole serves h, the web console, under /ui on the same listener.
// The console signs people in itself (sessions, not bearer tokens), so its
// requests pass no token check here; they get the request ID, the read
// deadline, the timeout, the metrics and the request log line of every
// route.
func WithConsole(h http.Handler) Option {
	return func(c *config) error {
		if h == nil {
			return errors.New("server: nil console")
		}
		c.console = h
		return nil
	}
}

// Route is one registered route: method, Go 1.22 pattern path, and the
// roles that may call it (nil: no token needed).
type Route struct {
	Method string
	Path   string
	Roles  []Role
}

// Server is the HTTP API.
type Server struct {
	deps     Deps
	gate     atomic.Pointer[gate.Gate]
	log      *slog.Logger
	limits   Limits
	rates    map[Role]RateLimit
	regs     []string
	mux      *http.ServeMux
	handler  http.Handler
	routes   []Route
	metrics  *metrics
	evalSem  chan struct{}
	upSem    chan struct{}
	exSem    chan struct{}
	conns    atomic.Pointer[connLimiter]
	scanMu   sync.Mutex
	scans    int // evaluations running (see scanStarted)
	done     chan struct{}
	closed   sync.Once
	limiters sync.Map // token name -> *rate.Limiter
	idPrefix string
	idSeq    atomic.Uint64
	kube     *kube.Reviewer
	kubeCfg  KubernetesConfig
	// traceIngest, when set (benchmarks, before serving), is told how
	// long each stored batch took to commit (its turn at the writer
	// included) and then to be included in an analysis.
	traceIngest func(stored int64, commit, analysis time.Duration)
}

// New builds the server.
func New(deps Deps, opts ...Option) (*Server, error) {
	c := config{log: slog.New(slog.DiscardHandler), limits: DefaultLimits, rates: map[Role]RateLimit{}, kube: kubeDefaults}
	for r, l := range DefaultRateLimits {
		c.rates[r] = l
	}
	for _, o := range opts {
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	var missing []string
	for _, m := range []struct {
		ok   bool
		name string
	}{{deps.Gate != nil, "Gate"}, {deps.Records != nil, "Records"}, {deps.Risk != nil, "Risk"}, {deps.Log != nil, "Log"},
		{deps.Telemetry != nil, "Telemetry"}, {deps.Tokens != nil, "Tokens"}, {deps.WorkDir != "", "WorkDir"}} {
		if !m.ok {
			missing = append(missing, m.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("server: missing dependencies: %s", strings.Join(missing, ", "))
	}
	if deps.Inventory == nil {
		deps.Inventory = func() *egress.Inventory { return nil }
	}
	if err := os.MkdirAll(deps.WorkDir, 0o700); err != nil {
		return nil, fmt.Errorf("server: work directory: %w", err)
	}
	var p [4]byte
	if _, err := rand.Read(p[:]); err != nil {
		return nil, err
	}
	s := &Server{deps: deps, log: c.log, limits: c.limits, rates: c.rates, regs: c.registries, mux: http.NewServeMux(),
		metrics: newMetrics(), evalSem: make(chan struct{}, c.limits.Evaluations),
		upSem: make(chan struct{}, max(c.limits.Uploads, c.limits.Evaluations)), exSem: make(chan struct{}, c.limits.Exports), idPrefix: hex.EncodeToString(p[:])}
	if err := s.cleanWork(); err != nil { // what a crash left
		return nil, err
	}
	s.gate.Store(deps.Gate)
	s.register()
	s.kubeCfg = c.kube
	if err := s.registerKubernetes(c.kube); err != nil {
		return nil, err
	}
	if c.console != nil {
		s.metrics.latency["console"] = newHistogram()
		h := s.adapt("console", func(w http.ResponseWriter, r *http.Request) error { c.console.ServeHTTP(w, r); return nil }, routeOpts{timeout: c.limits.ExportTimeout})
		s.mux.Handle("/ui", h)
		s.mux.Handle("/ui/", h)
	}
	s.done = make(chan struct{})
	go s.refreshFleet()
	s.handler = http.HandlerFunc(s.serve)
	return s, nil
}

// Handler is the API's handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Routes lists the registered routes in registration order.
func (s *Server) Routes() []Route { return slices.Clone(s.routes) }

// SwapGate makes g the gate for every request that starts afterwards;
// requests running on the old gate finish on it.
func (s *Server) SwapGate(g *gate.Gate) {
	if g != nil {
		s.gate.Store(g)
	}
}

// HTTPServer is an http.Server for the API with every timeout set:
// ReadHeaderTimeout against slow clients, IdleTimeout for keep-alive
// connections, and ReadTimeout and WriteTimeout as outer bounds (each
// route sets its own read and write deadlines from its budget: small
// bodies must arrive within ReadTimeout, large ones at MinBodyRate).
// Serve it on Listener(ln) for the connection limits.
func (s *Server) HTTPServer(addr string, tlsConfig *tls.Config) *http.Server {
	l := s.limits
	return &http.Server{
		Addr:              addr,
		Handler:           s.handler,
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       max(l.UploadTimeout, l.TelemetryTimeout),
		WriteTimeout:      l.UploadTimeout + 2*l.EvaluateWait + l.EvaluateTimeout + 30*time.Second,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
		ConnState:         s.connState,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// TLSConfig loads a server certificate and key; with clientCA, clients
// must present a certificate it signed (mutual TLS).
func TLSConfig(certFile, keyFile, clientCA string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if clientCA != "" {
		b, err := os.ReadFile(clientCA)
		if err != nil {
			return nil, fmt.Errorf("tls: client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("tls: client CA %s: no PEM certificate", clientCA)
		}
		c.ClientCAs, c.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return c, nil
}

// reqState is one request's bookkeeping, shared by the wrapper and the
// handler through the request context.
type reqState struct {
	id        string
	route     string
	principal Principal
	decision  string // allow, deny, or empty
}

type stateKey struct{}

func state(r *http.Request) *reqState {
	st, _ := r.Context().Value(stateKey{}).(*reqState)
	if st == nil {
		st = &reqState{route: "unknown"}
	}
	return st
}

// handlerFunc is an internal handler: it writes the success response and
// returns errors, which the adapter maps to statuses once.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

type routeOpts struct {
	roles     []Role
	timeout   time.Duration
	body      int64  // body limit; 0 none
	bodyLimit string // the body limit's name in wardgate_limit_reached_total
	// slow: the body may be large (uploads, telemetry): instead of the
	// short read deadline it must arrive at MinBodyRate, within
	// bodyTimeout.
	slow        bool
	bodyTimeout time.Duration
}

func (s *Server) handle(method, pattern string, h handlerFunc, o routeOpts) {
	route := method + " " + pattern
	s.routes = append(s.routes, Route{Method: method, Path: pattern, Roles: o.roles})
	s.metrics.latency[route] = newHistogram()
	s.mux.Handle(route, s.adapt(route, h, o))
}

// serve is the outermost handler: it refuses non-canonical paths (../,
// //, encoded dots) before routing, so path tricks get a 400, never a
// redirect or another route.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if p == "" || p[0] != '/' || path.Clean(p) != p || strings.Contains(r.URL.RawPath, "%2") || strings.Contains(r.URL.RawPath, "%5") {
		st := &reqState{id: s.newID(), route: "invalid"}
		w.Header().Set("X-Request-Id", st.id)
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		s.writeError(sw, r, st, badRequest("path %q is not canonical", p))
		s.finish(r, st, sw.status, start)
		return
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) newID() string {
	return s.idPrefix + "-" + strconv.FormatUint(s.idSeq.Add(1), 36)
}

// adapt turns an internal handler into an http.Handler: request ID, read
// deadline, body limit, authentication, authorisation, rate limit, timeout,
// error mapping, metrics and the request log line.
func (s *Server) adapt(route string, h handlerFunc, o routeOpts) http.Handler {
	hist := s.metrics.latency[route]
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		st := &reqState{id: s.newID(), route: route}
		sw := &statusWriter{ResponseWriter: w}
		w = sw
		w.Header().Set("X-Request-Id", st.id)
		rc := http.NewResponseController(sw)
		var rb *rateBody
		switch {
		case r.Body == nil || r.Body == http.NoBody:
			// No body: nothing more to read, and no deadline may cancel
			// the handler (see clearReadDeadline).
			clearReadDeadline(rc)
		case !o.slow:
			_ = rc.SetReadDeadline(start.Add(s.limits.ReadTimeout))
			r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
		default:
			rb = s.rateBody(r.Body, rc, start, o.bodyTimeout)
			r.Body = rb
		}
		if o.timeout > 0 {
			_ = rc.SetWriteDeadline(start.Add(o.timeout + 10*time.Second)) // the answer, after the budget
		}
		if o.body > 0 {
			r.Body = http.MaxBytesReader(w, r.Body, o.body)
		}
		ctx := context.WithValue(r.Context(), stateKey{}, st)
		if o.timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, o.timeout)
			defer cancel()
		}
		r = r.WithContext(ctx)
		err := s.authorize(r, st, o.roles)
		if err == nil {
			err = h(w, r)
		}
		if err != nil && rb != nil && rb.err != nil {
			err = rb.err // the body was cut off, whatever the parser made of it
		}
		if err != nil {
			s.countLimit(err, o)
			if sw.wrote {
				s.log.LogAttrs(ctx, slog.LevelError, "error after the response started", slog.String("request_id", st.id), slog.Any("err", err))
			} else {
				s.writeError(w, r, st, err)
			}
		}
		hist.observe(time.Since(start))
		s.finish(r, st, sw.status, start)
	})
}

// countLimit counts a request refused or cut off by a limit.
func (s *Server) countLimit(err error, o routeOpts) {
	var he *Error
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &he) && he.limit != "":
		s.metrics.limit(he.limit)
	case errors.As(err, &mbe):
		s.metrics.limit(o.bodyLimit)
	case diskFull(err):
		s.metrics.limit(limitDiskFull)
	case errors.Is(err, ErrRateLimited):
		s.metrics.limit(limitRateLimit)
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.metrics.limit(limitReadTimeout)
	case errors.Is(err, context.DeadlineExceeded):
		s.metrics.limit(limitRequestTimeout)
	}
}

func (s *Server) finish(r *http.Request, st *reqState, status int, start time.Time) {
	if status == 0 {
		status = http.StatusOK
	}
	s.metrics.requests.add(1, st.route, strconv.Itoa(status))
	attrs := []slog.Attr{slog.String("request_id", st.id), slog.String("route", st.route), slog.Int("status", status),
		slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000)}
	if st.principal.Name != "" {
		attrs = append(attrs, slog.String("token", st.principal.Name))
	}
	if st.decision != "" {
		attrs = append(attrs, slog.String("decision", st.decision))
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
}

// authorize checks the bearer token, the role and the rate limit. A
// request that fails any of them does nothing.
func (s *Server) authorize(r *http.Request, st *reqState, roles []Role) error {
	if roles == nil {
		return nil
	}
	if p, ok := s.certPrincipal(r, roles); ok {
		st.principal = p
		if !s.limiter(p).Allow() {
			return ErrRateLimited
		}
		return nil
	}
	tok, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		return ErrUnauthenticated
	}
	p, err := s.deps.Tokens.Authenticate(r.Context(), Secret(tok))
	if err != nil {
		return err
	}
	st.principal = p
	if p.Role != RoleAdmin && !slices.Contains(roles, p.Role) {
		return ErrForbidden
	}
	if !s.limiter(p).Allow() {
		return ErrRateLimited
	}
	return nil
}

// bearer returns the token of an Authorization header with the Bearer
// scheme, whose name is case-insensitive (RFC 7235 section 2.1).
func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

func (s *Server) limiter(p Principal) *rate.Limiter {
	if l, ok := s.limiters.Load(p.Name); ok {
		return l.(*rate.Limiter)
	}
	rl := s.rates[p.Role]
	l, _ := s.limiters.LoadOrStore(p.Name, rate.NewLimiter(rate.Limit(rl.Rate), rl.Burst))
	return l.(*rate.Limiter)
}

// statusWriter remembers the status written.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
