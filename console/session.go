package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"
)

// Sessions are kept on the server, in memory: the cookie holds only a
// random 256-bit session ID, and the server keeps, under the ID's SHA-256,
// who signed in, the token they signed in with (so that a revoked token
// ends its sessions within the token cache's TTL), the session's CSRF
// token and its expiry. A restart signs everyone out; nothing about a
// session is ever written to disk.

// Cookie names. Over TLS the session cookie takes the __Host- prefix (the
// browser then refuses it unless it is Secure, for path /, and set by this
// host).
const (
	cookieName    = "wardgate_session"
	cookieNameTLS = "__Host-wardgate_session"
	signinCookie  = "wardgate_signin" // the sign-in form's CSRF token
)

type session struct {
	p       Principal
	secret  string // the API token signed in with; never logged, never shown
	csrf    string
	expires time.Time // absolute
	seen    time.Time // last request, for the idle timeout
}

type sessions struct {
	mu   sync.Mutex
	m    map[[32]byte]*session
	ttl  time.Duration
	idle time.Duration
	max  int
	now  func() time.Time
}

func newSessions(ttl, idle time.Duration, max int, now func() time.Time) *sessions {
	return &sessions{m: map[[32]byte]*session{}, ttl: ttl, idle: idle, max: max, now: now}
}

func randomToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func sessionKey(id string) [32]byte { return sha256.Sum256([]byte(id)) }

// create starts a session and returns its ID (the cookie value).
func (s *sessions) create(p Principal, secret string) (string, *session) {
	id := randomToken()
	now := s.now()
	ss := &session{p: p, secret: secret, csrf: randomToken(), expires: now.Add(s.ttl), seen: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= s.max {
		s.expireLocked(now)
	}
	if len(s.m) >= s.max { // still full: drop the least recently seen
		var oldest [32]byte
		var at time.Time
		for k, v := range s.m {
			if at.IsZero() || v.seen.Before(at) {
				oldest, at = k, v.seen
			}
		}
		delete(s.m, oldest)
	}
	s.m[sessionKey(id)] = ss
	return id, ss
}

func (s *sessions) expireLocked(now time.Time) {
	for k, v := range s.m {
		if !now.Before(v.expires) || now.Sub(v.seen) >= s.idle {
			delete(s.m, k)
		}
	}
}

// get returns the live session with the ID, touching it.
func (s *sessions) get(id string) (*session, bool) {
	if id == "" || len(id) > 64 {
		return nil, false
	}
	k := sessionKey(id)
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.m[k]
	if !ok {
		return nil, false
	}
	if !now.Before(ss.expires) || now.Sub(ss.seen) >= s.idle {
		delete(s.m, k)
		return nil, false
	}
	ss.seen = now
	return ss, true
}

func (s *sessions) delete(id string) {
	s.mu.Lock()
	delete(s.m, sessionKey(id))
	s.mu.Unlock()
}

func (s *sessions) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

func sessionCookieName(r *http.Request) string {
	if r.TLS != nil {
		return cookieNameTLS
	}
	return cookieName
}

func sessionCookie(r *http.Request, value string, maxAge int) *http.Cookie {
	c := &http.Cookie{Name: sessionCookieName(r), Value: value, Path: "/ui", MaxAge: maxAge, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil}
	if r.TLS != nil {
		c.Path = "/" // required by the __Host- prefix
	}
	return c
}

// sameToken compares two CSRF tokens in constant time; empty never matches.
func sameToken(a, b string) bool {
	return a != "" && b != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
