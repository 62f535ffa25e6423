package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/wardgate/wardgate/attest"
	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/gate"
	"github.com/wardgate/wardgate/policy"
	"github.com/wardgate/wardgate/store"
	"github.com/wardgate/wardgate/store/sqlite"
	"github.com/wardgate/wardgate/trust"
)

const (
	fx    = "../fixtures/testdata"
	fleet = "../fixtures/fleet/testdata/"
	// compromised is the fleet fixture's 3CX-like update.
	compromised = "sha256:7889dee97295a5ad686303faf86796bcb60b09eddd8af8ccac51b789affed93b"
)

// observed collects (route, status) pairs seen by every test, for the
// OpenAPI status check in TestMain.
var observed sync.Map // "METHOD PATTERN" -> map[int]bool (guarded by obsMu)
var obsMu sync.Mutex

type env struct {
	t        testing.TB
	srv      *Server
	ts       *httptest.Server
	tokens   map[Role]Secret
	log      *attest.Log
	st       *sqlite.DB
	dir      string
	recs     *gate.Records
	risk     *gate.RiskCache
	inv      atomic.Pointer[egress.Inventory]
	failRisk atomic.Bool
	slowRisk atomic.Int64 // nanoseconds each fleet analysis takes at least
	// wholeHistory: the fleet analysis reads every event
	// (egress.AnalyzeStore), not the groups batches changed (the
	// benchmarks' baseline).
	wholeHistory atomic.Bool
	digest       string // the pump 2.4.0 firmware
}

type envOpt func(*Deps, *[]Option)

// breakLog makes every later read and write of the log's entries fail, as
// a damaged log.db would; the other files still work.
func (e *env) breakLog() {
	e.t.Helper()
	raw, err := sql.Open("sqlite", filepath.Join(e.dir, "wardgate.db"))
	if err != nil {
		e.t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`ALTER TABLE entries RENAME TO entries_damaged`); err != nil {
		e.t.Fatal(err)
	}
}

func newEnv(t testing.TB, eo ...envOpt) *env {
	t.Helper()
	return newEnvAt(t, t.TempDir(), nil, eo...)
}

// newEnvIn is newEnv with its state (stores, log, work directory) in dir.
func newEnvIn(t testing.TB, dir string, eo ...envOpt) *env {
	t.Helper()
	return newEnvAt(t, dir, nil, eo...)
}

// newEnvStore is newEnv with options for the store (a small reader pool).
func newEnvStore(t testing.TB, so []store.Option, eo ...envOpt) *env {
	t.Helper()
	return newEnvAt(t, t.TempDir(), so, eo...)
}

func newEnvAt(t testing.TB, dir string, so []store.Option, eo ...envOpt) *env {
	t.Helper()
	ctx := t.Context()
	e := &env{t: t, tokens: map[Role]Secret{}, dir: dir}
	tc, err := trust.Load("../fixtures/trust.yaml")
	if err != nil {
		t.Fatal(err)
	}
	eng, err := policy.New(ctx, policy.WithTrust(tc))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(attest.PasswordEnv, "")
	key, _, err := attest.Keygen(filepath.Join(dir, "signing"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := attest.LoadSigner(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if e.st, err = sqlite.Open(ctx, dir, so...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.st.Close() })
	if e.log, err = attest.OpenLog(ctx, e.st, signer, ""); err != nil {
		t.Fatal(err)
	}
	inv, err := egress.ReadInventoryFile(fleet + "inventory.json")
	if err != nil {
		t.Fatal(err)
	}
	e.inv.Store(inv)
	ecfg, err := egress.ReadConfigFile(fleet + "config.json")
	if err != nil {
		t.Fatal(err)
	}
	live := egress.NewLive() // the incremental analysis, as gate.Open's
	if e.risk, err = gate.NewRiskCache(func(ctx context.Context) (egress.Report, error) {
		if e.failRisk.Load() {
			return egress.Report{}, errors.New("egress.db: disk I/O error")
		}
		time.Sleep(time.Duration(e.slowRisk.Load()))
		if e.wholeHistory.Load() {
			return egress.AnalyzeStore(ctx, e.st, e.inv.Load(), ecfg)
		}
		return live.Analyze(ctx, e.st, e.inv.Load(), ecfg)
	}, time.Hour, nil); err != nil {
		t.Fatal(err)
	}
	g, err := gate.New(tc, eng, e.st, gate.WithLog(e.log), gate.WithFleet(e.risk), gate.WithInstallations(e.st), gate.WithoutSBOMGeneration())
	if err != nil {
		t.Fatal(err)
	}
	if e.recs, err = gate.OpenRecords(ctx, e.st); err != nil {
		t.Fatal(err)
	}
	tokens := NewTokens(e.st)
	for _, r := range Roles {
		if e.tokens[r], err = tokens.Create(ctx, r, "test-"+string(r)); err != nil {
			t.Fatal(err)
		}
	}
	deps := Deps{Gate: g, Records: e.recs, Risk: e.risk, Log: e.log, Telemetry: e.st, Inventory: e.inv.Load, Tokens: tokens, WorkDir: filepath.Join(dir, "tmp")}
	opts := []Option{WithLimits(Limits{MaxUploadBytes: 4 << 20, MaxTelemetryBytes: 4 << 20, MaxJSONBytes: 4096, EvaluateWait: 200 * time.Millisecond, ReadTimeout: 2 * time.Second}),
		WithRegistries("registry.hospital.example")}
	for _, o := range eo {
		o(&deps, &opts)
	}
	if e.srv, err = New(deps, opts...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.srv.Close() })
	// The test server is the one `wardgate serve` runs: HTTPServer's
	// timeouts on Listener's connection limits.
	e.ts = httptest.NewUnstartedServer(nil)
	e.ts.Config = e.srv.HTTPServer("", nil)
	e.ts.Listener = e.srv.Listener(e.ts.Listener)
	e.ts.Start()
	t.Cleanup(e.ts.Close)
	b, err := os.ReadFile(fx + "/firmware/infusion-pump-2.4.0.bin")
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	e.digest = "sha256:" + hex.EncodeToString(s[:])
	return e
}

// routeOf maps a request path to its registered pattern.
func (e *env) routeOf(method, p string) string {
	p, _, _ = strings.Cut(p, "?")
	for _, r := range e.srv.Routes() {
		if r.Method != method {
			continue
		}
		ps, qs := strings.Split(r.Path, "/"), strings.Split(p, "/")
		if len(ps) != len(qs) {
			continue
		}
		ok := true
		for i := range ps {
			if !strings.HasPrefix(ps[i], "{") && ps[i] != qs[i] {
				ok = false
				break
			}
		}
		if ok {
			return r.Method + " " + r.Path
		}
	}
	return ""
}

type resp struct {
	status int
	body   []byte
	header http.Header
}

func (r resp) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("status %d, body is not JSON: %v\n%s", r.status, err, r.body)
	}
}

