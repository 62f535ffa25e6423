package console_test

import (
	"crypto/tls"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/console"
)

var pages = []string{"/ui/updates", "/ui/updates/" + pumpDigest, "/ui/updates/" + pumpDigest + "/contacts.svg", "/ui/updates/" + pumpDigest + "/volume.svg",
	"/ui/findings", "/ui/devices", "/ui/device?name=HOSP-IOT-PUMP-01", "/ui/log", "/ui/log/key.pub"}

// wantSignin: no page without a session; the sign-in form, which comes
// back to the page.
func wantSignin(t *testing.T, b *client, path string) {
	t.Helper()
	p := b.get(path)
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/ui/signin?next="+url.QueryEscape(path) {
		t.Errorf("GET %s: %d to %q, want 303 to the sign-in form", path, p.status, p.header.Get("Location"))
	}
	if strings.Contains(p.body, "clinical") || strings.Contains(p.body, "fleet-correlation") || strings.Contains(p.body, "acme-infusion") {
		t.Errorf("GET %s without a session shows data", path)
	}
}

func TestNoSession(t *testing.T) {
	e := newEnv(t)
	b := e.client()
	for _, path := range pages {
		wantSignin(t, b, path)
	}
	// A state-changing form without a session does nothing.
	if p := b.post("/ui/log/export", url.Values{"csrf": {"x"}}); p.status != http.StatusForbidden {
		t.Errorf("export without a session: %d", p.status)
	}
	// A bearer token is not a session.
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/ui/updates", nil)
	req.Header.Set("Authorization", "Bearer "+auditorTok)
	if p := b.do(req); p.status != http.StatusSeeOther {
		t.Errorf("bearer token instead of a session: %d", p.status)
	}
}

func TestSignInRoles(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		token  string
		status int
		msg    string
	}{
		{auditorTok, http.StatusSeeOther, ""},
		{adminTok, http.StatusSeeOther, ""},
		{sensorTok, http.StatusForbidden, "this token&#39;s role is sensor"},
		{"wgt_unknown-token-00000000000000000000000000000000", http.StatusUnauthorized, "That token is not known, or it was revoked."},
		{"", http.StatusBadRequest, "Paste an API token"},
	} {
		b := e.client()
		p := b.signIn(tc.token)
		if p.status != tc.status || !strings.Contains(p.body, tc.msg) {
			t.Errorf("sign in with %.12s: %d, want %d with %q\n%s", tc.token, p.status, tc.status, tc.msg, p.body)
		}
		u, _ := url.Parse(e.srv.URL + "/ui/updates")
		hasSession := false
		for _, c := range b.Jar.Cookies(u) {
			hasSession = hasSession || c.Name == "wardgate_session"
		}
		if hasSession != (tc.status == http.StatusSeeOther) {
			t.Errorf("sign in with %.12s: session cookie %v", tc.token, hasSession)
		}
		if tc.status == http.StatusSeeOther {
			want(t, b.get("/ui/updates"), http.StatusOK, "Signed in as")
		} else {
			wantSignin(t, b, "/ui/updates")
		}
	}
	var sensorRefused bool
	for _, a := range e.f.audits() {
		sensorRefused = sensorRefused || a.Action == "console sign-in" && a.Principal.Name == "sensor-1" && a.Outcome == "refused"
	}
	if !sensorRefused {
		t.Errorf("the refused sign-in of a sensor token is not audited: %+v", e.f.audits())
	}
}

func TestSessionCookie(t *testing.T) {
	e := newEnv(t)
	b := e.client()
	form := b.get("/ui/signin")
	p := b.post("/ui/signin", url.Values{"csrf": {csrfOf(t, form)}, "token": {auditorTok}})
	var set string
	for _, c := range p.header.Values("Set-Cookie") {
		if strings.HasPrefix(c, "wardgate_session=") {
			set = c
		}
	}
	for _, attr := range []string{"Path=/ui", "Max-Age=28800", "HttpOnly", "SameSite=Strict"} {
		if !strings.Contains(set, attr) {
			t.Errorf("session cookie %q lacks %s", set, attr)
		}
	}
	if strings.Contains(set, auditorTok) || strings.Contains(set, "Secure") {
		t.Errorf("session cookie over plain HTTP: %q", set)
	}
	if p.header.Get("Location") != "/ui/updates" {
		t.Errorf("after sign-in: %q", p.header.Get("Location"))
	}
}

