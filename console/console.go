package console

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Roles that may use the console. Every other role is refused at sign-in.
var consoleRoles = []string{"auditor", "admin"}

// Defaults of the options.
const (
	DefaultSessionLifetime = 8 * time.Hour
	DefaultSessionIdle     = 30 * time.Minute
	DefaultMaxSessions     = 10000
	// PageSize is the rows per page of the lists (a page of the updates
	// list stays far under 200 KB).
	PageSize = 50
	// LogPageSize is the entries per page of the log.
	LogPageSize = 25
)

type config struct {
	log      *slog.Logger
	now      func() time.Time
	lifetime time.Duration
	idle     time.Duration
	max      int
}

// Option configures New.
type Option func(*config) error

// WithLogger sets the logger (default: discard). The console logs internal
// errors, with the request ID it shows the user.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("console: nil logger")
		}
		c.log = l
		return nil
	}
}

// WithClock sets the clock (sessions' expiry).
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return errors.New("console: nil clock")
		}
		c.now = now
		return nil
	}
}

// WithSessionLifetime sets how long a session lasts at most and after how
// long without a request it ends.
func WithSessionLifetime(lifetime, idle time.Duration) Option {
	return func(c *config) error {
		if lifetime <= 0 || idle <= 0 {
			return errors.New("console: session lifetime and idle timeout must be positive")
		}
		if idle > lifetime {
			return fmt.Errorf("console: idle timeout %s longer than the session lifetime %s", idle, lifetime)
		}
		c.lifetime, c.idle = lifetime, idle
		return nil
	}
}

// Console is the web console: server-rendered pages under /ui.
type Console struct {
	data     Data
	log      *slog.Logger
	now      func() time.Time
	sessions *sessions
	throttle *throttle
	pages    map[string]*template.Template
	static   map[string]staticFile
	mux      *http.ServeMux
	handler  http.Handler
}

type staticFile struct {
	body  []byte
	ctype string
	etag  string
}

// New builds the console over data.
func New(data Data, opts ...Option) (*Console, error) {
	if data == nil {
		return nil, errors.New("console: nil data")
	}
	c := config{log: slog.New(slog.DiscardHandler), now: time.Now, lifetime: DefaultSessionLifetime, idle: DefaultSessionIdle, max: DefaultMaxSessions}
	for _, o := range opts {
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	con := &Console{data: data, log: c.log, now: c.now, sessions: newSessions(c.lifetime, c.idle, c.max, c.now), throttle: newThrottle(), mux: http.NewServeMux()}
	if err := con.loadStatic(); err != nil {
		return nil, err
	}
	if err := con.parseTemplates(); err != nil {
		return nil, err
	}
	con.routes()
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		con.errorPage(w, r, nil, &pageError{status: http.StatusForbidden, msg: "Cross-origin request refused: forms of the console can only be sent from the console itself."})
	}))
	con.handler = cop.Handler(http.HandlerFunc(con.serve))
	return con, nil
}

// Handler serves the console; mount it at /ui and /ui/.
func (c *Console) Handler() http.Handler { return c.handler }

func (c *Console) loadStatic() error {
	c.static = map[string]staticFile{}
	return fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		ct := "application/octet-stream"
		switch path.Ext(p) {
		case ".css":
			ct = "text/css; charset=utf-8"
		case ".js":
			ct = "text/javascript; charset=utf-8"
		case ".svg":
			ct = "image/svg+xml"
		}
		sum := sha256.Sum256(b)
		c.static[strings.TrimPrefix(p, "static/")] = staticFile{body: b, ctype: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
}

// staticURL is the URL of an embedded asset, versioned by its content so
// browsers may cache it for good.
func (c *Console) staticURL(name string) string {
	f, ok := c.static[name]
	if !ok {
		panic("console: no static file " + name)
	}
	return "/ui/static/" + name + "?v=" + strings.Trim(f.etag, `"`)
}

// csp forbids every script but the console's own files, inline ones
// included, and every other origin.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// plotCSP is for the plots' SVG documents: gonum writes style attributes,
// and an SVG image runs nothing.
const plotCSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"

func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
}

func (c *Console) serve(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header())
	c.mux.ServeHTTP(w, r)
}

// pageError is an error with a status and a message safe to show.
type pageError struct {
	status int
	msg    string
}

func (e *pageError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &pageError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// handlerFunc is a page: it renders on success and returns errors, mapped
// to error pages once, in errorPage.
type handlerFunc func(w http.ResponseWriter, r *http.Request, s *session) error

func (c *Console) routes() {
	m := c.mux
	m.HandleFunc("GET /ui", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/updates", http.StatusSeeOther)
	})
	m.HandleFunc("GET /ui/static/{file}", c.serveStatic)
	m.HandleFunc("GET /ui/signin", c.signinForm)
	m.HandleFunc("POST /ui/signin", c.signin)
	m.Handle("POST /ui/signout", c.page(c.signout))
	m.Handle("GET /ui/updates", c.page(c.updatesPage))
	m.Handle("GET /ui/updates/{digest}", c.page(c.updatePage))
	m.Handle("GET /ui/updates/{digest}/contacts.svg", c.page(c.contactsPlot))
	m.Handle("GET /ui/updates/{digest}/volume.svg", c.page(c.volumePlot))
	m.Handle("GET /ui/findings", c.page(c.findingsPage))
	m.Handle("GET /ui/devices", c.page(c.devicesPage))
	m.Handle("GET /ui/device", c.page(c.devicePage))
	m.Handle("GET /ui/log", c.page(c.logPage))
	m.Handle("POST /ui/log/export", c.page(c.export))
	m.Handle("GET /ui/log/key.pub", c.page(c.publicKey))
	m.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		c.errorPage(w, r, nil, &pageError{status: http.StatusNotFound, msg: "There is no such page."})
	})
}

