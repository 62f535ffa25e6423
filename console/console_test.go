package console_test

import (
	"flag"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardgate/wardgate/console"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// clock is a settable clock for session expiry.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	t     *testing.T
	f     *fake
	srv   *httptest.Server
	clock *clock
}

func newEnv(t *testing.T, opts ...console.Option) *env {
	t.Helper()
	f := newFake(t)
	ck := &clock{t: time.Date(2026, 2, 1, 12, 0, 0, 0, time.UTC)}
	c, err := console.New(f, append([]console.Option{console.WithClock(ck.now)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ui", c.Handler())
	mux.Handle("/ui/", c.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &env{t: t, f: f, srv: srv, clock: ck}
}

// browser is a client with cookies that does not follow redirects.
type client struct {
	*http.Client
	e *env
}

func (e *env) client() *client {
	jar, _ := cookiejar.New(nil)
	return &client{Client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, e: e}
}

type page struct {
	status int
	header http.Header
	body   string
}

func (b *client) do(req *http.Request) page {
	b.e.t.Helper()
	resp, err := b.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.e.t.Fatal(err)
	}
	return page{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

func (b *client) get(path string) page {
	b.e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.e.srv.URL+path, nil)
	if err != nil {
		b.e.t.Fatal(err)
	}
	return b.do(req)
}

func (b *client) post(path string, form url.Values, hdr ...string) page {
	b.e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.e.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return b.do(req)
}

var hiddenCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, p page) string {
	t.Helper()
	m := hiddenCSRF.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no CSRF field in the page:\n%s", p.body)
	}
	return m[1]
}

// signIn signs in with token and returns the page's CSRF token.
func (b *client) signIn(token string) page {
	b.e.t.Helper()
	form := b.get("/ui/signin?next=/ui/updates")
	return b.post("/ui/signin", url.Values{"csrf": {csrfOf(b.e.t, form)}, "token": {token}, "next": {"/ui/updates"}})
}

func (b *client) signedIn() (*client, string) {
	b.e.t.Helper()
	p := b.signIn(auditorTok)
	if p.status != http.StatusSeeOther {
		b.e.t.Fatalf("sign-in: %d\n%s", p.status, p.body)
	}
	return b, csrfOf(b.e.t, b.get("/ui/updates"))
}

func want(t *testing.T, p page, status int, contains ...string) {
	t.Helper()
	if p.status != status {
		t.Fatalf("status %d, want %d\n%s", p.status, status, p.body)
	}
	for _, c := range contains {
		if !strings.Contains(p.body, c) {
			t.Errorf("page lacks %q", c)
		}
	}
}

var mainEl = regexp.MustCompile(`(?s)<main id="content" tabindex="-1">.*</main>`)

// golden compares the page's <main> with testdata/NAME.golden.html.
func golden(t *testing.T, name string, p page) {
	t.Helper()
	got := mainEl.FindString(p.body)
	if got == "" {
		t.Fatalf("no <main> in the page")
	}
	path := filepath.Join("testdata", name+".golden.html")
	if *update {
		if err := os.WriteFile(path, []byte(got+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./console -run %s -update)", err, t.Name())
	}
	if string(b) != got+"\n" {
		t.Errorf("%s differs from the page (go test ./console -update rewrites it); page:\n%s", path, got)
	}
}

func TestPages(t *testing.T) {
	e := newEnv(t)
	b, _ := e.client().signedIn()
	for _, tc := range []struct {
		name, path string
		golden     string
		contains   []string
	}{
		{"updates", "/ui/updates", "updates", []string{`href="/ui/updates/` + pumpDigest + `"`, "quarantined", "Showing 1–2 of 2."}},
		{"updates filtered", "/ui/updates?state=quarantined&vendor=acme-infusion", "", []string{"Showing 1–1 of 1.", `<option value="quarantined" selected>`}},
		{"updates by digest prefix", "/ui/updates?q=8ad002", "", []string{"Showing 1–1 of 1.", otherDigest}},
		{"update", "/ui/updates/" + pumpDigest, "update", []string{"Quarantined.", "release@acme-infusion.example", "libssl3", "3.1.4-r5", "fleet-correlation",
			`id="contacts-table"`, `data-device="HOSP-IOT-PUMP-01" data-destination="raw.githubusercontent.com"`, "10h 0m later", "HOSP-IOT-PUMP-05", "/contacts.svg", "/volume.svg"}},
		{"update never evaluated fields", "/ui/updates/" + otherDigest, "", []string{"No finding.", "No device is recorded installing this update."}},
		{"findings", "/ui/findings", "findings", []string{"5133 telemetry events", "fleet-correlation", `href="/ui/device?name=HOSP-IOT-PUMP-01"`}},
		{"findings of an update", "/ui/findings?update=" + pumpDigest + "&severity=quarantined", "", []string{"Findings of update", "Showing 1–1 of 1."}},
		{"devices", "/ui/devices", "devices", []string{"HOSP-IOT-PUMP-01", "Showing 1–2 of 2."}},
		{"devices search", "/ui/devices?q=pump-01", "", []string{"Showing 1–1 of 1."}},
		{"device", "/ui/device?name=HOSP-IOT-PUMP-01", "device", []string{"Installed updates over time", "clinical", "fleet-correlation"}},
		{"log", "/ui/log", "", []string{"signature verified", "✓ verified", "wardgate attest verify wardgate-evidence-3.tar.gz --key wardgate-log.pub", "HOSP-IOT-PUMP-06"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := b.get(tc.path)
			want(t, p, http.StatusOK, tc.contains...)
			if h := p.header.Get("Content-Security-Policy"); !strings.Contains(h, "script-src 'self'") || !strings.Contains(h, "default-src 'none'") {
				t.Errorf("CSP %q", h)
			}
			if cc := p.header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", cc)
			}
			if tc.golden != "" {
				golden(t, tc.golden, p)
			}
		})
	}
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t)
	b, _ := e.client().signedIn()
	for path, status := range map[string]int{
		"/ui/updates?state=bogus":                       http.StatusBadRequest,
		"/ui/updates?sort=x":                            http.StatusBadRequest,
		"/ui/updates?page=0":                            http.StatusBadRequest,
		"/ui/updates?q=zz":                              http.StatusBadRequest,
		"/ui/updates?state=clean&state=clean":           http.StatusBadRequest,
		"/ui/updates?nope=1":                            http.StatusBadRequest,
		"/ui/updates/sha256:abc":                        http.StatusBadRequest,
		"/ui/updates/" + strings.Repeat("0", 71):        http.StatusBadRequest,
		"/ui/updates/sha256:" + strings.Repeat("0", 64): http.StatusNotFound,
		"/ui/device":                                    http.StatusBadRequest,
		"/ui/device?name=nope":                          http.StatusNotFound,
		"/ui/device?name=" + strings.Repeat("a", 300):   http.StatusBadRequest,
		"/ui/log?artifact=x":                            http.StatusBadRequest,
		"/ui/nothing-here":                              http.StatusNotFound,
	} {
		if p := b.get(path); p.status != status {
			t.Errorf("GET %s: %d, want %d", path, p.status, status)
		}
	}
}

func TestLogPageShowsAFailedProof(t *testing.T) {
	e := newEnv(t)
	e.f.tamper = true
	b, _ := e.client().signedIn()
	p := b.get("/ui/log")
	want(t, p, http.StatusOK, "signature verified", `<span class="bad proof-bad">✗ failed</span>`)
	if n := strings.Count(p.body, "proof-ok"); n != 2 {
		t.Errorf("%d proofs verified, want 2 (the tampered one fails)", n)
	}
}

func TestPlots(t *testing.T) {
	e := newEnv(t)
	b, _ := e.client().signedIn()
	for _, name := range []string{"contacts.svg", "volume.svg"} {
		p := b.get("/ui/updates/" + pumpDigest + "/" + name)
		want(t, p, http.StatusOK, "<svg", "raw.githubusercontent.com")
		if ct := p.header.Get("Content-Type"); ct != "image/svg+xml" {
			t.Errorf("%s: Content-Type %q", name, ct)
		}
		if csp := p.header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'none'") || strings.Contains(csp, "script") {
			t.Errorf("%s: CSP %q", name, csp)
		}
	}
	p := b.get("/ui/updates/" + pumpDigest + "/contacts.svg")
	for _, w := range []string{"HOSP-IOT-PUMP-01", "installed the update"} {
		if !strings.Contains(p.body, w) {
			t.Errorf("contacts plot lacks %q", w)
		}
	}
	if p := b.get("/ui/updates/" + pumpDigest + "/volume.svg"); !strings.Contains(p.body, "infusion-pump baseline × 3") {
		t.Error("volume plot has no baseline line for 3 installers")
	}
}