func TestSessionCookieOverTLS(t *testing.T) {
	f := newFake(t)
	c, err := console.New(f)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(c.Handler())
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	hc := srv.Client()
	hc.Jar = jar
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	e := &env{t: t, f: f, srv: srv}
	b := &client{Client: hc, e: e}
	p := b.signIn(auditorTok)
	var set string
	for _, c := range p.header.Values("Set-Cookie") {
		if strings.HasPrefix(c, "__Host-wardgate_session=") {
			set = c
		}
	}
	for _, attr := range []string{"Path=/;", "HttpOnly", "Secure", "SameSite=Strict"} {
		if !strings.Contains(set, attr) {
			t.Errorf("session cookie over TLS %q lacks %s", set, attr)
		}
	}
	want(t, b.get("/ui/updates"), http.StatusOK, "Signed in as")
	_ = tls.VersionTLS13
}

func TestForgedAndExpiredSessions(t *testing.T) {
	e := newEnv(t, console.WithSessionLifetime(2*time.Hour, 30*time.Minute))
	u, _ := url.Parse(e.srv.URL + "/ui/")
	t.Run("forged", func(t *testing.T) {
		b := e.client()
		b.Jar.SetCookies(u, []*http.Cookie{{Name: "wardgate_session", Value: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", Path: "/ui"}})
		wantSignin(t, b, "/ui/updates")
	})
	t.Run("idle", func(t *testing.T) {
		b, _ := e.client().signedIn()
		e.clock.add(29 * time.Minute)
		want(t, b.get("/ui/updates"), http.StatusOK)
		e.clock.add(31 * time.Minute)
		wantSignin(t, b, "/ui/updates")
	})
	t.Run("lifetime", func(t *testing.T) {
		b, _ := e.client().signedIn()
		for range 4 {
			e.clock.add(25 * time.Minute)
			want(t, b.get("/ui/updates"), http.StatusOK)
		}
		e.clock.add(25 * time.Minute) // 2h05 after sign-in, never idle
		wantSignin(t, b, "/ui/updates")
	})
	t.Run("revoked token", func(t *testing.T) {
		b, _ := e.client().signedIn()
		e.f.revoke(auditorTok)
		wantSignin(t, b, "/ui/updates")
	})
	t.Run("signed out", func(t *testing.T) {
		e2 := newEnv(t)
		b, csrf := e2.client().signedIn()
		if p := b.post("/ui/signout", url.Values{"csrf": {csrf}}); p.status != http.StatusSeeOther {
			t.Fatalf("sign out: %d", p.status)
		}
		wantSignin(t, b, "/ui/updates")
	})
}

func TestCSRF(t *testing.T) {
	e := newEnv(t)
	b, csrf := e.client().signedIn()
	for name, form := range map[string]url.Values{"missing": {}, "wrong": {"csrf": {"AAAA" + csrf[4:]}}, "empty": {"csrf": {""}}} {
		if p := b.post("/ui/log/export", form); p.status != http.StatusForbidden || !strings.Contains(p.body, "CSRF token") {
			t.Errorf("export with a %s CSRF token: %d", name, p.status)
		}
		if p := b.post("/ui/signout", form); p.status != http.StatusForbidden {
			t.Errorf("sign out with a %s CSRF token: %d", name, p.status)
		}
	}
	want(t, b.get("/ui/updates"), http.StatusOK, "Signed in as") // still signed in
	// The sign-in form's token is bound to its cookie.
	b2 := e.client()
	if p := b2.post("/ui/signin", url.Values{"csrf": {"made-up"}, "token": {auditorTok}}); p.status != http.StatusForbidden {
		t.Errorf("sign-in without the form's cookie: %d", p.status)
	}
	// A next that leaves the console is ignored.
	b3 := e.client()
	form := b3.get("/ui/signin")
	p := b3.post("/ui/signin", url.Values{"csrf": {csrfOf(t, form)}, "token": {auditorTok}, "next": {"//evil.example/ui/updates"}})
	if loc := p.header.Get("Location"); loc != "/ui/updates" {
		t.Errorf("next=//evil.example: redirected to %q", loc)
	}
}

func TestCrossOriginPost(t *testing.T) {
	e := newEnv(t)
	b, csrf := e.client().signedIn()
	form := url.Values{"csrf": {csrf}}
	for _, hdr := range [][]string{{"Sec-Fetch-Site", "cross-site"}, {"Sec-Fetch-Site", "same-site"}, {"Origin", "http://evil.example"}} {
		if p := b.post("/ui/log/export", form, hdr...); p.status != http.StatusForbidden || !strings.Contains(p.body, "Cross-origin request refused") {
			t.Errorf("export with %s: %s: %d", hdr[0], hdr[1], p.status)
		}
	}
	if p := b.post("/ui/log/export", form, "Sec-Fetch-Site", "same-origin"); p.status != http.StatusOK {
		t.Errorf("same-origin export: %d", p.status)
	}
	// Signing in from another site is refused as well.
	if p := e.client().post("/ui/signin", url.Values{"token": {auditorTok}}, "Sec-Fetch-Site", "cross-site"); p.status != http.StatusForbidden {
		t.Errorf("cross-site sign-in: %d", p.status)
	}
}

var (
	scriptTag = regexp.MustCompile(`(?i)<script[^>]*>[^<]*`)
	handler   = regexp.MustCompile(`(?i)<[^>]*\son[a-z]+\s*=`)
)

// inlineScript returns a script element that is not an empty element
// loading a console file, or a tag with an event handler attribute.
func inlineScript(body string) string {
	for _, m := range scriptTag.FindAllString(body, -1) {
		if !strings.HasPrefix(m, `<script src="/ui/static/`) || !strings.HasSuffix(m, ">") {
			return m
		}
	}
	// Attribute values are quoted (and escaped inside): drop them, so an
	// "onerror=" in a value, which is text, is not taken for a handler.
	return handler.FindString(quoted.ReplaceAllString(body, `""`))
}

var quoted = regexp.MustCompile(`"[^"]*"`)

func TestHostileStringsEscaped(t *testing.T) {
	e := newEnv(t)
	b, _ := e.client().signedIn()
	hostileDev := "PUMP-" + hostile
	paths := append(pages, "/ui/device?name="+url.QueryEscape(hostileDev), "/ui/updates/"+otherDigest)
	for _, path := range paths {
		p := b.get(path)
		if p.status != http.StatusOK {
			t.Errorf("GET %s: %d", path, p.status)
			continue
		}
		if strings.Contains(p.body, "<script>alert") || strings.Contains(p.body, "<img src=x") || strings.Contains(p.body, "<b>vendor") {
			t.Errorf("GET %s: hostile HTML reaches the page unescaped", path)
		}
		if m := inlineScript(p.body); m != "" {
			t.Errorf("GET %s: inline script or handler %q", path, m)
		}
	}
	// The hostile strings are there, as text.
	for path, n := range map[string]int{"/ui/updates/" + pumpDigest: 10, "/ui/updates": 1, "/ui/findings": 2, "/ui/devices": 1, "/ui/updates/" + pumpDigest + "/contacts.svg": 1} {
		if got := strings.Count(b.get(path).body, "&lt;script&gt;alert("); got < n {
			t.Errorf("GET %s: %d escaped hostile strings, want at least %d", path, got, n)
		}
	}
	// A device link carries the name as a query value, escaped.
	if p := b.get("/ui/updates/" + pumpDigest); !strings.Contains(p.body, `href="/ui/device?name=PUMP-%3cscript%3ealert%28%22x%22%29%3c%2fscript%3e%3cimg%20src%3dx%20onerror%3dalert%281%29%3e"`) {
		t.Error("no escaped link to the hostile device")
	}
}

// Failed sign-ins are throttled per client address: ten unknown tokens,
// then 429 with Retry-After whatever the token (a good one too) until the
// budget refills; one refill later one attempt is read again.
func TestSignInThrottled(t *testing.T) {
	e := newEnv(t)
	b := e.client()
	for i := range 10 {
		if p := b.signIn("wgt_unknown-token-00000000000000000000000000000000"); p.status != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d, want 401", i+1, p.status)
		}
	}
	p := b.signIn(auditorTok)
	want(t, p, http.StatusTooManyRequests, "Too many failed sign-ins from this address; try again in 30 s.")
	if got := p.header.Get("Retry-After"); got != "30" {
		t.Errorf("Retry-After = %q, want 30", got)
	}
	e.clock.add(10 * time.Second)
	want(t, b.signIn(auditorTok), http.StatusTooManyRequests, "try again in 20 s.")
	e.clock.add(20 * time.Second)
	if p := b.signIn(auditorTok); p.status != http.StatusSeeOther {
		t.Fatalf("after the refill: %d, want 303\n%s", p.status, p.body)
	}
	// A good sign-in costs nothing: the next unknown token is read (401),
	// and only then is the client over its budget again.
	c := e.client()
	want(t, c.signIn("wgt_unknown-token-00000000000000000000000000000000"), http.StatusUnauthorized, "That token is not known")
	want(t, c.signIn(auditorTok), http.StatusTooManyRequests, "Too many failed sign-ins")
}