func (c *Console) serveStatic(w http.ResponseWriter, r *http.Request) {
	f, ok := c.static[r.PathValue("file")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", f.ctype)
	h.Set("ETag", f.etag)
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	if r.Header.Get("If-None-Match") == f.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	_, _ = w.Write(f.body)
}

// page wraps a page: a live session (else the sign-in form), a role that
// may use the console, the CSRF token on every POST, and error pages.
func (c *Console) page(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		s, ok := c.session(r)
		if !ok {
			c.clearSession(w, r)
			if r.Method != http.MethodGet {
				c.errorPage(w, r, nil, &pageError{status: http.StatusForbidden, msg: "Your session has ended; sign in again."})
				return
			}
			http.Redirect(w, r, "/ui/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost {
			if err := r.ParseForm(); err != nil {
				c.errorPage(w, r, s, badRequest("The form could not be read."))
				return
			}
			if !sameToken(r.PostForm.Get("csrf"), s.csrf) {
				c.errorPage(w, r, s, &pageError{status: http.StatusForbidden, msg: "The form's CSRF token is missing or wrong; reload the page and try again."})
				return
			}
		}
		if err := h(w, r, s); err != nil {
			c.errorPage(w, r, s, err)
		}
	})
}

// session returns the request's live session. The token it was opened
// with is checked again (the token store caches answers briefly), so a
// revoked token ends its sessions.
func (c *Console) session(r *http.Request) (*session, bool) {
	ck, err := r.Cookie(sessionCookieName(r))
	if err != nil {
		return nil, false
	}
	s, ok := c.sessions.get(ck.Value)
	if !ok {
		return nil, false
	}
	p, err := c.data.Authenticate(r.Context(), s.secret)
	if err != nil || p != s.p || !allowedRole(p.Role) {
		if errors.Is(err, ErrUnauthenticated) || err == nil {
			c.sessions.delete(ck.Value)
		}
		return nil, false
	}
	return s, true
}

func (c *Console) clearSession(w http.ResponseWriter, r *http.Request) {
	if _, err := r.Cookie(sessionCookieName(r)); err == nil {
		http.SetCookie(w, sessionCookie(r, "", -1))
	}
}

func allowedRole(role string) bool {
	for _, r := range consoleRoles {
		if r == role {
			return true
		}
	}
	return false
}

// requestID is the server's request ID (set on the response by the API
// server's wrapper), or a new one.
func requestID(w http.ResponseWriter) string {
	if id := w.Header().Get("X-Request-Id"); id != "" {
		return id
	}
	id := randomToken()[:12]
	w.Header().Set("X-Request-Id", id)
	return id
}

// errorPage renders err: a pageError with its status and message,
// ErrNotFound as 404, anything else as 500 with the request ID (logged,
// never shown).
func (c *Console) errorPage(w http.ResponseWriter, r *http.Request, s *session, err error) {
	id := requestID(w)
	status, msg := http.StatusInternalServerError, "Something went wrong on the server. Quote request ID "+id+" to its operator."
	var pe *pageError
	switch {
	case errors.As(err, &pe):
		status, msg = pe.status, pe.msg
	case errors.Is(err, ErrNotFound):
		status, msg = http.StatusNotFound, "There is no such "+notFoundWhat(r)+"."
	case errors.Is(err, context.DeadlineExceeded):
		status, msg = http.StatusServiceUnavailable, "The server took too long; try again. Request ID "+id+"."
	default:
		c.log.LogAttrs(r.Context(), slog.LevelError, "console page failed", slog.String("request_id", id), slog.String("path", r.URL.Path), slog.Any("err", err))
	}
	w.Header().Set("Cache-Control", "no-store")
	c.render(w, r, status, "error", view{Title: http.StatusText(status), Session: s, Data: struct {
		Status  int
		Message string
	}{status, msg}})
}

func notFoundWhat(r *http.Request) string {
	switch {
	case strings.HasPrefix(r.URL.Path, "/ui/updates/"):
		return "update"
	case r.URL.Path == "/ui/device":
		return "device"
	}
	return "page"
}

// view is what every template gets.
type view struct {
	Title   string
	Nav     string // the active section
	Session *session
	Data    any
	// URL is the page's own URL (for sort and pager links).
	URL *url.URL
}

func (v view) User() *Principal {
	if v.Session == nil {
		return nil
	}
	return &v.Session.p
}

func (v view) CSRF() string {
	if v.Session == nil {
		return ""
	}
	return v.Session.csrf
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, v view) {
	t, ok := c.pages[name]
	if !ok {
		panic("console: no template " + name)
	}
	if v.URL == nil {
		v.URL = r.URL
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		id := requestID(w)
		c.log.LogAttrs(r.Context(), slog.LevelError, "console template failed", slog.String("request_id", id), slog.String("template", name), slog.Any("err", err))
		http.Error(w, "internal error; request ID "+id, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