func TestExport(t *testing.T) {
	e := newEnv(t)
	b, csrf := e.client().signedIn()
	p := b.post("/ui/log/export", url.Values{"csrf": {csrf}, "since": {"2026-01-20T00:00"}, "device": {"HOSP-IOT-PUMP-05"}})
	want(t, p, http.StatusOK, "pack since=2026-01-20T00:00:00Z device=HOSP-IOT-PUMP-05")
	if cd := p.header.Get("Content-Disposition"); cd != `attachment; filename="wardgate-evidence-3.tar.gz"` {
		t.Errorf("Content-Disposition %q", cd)
	}
	a := e.f.audits()
	if last := a[len(a)-1]; last.Action != "console export" || last.Principal.Name != "auditor-1" || !strings.Contains(last.Target, "device=HOSP-IOT-PUMP-05") {
		t.Errorf("audit %+v", last)
	}
	for form, status := range map[string]int{"until=2026-01-01&since=2026-02-01": 400, "artifact=x": 400, "since=yesterday": 400} {
		v, _ := url.ParseQuery(form)
		v.Set("csrf", csrf)
		if p := b.post("/ui/log/export", v); p.status != status {
			t.Errorf("export %s: %d, want %d", form, p.status, status)
		}
	}
}

func TestPublicKey(t *testing.T) {
	e := newEnv(t)
	b, _ := e.client().signedIn()
	want(t, b.get("/ui/log/key.pub"), http.StatusOK, "-----BEGIN PUBLIC KEY-----")
}

func TestStatic(t *testing.T) {
	e := newEnv(t)
	b := e.client()
	p := b.get("/ui/signin")
	m := regexp.MustCompile(`src="(/ui/static/console\.js\?v=[0-9a-f]+)"`).FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no script tag in:\n%s", p.body)
	}
	js := b.get(m[1])
	want(t, js, http.StatusOK, "time[datetime]")
	if ct := js.header.Get("Content-Type"); ct != "text/javascript; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	want(t, b.get("/ui/static/nope.js"), http.StatusNotFound)
}