// errorCode checks the JSON error body and returns its code.
func (r resp) errorCode(t testing.TB) string {
	t.Helper()
	var b errorBody
	r.json(t, &b)
	if b.Error.Code == "" || b.Error.Message == "" || b.Error.RequestID == "" || r.header.Get("X-Request-Id") != b.Error.RequestID {
		t.Fatalf("incomplete error body: %s (X-Request-Id %q)", r.body, r.header.Get("X-Request-Id"))
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error content type %q", ct)
	}
	return b.Error.Code
}

func (e *env) do(method, path string, role Role, ctype string, body io.Reader, hdr ...string) resp {
	e.t.Helper()
	req, err := http.NewRequest(method, e.ts.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if role != "" {
		req.Header.Set("Authorization", "Bearer "+string(e.tokens[role]))
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := e.ts.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if rt := e.routeOf(method, path); rt != "" {
		obsMu.Lock()
		m, _ := observed.LoadOrStore(rt, map[int]bool{})
		m.(map[int]bool)[res.StatusCode] = true
		obsMu.Unlock()
	}
	return resp{status: res.StatusCode, body: b, header: res.Header}
}

func (e *env) postJSON(path string, role Role, v any) resp {
	e.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.do("POST", path, role, "application/json", bytes.NewReader(b))
}

// upload builds the multipart body of a pump release.
func upload(t testing.TB, fields map[string]string, files map[string]string) (string, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, k := range slices.Sorted(mapsKeys(fields)) {
		if err := mw.WriteField(k, fields[k]); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range slices.Sorted(mapsKeys(files)) {
		name, _, _ := strings.Cut(k, "#")
		w, err := mw.CreateFormFile(name, filepath.Base(files[k]))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(files[k])
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return mw.FormDataContentType(), &buf
}

func mapsKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

var pumpFields = map[string]string{"vendor": "acme-infusion", "product": "infusion-pump", "version": "2.4.0"}

func pumpFiles() map[string]string {
	return map[string]string{
		"firmware":  fx + "/firmware/infusion-pump-2.4.0.bin",
		"signature": fx + "/sig/infusion-pump-2.4.0.bin.sig",
		"bundle":    fx + "/keyless/infusion-pump-2.4.0.bin.v0.3.sigstore.json",
		"sbom":      fx + "/sbom/infusion-pump-2.4.0.cdx.json",
	}
}

// evaluate posts the genuine pump release as role.
func (e *env) evaluate(role Role) UpdateResponse {
	e.t.Helper()
	ct, body := upload(e.t, pumpFields, pumpFiles())
	r := e.do("POST", "/v1/updates", role, ct, body)
	var u UpdateResponse
	r.json(e.t, &u)
	if r.status != 200 || !u.Allow || u.Digest != e.digest || u.LogEntry == nil {
		e.t.Fatalf("evaluate: %d %s", r.status, r.body)
	}
	return u
}

func (e *env) admit(dev, class, installed string) AdmissionResponse {
	e.t.Helper()
	r := e.postJSON("/v1/admissions", RoleUpdateServer, map[string]any{"digest": e.digest, "device": map[string]string{"id": dev, "class": class, "installedVersion": installed}})
	if r.status != 200 {
		e.t.Fatalf("admit: %d %s", r.status, r.body)
	}
	var a AdmissionResponse
	r.json(e.t, &a)
	return a
}

func codes(d policy.Decision) []string { return codesOf(d) }

func TestEvaluateAndAdmit(t *testing.T) {
	e := newEnv(t)
	u := e.evaluate(RoleCI)
	if u.Artifact.Name != "infusion-pump-2.4.0.bin" || u.Artifact.Version != "2.4.0" || !slices.Equal(u.Artifact.DeviceClasses, []string{"infusion-pump"}) {
		t.Fatalf("artifact = %+v", u.Artifact)
	}
	// Admin may evaluate too.
	if r := e.do("POST", "/v1/updates", RoleAdmin, "application/json", strings.NewReader(`{"image":"example.com/x:latest","vendor":"v","product":"p","version":"1"}`)); r.status != 400 || r.errorCode(t) != "bad-request" {
		t.Fatalf("tag reference: %d %s", r.status, r.body)
	}
	cases := []struct {
		name, dev, class, installed string
		allow                       bool
		codes                       []string
		msg                         string
	}{
		{"allowed", "HOSP-IOT-PUMP-09", "infusion-pump", "2.3.0", true, nil, ""},
		{"wrong device class", "MRI-01", "mri-console", "", false, []string{"wrong-device-class", "wrong-device-class"}, "MRI-01"},
		{"rollback", "PUMP-77", "infusion-pump", "2.5.1", false, []string{"rollback"}, "installed on device PUMP-77"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := e.admit(tc.dev, tc.class, tc.installed)
			if a.Allow != tc.allow || !a.Evaluated || !slices.Equal(codes(a.Decision), tc.codes) || a.LogEntry == nil || a.RiskState != "clean" || a.Digest != e.digest {
				t.Fatalf("admission = %+v", a)
			}
			if tc.msg != "" && !strings.Contains(a.Decision.Violations[0].Message, tc.msg) {
				t.Fatalf("message %q lacks %q", a.Decision.Violations[0].Message, tc.msg)
			}
		})
	}
	// By release instead of digest.
	r := e.postJSON("/v1/admissions", RoleAdmin, map[string]any{"vendor": "acme-infusion", "product": "infusion-pump", "version": "2.4.0", "device": map[string]string{"id": "P-1", "class": "infusion-pump"}})
	var a AdmissionResponse
	r.json(t, &a)
	if r.status != 200 || !a.Allow {
		t.Fatalf("by release: %d %s", r.status, r.body)
	}
	// Unknown digest: a 200 deny, could-not-evaluate, saying why.
	r = e.postJSON("/v1/admissions", RoleUpdateServer, map[string]any{"digest": "sha256:" + strings.Repeat("ab", 32), "device": map[string]string{"id": "P-1", "class": "infusion-pump"}})
	r.json(t, &a)
	if r.status != 200 || a.Allow || a.Evaluated || !slices.Equal(codes(a.Decision), []string{"could-not-evaluate"}) || !strings.Contains(a.Decision.Violations[0].Message, "update not evaluated") {
		t.Fatalf("unknown digest: %d %s", r.status, r.body)
	}
	// The read side. Installation intents do not change any update's
	// risk, so they do not drop the fleet analysis: the blast radius lags
	// by up to the cache TTL (an hour here). The read side answers from
	// the last complete analysis: wait for the one that covers them.
	e.risk.Invalidate()
	if _, err := e.risk.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	r = e.do("GET", "/v1/updates/"+e.digest, RoleAuditor, "", nil)
	var us UpdateState
	r.json(t, &us)
	if r.status != 200 || !us.Evaluated || us.Decision == nil || !us.Decision.Allow || us.Risk.State != "clean" || us.Artifact.Name != "infusion-pump-2.4.0.bin" {
		t.Fatalf("update state: %d %s", r.status, r.body)
	}
	if !slices.Equal(us.Risk.Installed, []string{"HOSP-IOT-PUMP-09", "P-1"}) {
		t.Fatalf("installed = %v", us.Risk.Installed)
	}
	if r := e.do("GET", "/v1/updates/sha256:"+strings.Repeat("0", 64), RoleAuditor, "", nil); r.status != 404 || r.errorCode(t) != "not-found" {
		t.Fatalf("unknown update: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/v1/updates/sha256:XYZ", RoleAuditor, "", nil); r.status != 400 || r.errorCode(t) != "bad-request" {
		t.Fatalf("bad digest: %d %s", r.status, r.body)
	}
	// Audit: who did what.
	r = e.do("GET", "/v1/audit?action=POST+%2Fv1%2Fadmissions", RoleAuditor, "", nil)
	var au AuditResponse
	r.json(t, &au)
	if r.status != 200 || len(au.Records) != 5 || au.Records[0].Token != "test-update-server" || au.Records[0].Outcome != "allow" || au.Records[1].Outcome != "deny" || au.Records[3].Token != "test-admin" {
		t.Fatalf("audit: %d %s", r.status, r.body)
	}
	// Metrics count the decisions by reason.
	r = e.do("GET", "/metrics", "", "", nil)
	for _, want := range []string{
		`wardgate_decisions_total{phase="admit",result="allow",reason="none"} 2`,
		`wardgate_decisions_total{phase="admit",result="deny",reason="rollback"} 1`,
		`wardgate_decisions_total{phase="admit",result="deny",reason="could-not-evaluate"} 1`,
		`wardgate_decisions_total{phase="evaluate",result="allow",reason="none"} 1`,
		`wardgate_http_request_duration_seconds_count{route="POST /v1/admissions"} 5`,
		`wardgate_http_requests_total{route="POST /v1/updates",status="400"} 1`,
	} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestEvaluateBadRequests(t *testing.T) {
	e := newEnv(t)
	files := pumpFiles()
	delete(files, "firmware")
	noFirmware, nfBody := upload(t, pumpFields, files)
	unknown, unBody := upload(t, map[string]string{"vendor": "acme-infusion", "colour": "red"}, nil)
	noVersion, nvBody := upload(t, map[string]string{"vendor": "acme-infusion", "product": "infusion-pump"}, pumpFiles())
	twoFw := pumpFiles()
	twoFw["firmware#2"] = fx + "/firmware/infusion-pump-2.3.0.bin"
	twoCT, twoBody := upload(t, pumpFields, twoFw)
	big := make([]byte, 5<<20)
	bigPath := filepath.Join(t.TempDir(), "big.bin")
	if err := os.WriteFile(bigPath, big, 0o600); err != nil {
		t.Fatal(err)
	}
	bigCT, bigBody := upload(t, pumpFields, map[string]string{"firmware": bigPath})
	cases := []struct {
		name   string
		ctype  string
		body   io.Reader
		status int
		code   string
	}{
		{"no firmware", noFirmware, nfBody, 400, "bad-request"},
		{"unknown field", unknown, unBody, 400, "bad-request"},
		{"no version", noVersion, nvBody, 400, "bad-request"},
		{"two firmware parts", twoCT, twoBody, 400, "bad-request"},
		{"oversized upload", bigCT, bigBody, 413, "too-large"},
		{"wrong content type", "text/plain", strings.NewReader("firmware"), 415, "unsupported-media-type"},
		{"multipart without boundary", "multipart/form-data", strings.NewReader("x"), 400, "bad-request"},
		{"malformed JSON", "application/json", strings.NewReader(`{"image": `), 400, "bad-request"},
		{"registry not allowed", "application/json", strings.NewReader(`{"image":"evil.example/pump@sha256:` + strings.Repeat("a", 64) + `","vendor":"v","product":"p","version":"1"}`), 400, "registry-not-allowed"},
		{"image without version", "application/json", strings.NewReader(`{"image":"registry.hospital.example/pump@sha256:` + strings.Repeat("a", 64) + `","vendor":"v","product":"p"}`), 400, "bad-request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", "/v1/updates", RoleCI, tc.ctype, tc.body)
			if r.status != tc.status || r.errorCode(t) != tc.code {
				t.Fatalf("%d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
		})
	}
	// An unsigned upload is a verdict, not an error.
	files = pumpFiles()
	delete(files, "signature")
	delete(files, "bundle")
	ct, body := upload(t, pumpFields, files)
	r := e.do("POST", "/v1/updates", RoleCI, ct, body)
	var u UpdateResponse
	r.json(t, &u)
	if r.status != 200 || u.Allow || !u.Evaluated || !slices.Equal(codes(u.Decision), []string{"unsigned"}) {
		t.Fatalf("unsigned: %d %s", r.status, r.body)
	}
	// A malformed vendor SBOM: the gate could not decide; a 200 deny.
	files = pumpFiles()
	files["sbom"] = fx + "/sbom/malformed.cdx.json"
	ct, body = upload(t, pumpFields, files)
	r = e.do("POST", "/v1/updates", RoleCI, ct, body)
	r.json(t, &u)
	if r.status != 200 || u.Allow || u.Evaluated || !slices.Equal(codes(u.Decision), []string{"could-not-evaluate"}) {
		t.Fatalf("malformed SBOM: %d %s", r.status, r.body)
	}
	// Every evaluation slot taken: 503, and the body is not read.
	for range cap(e.srv.evalSem) {
		e.srv.evalSem <- struct{}{}
	}
	ct, body = upload(t, pumpFields, pumpFiles())
	r = e.do("POST", "/v1/updates", RoleCI, ct, body)
	if r.status != 503 || r.errorCode(t) != "busy" || r.header.Get("Retry-After") != "1" {
		t.Fatalf("busy: %d %s", r.status, r.body)
	}
	for range cap(e.srv.evalSem) {
		<-e.srv.evalSem
	}
}

func TestAdmissionBadRequests(t *testing.T) {
	e := newEnv(t)
	e.evaluate(RoleCI)
	dev := `"device":{"id":"P-1","class":"infusion-pump"}`
	cases := []struct {
		name   string
		ctype  string
		body   string
		status int
		code   string
	}{
		{"malformed JSON", "application/json", `{"digest":`, 400, "bad-request"},
		{"not an object", "application/json", `[1,2]`, 400, "bad-request"},
		{"wrong type", "application/json", `{"digest": 7, ` + dev + `}`, 400, "bad-request"},
		{"unknown field", "application/json", `{"digest":"` + e.digest + `", "force": true, ` + dev + `}`, 400, "bad-request"},
		{"trailing data", "application/json", `{"digest":"` + e.digest + `", ` + dev + `} {}`, 400, "bad-request"},
		{"empty body", "application/json", ``, 400, "bad-request"},
		{"no device", "application/json", `{"digest":"` + e.digest + `"}`, 400, "bad-request"},
		{"no device class", "application/json", `{"digest":"` + e.digest + `","device":{"id":"P-1"}}`, 400, "bad-request"},
		{"bad digest", "application/json", `{"digest":"sha256:../../etc", ` + dev + `}`, 400, "bad-request"},
		{"no update named", "application/json", `{"vendor":"acme-infusion", ` + dev + `}`, 400, "bad-request"},
		{"wrong content type", "text/plain", `{"digest":"` + e.digest + `", ` + dev + `}`, 415, "unsupported-media-type"},
		{"no content type", "", `{}`, 415, "unsupported-media-type"},
		{"oversized body", "application/json", `{"digest":"` + e.digest + `", ` + dev + `, "vendor":"` + strings.Repeat("x", 5000) + `"}`, 413, "too-large"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.log.Checkpoint().Size
			r := e.do("POST", "/v1/admissions", RoleUpdateServer, tc.ctype, strings.NewReader(tc.body))
			if r.status != tc.status || r.errorCode(t) != tc.code {
				t.Fatalf("%d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
			if after := e.log.Checkpoint().Size; after != before {
				t.Fatalf("a refused request was logged: %d -> %d", before, after)
			}
		})
	}
}

// No token or an unknown one: 401; the wrong role: 403; and nothing done.
func TestRoles(t *testing.T) {
	e := newEnv(t)
	e.evaluate(RoleCI)
	admission := `{"digest":"` + e.digest + `","device":{"id":"P-1","class":"infusion-pump"}}`
	calls := []struct {
		method, path, ctype, body string
		allowed                   []Role
		okStatus                  int
	}{
		{"POST", "/v1/admissions", "application/json", admission, []Role{RoleUpdateServer, RoleAdmin}, 200},
		{"POST", "/v1/telemetry", "application/x-ndjson", "", []Role{RoleSensor, RoleAdmin}, 200},
		{"POST", "/v1/updates", "application/json", `{}`, []Role{RoleCI, RoleAdmin}, 400},
		{"POST", "/v1/updates/" + e.digest + "/rollout", "application/json", `{"class":"infusion-pump","action":"pause","reason":"test"}`, []Role{RoleAdmin}, 409},
		{"GET", "/v1/updates/" + e.digest, "", "", []Role{RoleAuditor, RoleAdmin}, 200},
		{"GET", "/v1/findings", "", "", []Role{RoleAuditor, RoleAdmin}, 200},
		{"GET", "/v1/log/checkpoint", "", "", []Role{RoleAuditor, RoleAdmin}, 200},
		{"GET", "/v1/log/entries/0", "", "", []Role{RoleAuditor, RoleAdmin}, 200},
		{"GET", "/v1/evidence", "", "", []Role{RoleAuditor, RoleAdmin}, 200},
		{"GET", "/v1/audit", "", "", []Role{RoleAuditor, RoleAdmin}, 200},
	}
	tel, err := os.ReadFile(fleet + "defender.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range calls {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			b := c.body
			if c.path == "/v1/telemetry" {
				b = string(tel[:bytes.IndexByte(tel, '\n')+1])
			}
			logSize := e.log.Checkpoint().Size
			ins, _ := e.st.Installations(t.Context())
			// No token, a malformed header, an unknown token.
			for _, auth := range []string{"", "Basic dXNlcjpwYXNz", "Bearer " + TokenPrefix + strings.Repeat("A", 43)} {
				req, _ := http.NewRequest(c.method, e.ts.URL+c.path, strings.NewReader(b))
				if auth != "" {
					req.Header.Set("Authorization", auth)
				}
				req.Header.Set("Content-Type", c.ctype)
				res, err := e.ts.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				rb, _ := io.ReadAll(res.Body)
				res.Body.Close()
				r := resp{status: res.StatusCode, body: rb, header: res.Header}
				obsMu.Lock()
				m, _ := observed.LoadOrStore(e.routeOf(c.method, c.path), map[int]bool{})
				m.(map[int]bool)[r.status] = true
				obsMu.Unlock()
				if r.status != 401 || r.errorCode(t) != "unauthorized" || res.Header.Get("WWW-Authenticate") == "" {
					t.Fatalf("auth %q: %d %s", auth, r.status, r.body)
				}
			}
			for _, role := range Roles {
				r := e.do(c.method, c.path, role, c.ctype, strings.NewReader(b))
				if slices.Contains(c.allowed, role) {
					if r.status != c.okStatus {
						t.Fatalf("%s: %d %s, want %d", role, r.status, r.body, c.okStatus)
					}
					continue
				}
				if r.status != 403 || r.errorCode(t) != "forbidden" {
					t.Fatalf("%s: %d %s, want 403", role, r.status, r.body)
				}
			}
			// Only the allowed calls changed anything: two admissions
			// (update-server, admin) logged; one or two installation
			// intents (the same device in the same second is one).
			if c.path == "/v1/admissions" {
				ins2, _ := e.st.Installations(t.Context())
				if got, n := e.log.Checkpoint().Size-logSize, len(ins2)-len(ins); got != 2 || n < 1 || n > 2 {
					t.Fatalf("log grew by %d, installations by %d; want 2 and 1 or 2", got, n)
				}
			}
		})
	}
	// Open routes need no token.
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if r := e.do("GET", p, "", "", nil); r.status != 200 {
			t.Fatalf("%s: %d %s", p, r.status, r.body)
		}
	}
}

// ingestInstallations records the fleet fixture's installations with the
// compromised update relabelled as the pump 2.4.0 firmware, out of band
// (as wardgate egress ingest --installs would), then drops the cache.
func (e *env) ingestInstallations() {
	e.t.Helper()
	b, err := os.ReadFile(fleet + "installations.json")
	if err != nil {
		e.t.Fatal(err)
	}
	if !strings.Contains(string(b), compromised) {
		e.t.Fatalf("fleet fixture no longer has %s", compromised)
	}
	ins, err := egress.ReadInstallations(strings.NewReader(strings.ReplaceAll(string(b), compromised, e.digest)))
	if err != nil {
		e.t.Fatal(err)
	}
	for _, in := range ins {
		if err := e.st.RecordInstallation(e.t.Context(), in); err != nil {
			e.t.Fatal(err)
		}
	}
	e.risk.Invalidate()
}

// A quarantine takes effect on the very next admission.
func TestQuarantineTakesEffectOnNextAdmission(t *testing.T) {
	e := newEnv(t)
	e.evaluate(RoleCI)
	e.ingestInstallations()
	if a := e.admit("HOSP-IOT-PUMP-30", "infusion-pump", "2.3.0"); !a.Allow || a.RiskState != "clean" {
		t.Fatalf("before telemetry: %+v", a)
	}
	tel, err := os.ReadFile(fleet + "defender.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	r := e.do("POST", "/v1/telemetry", RoleSensor, "application/x-ndjson", bytes.NewReader(tel), TelemetryFormatHeader, "defender-json")
	var tr TelemetryResponse
	r.json(t, &tr)
	if r.status != 200 || !tr.Added || tr.Stored == 0 || tr.Stats.Events != tr.Stored+tr.Unresolved {
		t.Fatalf("telemetry: %d %s", r.status, r.body)
	}
	var quarantined bool
	for _, u := range tr.Updates {
		quarantined = quarantined || (u.Digest == e.digest && u.State == "quarantined")
	}
	if !quarantined {
		t.Fatalf("the batch did not quarantine %s: %+v", e.digest, tr.Updates)
	}
	a := e.admit("HOSP-IOT-PUMP-30", "infusion-pump", "2.3.0")
	if a.Allow || !a.Evaluated || a.RiskState != "quarantined" || !slices.Equal(codes(a.Decision), []string{"quarantined"}) ||
		!strings.Contains(a.Decision.Violations[0].Message, "raw.githubusercontent.com") {
		t.Fatalf("after telemetry: %+v", a)
	}
	// The same batch again is recognised, not stored twice.
	r = e.do("POST", "/v1/telemetry", RoleSensor, "application/x-ndjson", bytes.NewReader(tel))
	r.json(t, &tr)
	if r.status != 200 || tr.Added || tr.Stored != 0 {
		t.Fatalf("duplicate: %d %s", r.status, r.body)
	}
	// Findings and blast radius.
	r = e.do("GET", "/v1/findings?severity=quarantined&update="+e.digest, RoleAuditor, "", nil)
	var fr FindingsResponse
	r.json(t, &fr)
	if r.status != 200 || len(fr.Findings) == 0 || fr.Findings[0].Update != e.digest || len(fr.Updates) != 1 || fr.Updates[0].State != "quarantined" {
		t.Fatalf("findings: %d %s", r.status, r.body)
	}
	// Findings are structured: devices, destinations, first and last
	// seen, bytes, connections. Notices about a class name no update.
	if f := fr.Findings[0]; len(f.Devices) == 0 || !slices.Contains(f.Destinations, "raw.githubusercontent.com") || f.FirstSeen.IsZero() || f.LastSeen.Before(f.FirstSeen) || f.Connections == 0 {
		t.Fatalf("finding fields: %+v", f)
	}
	r = e.do("GET", "/v1/findings?severity=notice", RoleAuditor, "", nil)
	fr = FindingsResponse{}
	r.json(t, &fr)
	if r.status != 200 || len(fr.Findings) == 0 || fr.Findings[0].Update != "" || fr.Findings[0].Code != "fleet-change" {
		t.Fatalf("notices: %d %s", r.status, r.body)
	}
	r = e.do("GET", "/v1/updates/"+e.digest, RoleAuditor, "", nil)
	var us UpdateState
	r.json(t, &us)
	if r.status != 200 || us.Risk.State != "quarantined" || len(us.Risk.Affected) == 0 || len(us.Risk.Installed) < len(us.Risk.Affected) || len(us.Findings) == 0 {
		t.Fatalf("update: %d %s", r.status, r.body)
	}
	r = e.do("GET", "/metrics", "", "", nil)
	if want := fmt.Sprintf("wardgate_telemetry_events_ingested_total %d", tr.Stats.Events-tr.Unresolved); !strings.Contains(string(r.body), "wardgate_findings{code=") ||
		!strings.Contains(string(r.body), `wardgate_decisions_total{phase="admit",result="deny",reason="quarantined"} 1`) || !strings.Contains(string(r.body), "wardgate_telemetry_events_ingested_total ") {
		t.Fatalf("metrics lack findings, quarantine or %s:\n%s", want, r.body)
	}
}

func TestTelemetryBadRequests(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name, ctype, format, body string
		status                    int
		code                      string
	}{
		{"wrong content type", "application/xml", "", "<x/>", 415, "unsupported-media-type"},
		{"unknown format header", "text/csv", "splunk", "a,b\n", 400, "unknown-format"},
		{"unrecognisable content", "application/x-ndjson", "", `{"hello":"world"}` + "\n", 400, "unknown-format"},
		{"empty", "application/x-ndjson", "", "", 400, "bad-request"},
		{"oversized", "text/csv", "", strings.Repeat("x", 5<<20), 413, "too-large"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var h []string
			if tc.format != "" {
				h = []string{TelemetryFormatHeader, tc.format}
			}
			r := e.do("POST", "/v1/telemetry", RoleSensor, tc.ctype, strings.NewReader(tc.body), h...)
			if r.status != tc.status || r.errorCode(t) != tc.code {
				t.Fatalf("%d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
		})
	}
	// Malformed lines are counted, not fatal.
	r := e.do("POST", "/v1/telemetry", RoleSensor, "application/x-ndjson", strings.NewReader(`{"Timestamp":"2026-01-05T00:02:22Z","DeviceName":"HOSP-IOT-PUMP-03","ActionType":"ConnectionSuccess","RemoteIP":"52.168.117.170","RemotePort":443,"RemoteUrl":"telemetry.acme-infusion.com","RemoteIPType":"Public","SentBytes":1,"ReceivedBytes":2}`+"\n{broken\n"))
	var tr TelemetryResponse
	r.json(t, &tr)
	if r.status != 200 || tr.Stored != 1 || tr.Stats.Malformed != 1 {
		t.Fatalf("malformed line: %d %s", r.status, r.body)
	}
	// Without an inventory telemetry cannot be mapped to devices: 409.
	e.inv.Store(nil)
	r = e.do("POST", "/v1/telemetry", RoleSensor, "text/csv", strings.NewReader("Timestamp,DeviceName\n"))
	if r.status != 409 || r.errorCode(t) != "no-inventory" {
		t.Fatalf("no inventory: %d %s", r.status, r.body)
	}
}

func TestLogAndEvidence(t *testing.T) {
	e := newEnv(t)
	e.evaluate(RoleCI)
	e.admit("P-1", "infusion-pump", "2.3.0")
	e.admit("P-2", "infusion-pump", "2.3.0")
	r := e.do("GET", "/v1/log/checkpoint", RoleAuditor, "", nil)
	var cp CheckpointResponse
	r.json(t, &cp)
	if r.status != 200 || cp.Size != 3 || !strings.HasPrefix(cp.Note, cp.Origin+"\n3\n") {
		t.Fatalf("checkpoint: %d %s", r.status, r.body)
	}
	root, _ := hex.DecodeString(cp.Root)
	for i := range 3 {
		r := e.do("GET", fmt.Sprintf("/v1/log/entries/%d", i), RoleAuditor, "", nil)
		var er EntryResponse
		r.json(t, &er)
		if r.status != 200 || er.Index != uint64(i) || er.TreeSize != 3 || er.Artifact != e.digest || er.Checkpoint != cp.Note {
			t.Fatalf("entry %d: %d %s", i, r.status, r.body)
		}
		var pf [][]byte
		for _, h := range er.InclusionProof {
			b, _ := hex.DecodeString(h)
			pf = append(pf, b)
		}
		leaf := rfc6962.DefaultHasher.HashLeaf(er.Envelope)
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, er.Index, er.TreeSize, leaf, pf, root); err != nil {
			t.Fatalf("entry %d: inclusion proof: %v", i, err)
		}
	}
	r = e.do("GET", "/v1/log/entries/2?treeSize=3", RoleAuditor, "", nil)
	if r.status != 200 {
		t.Fatalf("treeSize: %d %s", r.status, r.body)
	}
	bad := []struct {
		path   string
		status int
		code   string
	}{
		{"/v1/log/entries/abc", 400, "bad-request"},
		{"/v1/log/entries/-1", 400, "bad-request"},
		{"/v1/log/entries/1e3", 400, "bad-request"},
		{"/v1/log/entries/99999999999999999999999", 400, "bad-request"},
		{"/v1/log/entries/3", 404, "not-found"},
		{"/v1/log/entries/0?treeSize=9", 400, "bad-request"},
		{"/v1/log/entries/2?treeSize=2", 404, "not-found"},
		{"/v1/log/entries/0?size=1", 400, "bad-request"},
		{"/v1/log/entries/..%2F..%2Fx", 400, "bad-request"},
		{"/v1/log/entries/../x", 400, "bad-request"},
		{"/v1/log/entries/%2e%2e/x", 400, "bad-request"},
		{"/v1/log//checkpoint", 400, "bad-request"},
		{"/v1/evidence?since=yesterday", 400, "bad-request"},
		{"/v1/evidence?artifact=sha256:zz", 400, "bad-request"},
		{"/v1/evidence?until=2020-01-01T00:00:00Z&since=2021-01-01T00:00:00Z", 400, "bad-request"},
		{"/v1/evidence?format=zip", 400, "bad-request"},
		{"/v1/findings?severity=fatal", 400, "bad-request"},
		{"/v1/audit?limit=0", 400, "bad-request"},
		{"/v1/nothing", 404, "not-found"},
	}
	for _, b := range bad {
		t.Run(b.path, func(t *testing.T) {
			// The client would clean ../ itself: send the raw path.
			conn, err := net.Dial("tcp", strings.TrimPrefix(e.ts.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n", b.path, e.tokens[RoleAuditor])
			res, err := http.ReadResponse(bufioReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			r := resp{status: res.StatusCode, body: body, header: res.Header}
			if rt := e.routeOf("GET", b.path); rt != "" && !strings.Contains(b.path, "..") && !strings.Contains(b.path, "//") {
				obsMu.Lock()
				m, _ := observed.LoadOrStore(rt, map[int]bool{})
				m.(map[int]bool)[r.status] = true
				obsMu.Unlock()
			}
			if r.status != b.status || r.errorCode(t) != b.code {
				t.Fatalf("%d %s, want %d %s", r.status, r.body, b.status, b.code)
			}
		})
	}
	if r := e.do("DELETE", "/v1/admissions", RoleAdmin, "", nil); r.status != 405 || r.errorCode(t) != "method-not-allowed" || r.header.Get("Allow") != "POST" {
		t.Fatalf("DELETE: %d %s %v", r.status, r.body, r.header)
	}
	// An evidence pack of P-1's verdicts verifies offline.
	r = e.do("GET", "/v1/evidence?device=P-1", RoleAuditor, "", nil)
	if r.status != 200 || r.header.Get("Content-Type") != "application/gzip" || r.header.Get("X-Wardgate-Entries") != "1" {
		t.Fatalf("evidence: %d %v", r.status, r.header)
	}
	pack := filepath.Join(t.TempDir(), "pack.tar.gz")
	if err := os.WriteFile(pack, r.body, 0o600); err != nil {
		t.Fatal(err)
	}
	pub, err := e.log.Signer().PublicKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	rep, err := attest.VerifyPack(t.Context(), pack, pub, nil)
	if err != nil || !rep.Intact || rep.Entries != 1 || rep.TreeSize != 3 {
		t.Fatalf("pack: %v %+v", err, rep)
	}
	r = e.do("GET", "/v1/evidence?since=2020-01-01T00:00:00Z", RoleAuditor, "", nil)
	if r.status != 200 || r.header.Get("X-Wardgate-Entries") != "3" {
		t.Fatalf("evidence since: %d %v", r.status, r.header)
	}
}

// Whatever fails inside the admission path, the answer is a 200 deny.
func TestAdmissionFailsClosed(t *testing.T) {
	e := newEnv(t)
	e.evaluate(RoleCI)
	e.failRisk.Store(true)
	e.risk.Invalidate()
	if _, err := e.risk.Sync(t.Context()); err == nil { // as a telemetry batch would
		t.Fatal("the analysis did not fail")
	}
	r := e.postJSON("/v1/admissions", RoleUpdateServer, map[string]any{"digest": e.digest, "device": map[string]string{"id": "P-1", "class": "infusion-pump"}})
	var a AdmissionResponse
	r.json(t, &a)
	if r.status != 200 || a.Allow || a.Evaluated || !slices.Equal(codes(a.Decision), []string{"could-not-evaluate"}) {
		t.Fatalf("fleet store down: %d %s", r.status, r.body)
	}
	if strings.Contains(string(r.body), "disk I/O") || !strings.Contains(a.Decision.Violations[0].Message, a.RequestID) {
		t.Fatalf("internal error echoed or request id missing: %s", r.body)
	}
	// Readiness reports the fleet store, without the error.
	r = e.do("GET", "/readyz", "", "", nil)
	var rr ReadyResponse
	r.json(t, &rr)
	if r.status != 503 || rr.Status != "unavailable" || rr.Checks["fleet"] != "unavailable" || rr.Checks["tokens"] != "ok" || strings.Contains(string(r.body), "disk") {
		t.Fatalf("readyz: %d %s", r.status, r.body)
	}
	e.failRisk.Store(false)
	e.risk.Invalidate()
	// The log cannot be written: deny.
	e.breakLog()
	r = e.postJSON("/v1/admissions", RoleUpdateServer, map[string]any{"digest": e.digest, "device": map[string]string{"id": "P-2", "class": "infusion-pump"}})
	r.json(t, &a)
	if r.status != 200 || a.Allow || !slices.Equal(codes(a.Decision), []string{"could-not-evaluate"}) {
		t.Fatalf("log down: %d %s", r.status, r.body)
	}
	// The audit record is written with the log entry, from the policy's
	// allow; the failed log write then denies, and a second record for the
	// same request says so.
	r = e.do("GET", "/v1/audit?action=POST+%2Fv1%2Fadmissions", RoleAuditor, "", nil)
	var au AuditResponse
	r.json(t, &au)
	var outcomes []string
	for _, rec := range au.Records {
		if rec.RequestID == a.RequestID {
			outcomes = append(outcomes, rec.Outcome)
		}
	}
	if !slices.Equal(outcomes, []string{"allow", "deny"}) {
		t.Fatalf("audit of the failed admission %s: %q, want allow then deny: %s", a.RequestID, outcomes, r.body)
	}
	// Other routes: 500 with a request id, the cause not echoed.
	r = e.do("GET", "/v1/log/entries/0", RoleAuditor, "", nil)
	if r.status != 500 || r.errorCode(t) != "internal" || strings.Contains(string(r.body), "sql") || !strings.Contains(string(r.body), r.header.Get("X-Request-Id")) {
		t.Fatalf("internal error: %d %s", r.status, r.body)
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, func(_ *Deps, o *[]Option) {
		*o = append(*o, WithRateLimits(map[Role]RateLimit{RoleAuditor: {Rate: 0.001, Burst: 2}}))
	})
	for i, want := range []int{200, 200, 429} {
		r := e.do("GET", "/v1/log/checkpoint", RoleAuditor, "", nil)
		if r.status != want {
			t.Fatalf("call %d: %d %s", i, r.status, r.body)
		}
		if want == 429 && (r.errorCode(t) != "rate-limited" || r.header.Get("Retry-After") != "1") {
			t.Fatalf("429 body: %s", r.body)
		}
	}
	// Another token of the same role has its own bucket.
	if r := e.do("GET", "/v1/log/checkpoint", RoleAdmin, "", nil); r.status != 200 {
		t.Fatalf("admin: %d", r.status)
	}
}

// A client that sends its headers and then dribbles the body is cut off
// at the read deadline with a 408, and the server stays up.
func TestSlowBody(t *testing.T) {
	e := newEnv(t, func(_ *Deps, o *[]Option) { *o = append(*o, WithLimits(Limits{ReadTimeout: 300 * time.Millisecond})) })
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/admissions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"digest\":", e.tokens[RoleUpdateServer])
	res, err := http.ReadResponse(bufioReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	r := resp{status: res.StatusCode, body: b, header: res.Header}
	obsMu.Lock()
	m, _ := observed.LoadOrStore("POST /v1/admissions", map[int]bool{})
	m.(map[int]bool)[r.status] = true
	obsMu.Unlock()
	if r.status != 408 || r.errorCode(t) != "timeout" {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if r := e.do("GET", "/healthz", "", "", nil); r.status != 200 {
		t.Fatalf("server down after a slow client: %d", r.status)
	}
}

func TestTokens(t *testing.T) {
	st, err := sqlite.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tk := NewTokens(st)
	s, err := tk.Create(t.Context(), RoleSensor, "ward-7")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(s), TokenPrefix) || len(s) != len(TokenPrefix)+43 {
		t.Fatalf("token %q", s)
	}
	if _, err := tk.Create(t.Context(), RoleSensor, "ward-7"); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("duplicate name: %v", err)
	}
	if _, err := tk.Create(t.Context(), "root", ""); err == nil {
		t.Fatal("unknown role accepted")
	}
	p, err := tk.Authenticate(t.Context(), s)
	if err != nil || p != (Principal{Name: "ward-7", Role: RoleSensor}) {
		t.Fatalf("authenticate: %+v %v", p, err)
	}
	kept, err := st.ListTokens(t.Context())
	if err != nil || len(kept) != 1 || strings.Contains(kept[0].Hash, string(s)) || len(kept[0].Hash) != 64 {
		t.Fatalf("stored %+v, %v", kept, err)
	}
	if err := tk.Revoke(t.Context(), "ward-7"); err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Authenticate(t.Context(), s); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("revoked token: %v", err)
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "%v", slogValue(s))
	if strings.Contains(buf.String(), string(s)) {
		t.Fatal("secret logged")
	}
}

func slogValue(s Secret) any { return s.LogValue() }

// The admission hot path end to end: HTTP, auth, gate, log, installation,
// audit.
func BenchmarkAdmissionHTTP(b *testing.B) {
	e := newEnv(b)
	e.evaluate(RoleCI)
	body := []byte(`{"digest":"` + e.digest + `","device":{"id":"P-1","class":"infusion-pump","installedVersion":"2.3.0"}}`)
	auth := "Bearer " + string(e.tokens[RoleUpdateServer])
	client := e.ts.Client()
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("POST", e.ts.URL+"/v1/admissions", bytes.NewReader(body))
			req.Header.Set("Authorization", auth)
			req.Header.Set("Content-Type", "application/json")
			res, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				b.Fatal(res.StatusCode)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "admissions/s")
}

func bufioReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }
