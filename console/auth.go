package console

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxSigninBytes bounds the sign-in form's body.
const maxSigninBytes = 8 << 10

type signinView struct {
	Next    string
	CSRF    string
	Message string
}

// safeNext keeps a post-sign-in destination only when it is a console
// path on this origin.
func safeNext(next string) string {
	u, err := url.Parse(next)
	if err != nil || next == "" || u.Scheme != "" || u.Host != "" || u.User != nil || strings.HasPrefix(next, "//") || strings.Contains(next, `\`) ||
		!(u.Path == "/ui" || strings.HasPrefix(u.Path, "/ui/")) || strings.HasPrefix(u.Path, "/ui/signin") || strings.HasPrefix(u.Path, "/ui/signout") {
		return "/ui/updates"
	}
	return u.RequestURI()
}

func (c *Console) signinCookie(r *http.Request, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: signinCookie, Value: value, Path: "/ui/signin", MaxAge: maxAge, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil}
}

// signinForm shows the sign-in form, with a CSRF token bound to a cookie
// (there is no session yet to hold it).
func (c *Console) signinForm(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	next := safeNext(r.URL.Query().Get("next"))
	if _, ok := c.session(r); ok {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	c.showSignin(w, r, http.StatusOK, next, "")
}

func (c *Console) showSignin(w http.ResponseWriter, r *http.Request, status int, next, msg string) {
	tok := randomToken()
	http.SetCookie(w, c.signinCookie(r, tok, 3600))
	c.render(w, r, status, "signin", view{Title: "Sign in", Data: signinView{Next: next, CSRF: tok, Message: msg}})
}

// signin takes an API token and opens a session for an auditor or admin.
func (c *Console) signin(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	r.Body = http.MaxBytesReader(w, r.Body, maxSigninBytes)
	if err := r.ParseForm(); err != nil {
		c.errorPage(w, r, nil, badRequest("The sign-in form could not be read."))
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	ck, err := r.Cookie(signinCookie)
	if err != nil || !sameToken(r.PostForm.Get("csrf"), ck.Value) {
		c.showSignin(w, r, http.StatusForbidden, next, "The sign-in form expired or did not come from this page; try again.")
		return
	}
	secret := strings.TrimSpace(r.PostForm.Get("token"))
	if secret == "" {
		c.showSignin(w, r, http.StatusBadRequest, next, "Paste an API token (it starts with wgt_).")
		return
	}
	addr := clientAddr(r)
	if d := c.throttle.wait(addr, c.now()); d > 0 {
		secs := int((d + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		c.log.LogAttrs(r.Context(), slog.LevelWarn, "console sign-in throttled", slog.String("request_id", requestID(w)), slog.String("client", addr))
		c.showSignin(w, r, http.StatusTooManyRequests, next, fmt.Sprintf("Too many failed sign-ins from this address; try again in %d s.", secs))
		return
	}
	p, err := c.data.Authenticate(r.Context(), secret)
	switch {
	case errors.Is(err, ErrUnauthenticated):
		c.throttle.failed(addr, c.now())
		c.log.LogAttrs(r.Context(), slog.LevelInfo, "console sign-in refused: unknown token", slog.String("request_id", requestID(w)))
		c.showSignin(w, r, http.StatusUnauthorized, next, "That token is not known, or it was revoked.")
		return
	case err != nil:
		c.errorPage(w, r, nil, err)
		return
	case !allowedRole(p.Role):
		c.audit(w, r, p, "console sign-in", "", "refused")
		c.showSignin(w, r, http.StatusForbidden, next, "The console is for auditor and admin tokens; this token's role is "+p.Role+".")
		return
	}
	if err := c.audit(w, r, p, "console sign-in", "", "allow"); err != nil {
		c.errorPage(w, r, nil, err)
		return
	}
	id, _ := c.sessions.create(p, secret)
	http.SetCookie(w, sessionCookie(r, id, int(c.sessions.ttl.Seconds())))
	http.SetCookie(w, c.signinCookie(r, "", -1))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) signout(w http.ResponseWriter, r *http.Request, s *session) error {
	if ck, err := r.Cookie(sessionCookieName(r)); err == nil {
		c.sessions.delete(ck.Value)
	}
	http.SetCookie(w, sessionCookie(r, "", -1))
	if err := c.audit(w, r, s.p, "console sign-out", "", "ok"); err != nil {
		c.log.LogAttrs(r.Context(), slog.LevelError, "audit of a sign-out failed", slog.String("request_id", requestID(w)), slog.Any("err", err))
	}
	http.Redirect(w, r, "/ui/signin", http.StatusSeeOther)
	return nil
}

func (c *Console) audit(w http.ResponseWriter, r *http.Request, p Principal, action, target, outcome string) error {
	return c.data.Audit(r.Context(), AuditEvent{Time: c.now().UTC(), RequestID: requestID(w), Principal: p, Action: action, Target: target, Outcome: outcome})
}
