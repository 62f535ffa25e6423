package server

import (
	"bufio"
	"bytes"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/evidence"
	"github.com/wardgate/wardgate/firmware"
	"github.com/wardgate/wardgate/gate"
	"github.com/wardgate/wardgate/policy"
	"github.com/wardgate/wardgate/store/sqlite"
	"github.com/wardgate/wardgate/trust"
)

// The auth scheme is case-insensitive (RFC 7235 section 2.1): "bearer",
// "BEARER" and "Bearer" all carry the token; other schemes do not.
func TestBearerSchemeCaseInsensitive(t *testing.T) {
	e := newEnv(t)
	tok := string(e.tokens[RoleAuditor])
	for _, h := range []string{"Bearer " + tok, "bearer " + tok, "BEARER " + tok, "bEaReR  " + tok} {
		r := e.do("GET", "/v1/log/checkpoint", "", "", nil, "Authorization", h)
		if r.status != 200 {
			t.Errorf("%q: %d %s", strings.Replace(h, tok, "TOKEN", 1), r.status, r.body)
		}
	}
	for _, h := range []string{"Basic " + tok, "Bearer" + tok, tok, "Bearer "} {
		r := e.do("GET", "/v1/log/checkpoint", "", "", nil, "Authorization", h)
		if r.status != 401 || r.errorCode(t) != "unauthorized" {
			t.Errorf("%q: %d %s", strings.Replace(h, tok, "TOKEN", 1), r.status, r.body)
		}
	}
}

// Request bodies are strict JSON: keys are case-sensitive, a repeated key
// is refused at any depth, invalid UTF-8 is refused rather than turned
// into U+FFFD, and identifiers carry no control or bidirectional
// formatting characters.
func TestStrictJSONAndIdentifiers(t *testing.T) {
	e := newEnv(t)
	e.evaluate(RoleCI)
	d := e.digest
	cases := []struct{ name, body, want string }{
		{"key in another case", `{"DIGEST":"` + d + `","device":{"id":"P-1","class":"infusion-pump"}}`, `key "DIGEST": keys are case-sensitive; the field is "digest"`},
		{"nested key in another case", `{"digest":"` + d + `","device":{"ID":"P-1","class":"infusion-pump"}}`, `key "device.ID": keys are case-sensitive; the field is "device.id"`},
		{"repeated key", `{"digest":"` + d + `","device":{"id":"P-1","class":"infusion-pump"},"digest":"sha256:` + strings.Repeat("0", 64) + `"}`, `key "digest" appears more than once`},
		{"repeated nested key", `{"digest":"` + d + `","device":{"id":"P-1","class":"infusion-pump","id":"P-2"}}`, `key "device.id" appears more than once`},
		{"invalid UTF-8", "{\"digest\":\"" + d + "\",\"device\":{\"id\":\"P-\xff\",\"class\":\"infusion-pump\"}}", "not valid UTF-8"},
		{"lone surrogate", `{"digest":"` + d + `","device":{"id":"P-\ud800","class":"infusion-pump"}}`, "device.id holds U+FFFD"},
		{"NUL in device id", `{"digest":"` + d + `","device":{"id":"P-1\u0000","class":"infusion-pump"}}`, "device.id holds control character U+0000"},
		{"newline in device id", `{"digest":"` + d + `","device":{"id":"P-1\nINJECTED","class":"infusion-pump"}}`, "device.id holds control character U+000A"},
		{"ANSI escape in class", `{"digest":"` + d + `","device":{"id":"P-1","class":"\u001b[2Jpump"}}`, "device.class holds control character U+001B"},
		{"bidi override in version", `{"digest":"` + d + `","device":{"id":"P-1","class":"infusion-pump","installedVersion":"2.3.0\u202e"}}`, "device.installedVersion holds bidirectional formatting character U+202E"},
		{"deep nesting", `{"digest":"` + d + `","device":{"id":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `,"class":"infusion-pump"}}`, "nested deeper than 64 levels"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", "/v1/admissions", RoleUpdateServer, "application/json", strings.NewReader(tc.body))
			if r.status != 400 || r.errorCode(t) != "bad-request" || !strings.Contains(r.message(t), tc.want) {
				t.Fatalf("%d %s, want 400 naming %q", r.status, r.body, tc.want)
			}
		})
	}
	// The same request, exactly cased, is admitted.
	r := e.do("POST", "/v1/admissions", RoleUpdateServer, "application/json", strings.NewReader(`{"digest":"`+d+`","device":{"id":"P-1","class":"infusion-pump","installedVersion":"2.3.0"}}`))
	if r.status != 200 || !strings.Contains(string(r.body), `"allow":true`) {
		t.Fatalf("exact request: %d %s", r.status, r.body)
	}
	// Multipart fields of an upload follow the same identifier rules.
	fields := map[string]string{"vendor": "acme-infusion", "product": "infusion-pump\x1b[31m", "version": "2.4.0"}
	ct, body := upload(t, fields, pumpFiles())
	r = e.do("POST", "/v1/updates", RoleCI, ct, body)
	if r.status != 400 || !strings.Contains(r.message(t), "product holds control character U+001B") {
		t.Fatalf("upload with an escape in product: %d %s", r.status, r.body)
	}
	// So do query parameters naming a device.
	r = e.do("GET", "/v1/evidence?device=P-1%0Ax", RoleAuditor, "", nil)
	if r.status != 400 || !strings.Contains(r.message(t), "device holds control character U+000A") {
		t.Fatalf("evidence for a device with a newline: %d %s", r.status, r.body)
	}
}

// message is the error body's message.
func (r resp) message(t testing.TB) string {
	t.Helper()
	var b errorBody
	r.json(t, &b)
	return b.Error.Message
}

// A batch is recorded as ingested only when it stored events, under a key
// that includes the format it was parsed as: Defender lines sent as
// zeek-tsv are refused with 422 and nothing is recorded, so the same body
// sent again with the right format (or none) is stored.
func TestTelemetryWrongFormatIsNotLost(t *testing.T) {
	e := newEnv(t)
	tel, err := os.ReadFile(fleet + "defender.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	batch := bytes.Join(bytes.SplitAfter(tel, []byte("\n"))[:20], nil)
	post := func(format string) (resp, TelemetryResponse) {
		t.Helper()
		var h []string
		if format != "" {
			h = []string{TelemetryFormatHeader, format}
		}
		r := e.do("POST", "/v1/telemetry", RoleSensor, "application/x-ndjson", bytes.NewReader(batch), h...)
		var tr TelemetryResponse
		if r.status == 200 {
			r.json(t, &tr)
		}
		return r, tr
	}
	for _, f := range []string{"zeek-tsv", "zeek-json", "ocsf-json", "defender-csv"} {
		r, _ := post(f)
		if r.status != 422 || r.errorCode(t) != "no-events" || !strings.Contains(r.message(t), "no line of the batch is an event of format "+f+": 20 lines, ") {
			t.Fatalf("as %s: %d %s", f, r.status, r.body)
		}
	}
	r, tr := post("")
	if r.status != 200 || !tr.Added || tr.Stored != 20 || tr.Stats.Format != "defender-json" {
		t.Fatalf("resent without the header: %d %s", r.status, r.body)
	}
	// The same body as the format it is: the same parse, the same batch.
	if r, tr = post("defender-json"); r.status != 200 || tr.Added || tr.Stored != 0 {
		t.Fatalf("resent as defender-json: %d %s", r.status, r.body)
	}
	// Events of devices the inventory does not know are not stored, and
	// the batch is not recorded: once the inventory knows them, they are.
	batch = []byte(strings.NewReplacer("HOSP-IOT-", "WARD-9-", `"LocalIP":"10.`, `"LocalIP":"11.`).Replace(string(batch)))
	r, _ = post("")
	if r.status != 422 || r.errorCode(t) != "no-events" || !strings.Contains(r.message(t), "none of the batch's 20 events is from a device in the fleet inventory") {
		t.Fatalf("unknown devices: %d %s", r.status, r.body)
	}
	inv, err := os.ReadFile(fleet + "inventory.json")
	if err != nil {
		t.Fatal(err)
	}
	ni, err := egress.ReadInventory(strings.NewReader(strings.ReplaceAll(string(inv), "HOSP-IOT-", "WARD-9-")))
	if err != nil {
		t.Fatal(err)
	}
	e.inv.Store(ni)
	if r, tr = post(""); r.status != 200 || !tr.Added || tr.Stored != 20 {
		t.Fatalf("after the inventory learnt the devices: %d %s", r.status, r.body)
	}
}

// slowUpload opens a connection that sends an upload's headers and then
// its body at a byte every interval, from local address from (a loopback
// address: 127.0.0.x). It returns the connection and a channel that gets
// the response status (0 when the connection ended without one).
func (e *env) slowUpload(from string, interval time.Duration) (net.Conn, <-chan int) {
	e.t.Helper()
	return e.slowPost(from, interval, "/v1/updates", RoleCI, "multipart/form-data; boundary=B",
		"--B\r\nContent-Disposition: form-data; name=\"firmware\"; filename=\"fw.bin\"\r\n\r\n")
}

// slowPost is slowUpload for any route: the headers, then start, then a
// byte every interval. The status is recorded for the OpenAPI check.
func (e *env) slowPost(from string, interval time.Duration, path string, role Role, ctype, start string) (net.Conn, <-chan int) {
	e.t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", strings.TrimPrefix(e.ts.URL, "http://"))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\nContent-Length: 100000\r\n\r\n%s", path, e.tokens[role], ctype, start)
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for range t.C {
			if _, err := c.Write([]byte("x")); err != nil {
				return
			}
		}
	}()
	status := make(chan int, 1)
	go func() {
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			status <- 0
			return
		}
		res.Body.Close()
		obsMu.Lock()
		m, _ := observed.LoadOrStore("POST "+path, map[int]bool{})
		m.(map[int]bool)[res.StatusCode] = true
		obsMu.Unlock()
		status <- res.StatusCode
	}()
	return c, status
}

// Two uploads trickling in at a byte a second hold no evaluation slot: an
// evaluation posted meanwhile runs at once (the body is received before a
// slot is taken). With a minimum body rate, the trickles are cut off with
// 408 once the grace has passed.
func TestSlowUploadsHoldNoEvaluationSlot(t *testing.T) {
	e := newEnv(t, func(_ *Deps, o *[]Option) {
		*o = append(*o, WithLimits(Limits{Evaluations: 2, MinBodyRate: 1 << 10, BodyRateGrace: 2 * time.Second}))
	})
	_, s1 := e.slowUpload("127.0.0.1", 200*time.Millisecond)
	_, s2 := e.slowUpload("127.0.0.1", 200*time.Millisecond)
	time.Sleep(300 * time.Millisecond) // both are in their handlers
	start := time.Now()
	e.evaluate(RoleCI)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the evaluation waited %s behind the slow uploads", d)
	}
	for i, s := range []<-chan int{s1, s2} {
		select {
		case st := <-s:
			if st != http.StatusRequestTimeout {
				t.Fatalf("slow upload %d: status %d, want 408", i+1, st)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("slow upload %d was not cut off", i+1)
		}
	}
	// A telemetry batch at a byte every 200 ms too.
	_, s3 := e.slowPost("127.0.0.1", 200*time.Millisecond, "/v1/telemetry", RoleSensor, "application/x-ndjson", "{")
	select {
	case st := <-s3:
		if st != http.StatusRequestTimeout {
			t.Fatalf("slow telemetry: status %d, want 408", st)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("slow telemetry was not cut off")
	}
	r := e.do("GET", "/metrics", "", "", nil)
	if !strings.Contains(string(r.body), `wardgate_limit_reached_total{limit="min_body_rate"} 3`) {
		t.Fatalf("metrics lack the body rate limit:\n%s", r.body)
	}
}

// Signature, bundle and SBOM parts are bounded: in count, each in size,
// and a multipart body in parts.
func TestUploadPartsBounded(t *testing.T) {
	e := newEnv(t, func(_ *Deps, o *[]Option) {
		*o = append(*o, WithLimits(Limits{MaxSignatureParts: 4, MaxSignatureBytes: 64 << 10, MaxSBOMBytes: 256 << 10, MaxPartsBytes: 300 << 10}))
	})
	dir := t.TempDir()
	big := filepath.Join(dir, "big.sig")
	if err := os.WriteFile(big, bytes.Repeat([]byte("A"), 65<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	bigSBOM := filepath.Join(dir, "big.cdx.json")
	if err := os.WriteFile(bigSBOM, bytes.Repeat([]byte(" "), 257<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	files := func(extra map[string]string) map[string]string {
		m := pumpFiles()
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	sigs := map[string]string{}
	for i := range 5 {
		sigs[fmt.Sprintf("signature#%d", i)] = fx + "/sig/infusion-pump-2.4.0.bin.sig"
	}
	mid := filepath.Join(dir, "mid.sig")
	if err := os.WriteFile(mid, bytes.Repeat([]byte("A"), 60<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	midSBOM := filepath.Join(dir, "mid.cdx.json")
	if err := os.WriteFile(midSBOM, bytes.Repeat([]byte(" "), 250<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name          string
		fields, files map[string]string
		status        int
		code, message string
	}{
		{"five signature parts", pumpFields, files(sigs), 400, "too-many-parts", "more than 4 signature and bundle parts"},
		{"a signature part over its limit", pumpFields, files(map[string]string{"signature#big": big}), 413, "too-large", "over the 65536 byte limit"},
		{"an SBOM over its limit", pumpFields, files(map[string]string{"sbom": bigSBOM}), 413, "too-large", "sbom part over the 262144 byte limit"},
		{"parts over their limit together", pumpFields, files(map[string]string{"bundle": mid, "signature": mid, "sbom": midSBOM}), 413, "too-large", "signature, bundle and SBOM parts over 307200 bytes together"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ct, body := upload(t, tc.fields, tc.files)
			r := e.do("POST", "/v1/updates", RoleCI, ct, body)
			if r.status != tc.status || r.errorCode(t) != tc.code || !strings.Contains(r.message(t), tc.message) {
				t.Fatalf("%d %s, want %d %s %q", r.status, r.body, tc.status, tc.code, tc.message)
			}
		})
	}
	// Within the limits the upload is evaluated, and nothing of the
	// refused ones is left in the work directory.
	e.evaluate(RoleCI)
	left, err := os.ReadDir(e.srv.deps.WorkDir)
	if err != nil || len(left) != 0 {
		t.Fatalf("work directory holds %v (%v)", left, err)
	}
}

// tmpfs mounts a tmpfs of size bytes for the test, or skips it when this
// process may not mount one.
func tmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Skipf("cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fill writes a file into dir until at most leave bytes are free.
func fill(t *testing.T, dir string, leave int64) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			t.Fatal(err)
		}
		if int64(st.Bavail)*st.Bsize <= leave {
			return
		}
		if _, err := f.Write(chunk); err != nil {
			return // full
		}
	}
}

// With the state filesystem full, /readyz says not ready, and telemetry
// and evaluations answer 503 no-space, naming no internal path: both when
// the free-space check refuses them and when a write fails with ENOSPC.
func TestFullDisk(t *testing.T) {
	tel, err := os.ReadFile(fleet + "defender.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T, e *env, what string, r resp) {
		t.Helper()
		if r.status != 503 || r.errorCode(t) != "no-space" || strings.Contains(string(r.body), e.srv.deps.WorkDir) || strings.Contains(string(r.body), "upload-") ||
			strings.Contains(string(r.body), "no space left") {
			t.Fatalf("%s: %d %s", what, r.status, r.body)
		}
	}
	t.Run("below the free-space minimum", func(t *testing.T) {
		e := newEnvIn(t, tmpfs(t, 16<<20), func(_ *Deps, o *[]Option) { *o = append(*o, WithLimits(Limits{MinFreeBytes: 2 << 20})) })
		e.evaluate(RoleCI)
		if r := e.do("GET", "/readyz", "", "", nil); r.status != 200 {
			t.Fatalf("readyz with space: %d %s", r.status, r.body)
		}
		fill(t, filepath.Dir(e.srv.deps.WorkDir), 1<<20)
		r := e.do("GET", "/readyz", "", "", nil)
		var rr ReadyResponse
		r.json(t, &rr)
		if r.status != 503 || rr.Checks["space"] != "unavailable" {
			t.Fatalf("readyz on a full disk: %d %s", r.status, r.body)
		}
		check(t, e, "telemetry", e.do("POST", "/v1/telemetry", RoleSensor, "application/x-ndjson", bytes.NewReader(tel)))
		ct, body := upload(t, pumpFields, pumpFiles())
		check(t, e, "evaluation", e.do("POST", "/v1/updates", RoleCI, ct, body))
		if r := e.do("GET", "/healthz", "", "", nil); r.status != 200 {
			t.Fatalf("healthz: %d", r.status)
		}
	})
	t.Run("writes fail with ENOSPC", func(t *testing.T) {
		e := newEnvIn(t, tmpfs(t, 16<<20), func(_ *Deps, o *[]Option) { *o = append(*o, WithLimits(Limits{MinFreeBytes: 1})) })
		fill(t, filepath.Dir(e.srv.deps.WorkDir), 256<<10)
		check(t, e, "telemetry", e.do("POST", "/v1/telemetry", RoleSensor, "application/x-ndjson", bytes.NewReader(tel)))
		big := filepath.Join(t.TempDir(), "fw.bin")
		if err := os.WriteFile(big, bytes.Repeat([]byte{0xa5}, 2<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		files := pumpFiles()
		files["firmware"] = big
		ct, body := upload(t, pumpFields, files)
		check(t, e, "evaluation", e.do("POST", "/v1/updates", RoleCI, ct, body))
		r := e.do("GET", "/metrics", "", "", nil)
		if !strings.Contains(string(r.body), `wardgate_limit_reached_total{limit="disk_full"} 2`) {
			t.Fatalf("metrics lack the full disk:\n%s", r.body)
		}
	})
}

// idleConns opens n keep-alive connections from local address from, each
// answered one /healthz, then left idle. It returns how many were served.
func (e *env) idleConns(from string, n int) int {
	e.t.Helper()
	served := 0
	for range n {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: time.Second}
		c, err := d.Dial("tcp", strings.TrimPrefix(e.ts.URL, "http://"))
		if err != nil {
			continue
		}
		e.t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(2 * time.Second))
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			continue
		}
		res.Body.Close()
		if res.StatusCode == 200 {
			served++
		}
	}
	return served
}

// Idle keep-alive connections cannot take the gate's file descriptors: a
// client address gets at most MaxConnsPerClient, and at MaxConns the
// longest-idle connection is closed to make room, so /healthz and
// admissions keep answering.
func TestConnectionLimits(t *testing.T) {
	e := newEnv(t, func(_ *Deps, o *[]Option) {
		*o = append(*o, WithLimits(Limits{MaxConnsPerClient: 8, MaxConns: 20}))
	})
	e.evaluate(RoleCI)
	if n := e.idleConns("127.0.0.2", 30); n != 8 {
		t.Fatalf("one client address was served on %d connections, want 8", n)
	}
	for i := 3; i <= 7; i++ { // 40 more idle connections from 5 addresses: over the budget
		e.idleConns(fmt.Sprintf("127.0.0.%d", i), 8)
	}
	for range 3 {
		start := time.Now()
		if r := e.do("GET", "/healthz", "", "", nil); r.status != 200 {
			t.Fatalf("healthz: %d", r.status)
		}
		a := e.admit("P-1", "infusion-pump", "2.3.0")
		if !a.Allow || time.Since(start) > 2*time.Second {
			t.Fatalf("admission after %s: %+v", time.Since(start), a)
		}
	}
	r := e.do("GET", "/metrics", "", "", nil)
	for _, want := range []string{`wardgate_limit_reached_total{limit="connections_per_client"} 22`, `wardgate_limit_reached_total{limit="connections"} `} {
		if !strings.Contains(string(r.body), want) {
			t.Fatalf("metrics lack %s:\n%s", want, r.body)
		}
	}
	if n := e.srv.metrics.conns.Load(); n > 20 {
		t.Fatalf("%d connections open, budget 20", n)
	}
}

// What a crash leaves in the work directory (upload, telemetry and export
// spools, syft's and stereoscope's directories) is removed when the server
// starts, and again when it closes; image scans leave no stereoscope-*
// directory behind in TMPDIR.
func TestWorkDirCleaned(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where syft and stereoscope make their directories
	work := filepath.Join(t.TempDir(), "tmp")
	stale := []string{"upload-123", "telemetry-456", "export-789", "stereoscope-1", "syft-archive-contents-2", "wardgate-sbom-3"}
	seed := func() {
		for _, n := range stale {
			if err := os.MkdirAll(filepath.Join(work, n, "x"), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(work, "keep.txt"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	left := func(dir string) []string {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return names
	}
	seed()
	e := newEnv(t, func(d *Deps, o *[]Option) {
		d.WorkDir = work
		// A gate that scans what it evaluates with syft.
		tc, err := trust.Load("../fixtures/trust.yaml")
		if err != nil {
			t.Fatal(err)
		}
		eng, err := policy.New(t.Context(), policy.WithTrust(tc))
		if err != nil {
			t.Fatal(err)
		}
		st, err := sqlite.Open(t.Context(), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if d.Gate, err = gate.New(tc, eng, st); err != nil {
			t.Fatal(err)
		}
	})
	if got := left(work); !slices.Equal(got, []string{"keep.txt"}) {
		t.Fatalf("after start the work directory holds %q", got)
	}
	// A firmware that is no archive is scanned by syft as a file, which
	// tries stereoscope's image providers on it.
	ct, body := upload(t, map[string]string{"vendor": "buildctl", "product": "hvac-controller", "version": "1.1.0"},
		map[string]string{"firmware": fx + "/firmware/hvac-controller-1.1.0.bin", "signature": fx + "/sig/hvac-controller-1.1.0.bin.sig"})
	r := e.do("POST", "/v1/updates", RoleCI, ct, body)
	// (Allowed or not: an empty scan is no SBOM, which this trust
	// configuration requires.)
	if r.status != 200 || !strings.Contains(string(r.body), `"evaluated":true`) {
		t.Fatalf("evaluation: %d %s", r.status, r.body)
	}
	if got := left(tmp); len(got) != 0 {
		t.Fatalf("the scan left %q in TMPDIR", got)
	}
	seed()
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	if got := left(work); !slices.Equal(got, []string{"keep.txt"}) {
		t.Fatalf("after Close the work directory holds %q", got)
	}
}

// A sensor posting constantly while each fleet analysis takes longer than
// the admission budget: admissions are answered within their budget from
// the last complete analysis, and allowed; a batch that quarantines the
// update is in force for the first admission after its answer.
func TestTelemetryFloodDoesNotStallAdmissions(t *testing.T) {
	e := newEnv(t, func(_ *Deps, o *[]Option) { *o = append(*o, WithLimits(Limits{AdmitTimeout: time.Second})) })
	e.evaluate(RoleCI)
	e.ingestInstallations()
	e.slowRisk.Store(int64(1500 * time.Millisecond)) // longer than the admission budget
	tel, err := os.ReadFile(fleet + "defender.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	line := string(bytes.SplitAfter(tel, []byte("\n"))[0])
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				// A new event each time (another second): a new batch.
				body := strings.Replace(line, "2026-01-05T00:02:22Z", time.Date(2026, 1, 5, 1, g, i%60, 0, time.UTC).Add(time.Duration(i/60)*time.Hour).Format(time.RFC3339), 1)
				r := e.do("POST", "/v1/telemetry", RoleSensor, "application/x-ndjson", strings.NewReader(body))
				if r.status != 200 {
					t.Errorf("telemetry: %d %s", r.status, r.body)
					return
				}
			}
		})
	}
	deadline := time.Now().Add(4 * time.Second)
	var n int
	var worst time.Duration
	for time.Now().Before(deadline) {
		start := time.Now()
		a := e.admit(fmt.Sprintf("P-%d", n), "infusion-pump", "2.3.0")
		d := time.Since(start)
		if !a.Allow || d > time.Second {
			t.Fatalf("admission %d after %s: %+v", n, d, a)
		}
		worst = max(worst, d)
		n++
	}
	close(stop)
	wg.Wait()
	t.Logf("%d admissions, slowest %s, %d analyses", n, worst, e.risk.Stats().Analyses)
	// The compromised batch: answered once an analysis includes it, and in
	// force for the next admission.
	r := e.do("POST", "/v1/telemetry", RoleSensor, "application/x-ndjson", bytes.NewReader(tel))
	if r.status != 200 {
		t.Fatalf("telemetry: %d %s", r.status, r.body)
	}
	if a := e.admit("HOSP-IOT-PUMP-30", "infusion-pump", "2.3.0"); a.Allow || a.RiskState != "quarantined" {
		t.Fatalf("after the compromised batch: %+v", a)
	}
}

// While an upload is received, its signature and SBOM parts are on disk in
// the upload's spool directory, not in memory: here both have arrived and
// the firmware part still trickles in.
func TestUploadPartsSpooled(t *testing.T) {
	e := newEnv(t)
	sig := bytes.Repeat([]byte("S"), 20<<10) // within slowPost's Content-Length
	sb := bytes.Repeat([]byte(" "), 30<<10)
	start := "--B\r\nContent-Disposition: form-data; name=\"signature\"; filename=\"fw.sig\"\r\n\r\n" + string(sig) +
		"\r\n--B\r\nContent-Disposition: form-data; name=\"sbom\"; filename=\"fw.cdx.json\"\r\n\r\n" + string(sb) +
		"\r\n--B\r\nContent-Disposition: form-data; name=\"firmware\"; filename=\"fw.bin\"\r\n\r\n"
	c, _ := e.slowPost("127.0.0.1", 50*time.Millisecond, "/v1/updates", RoleCI, "multipart/form-data; boundary=B", start)
	defer c.Close()
	want := map[int64]bool{int64(len(sig)): true, int64(len(sb)): true}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := map[int64]bool{}
		spools, _ := filepath.Glob(filepath.Join(e.srv.deps.WorkDir, "upload-*", ".part-*"))
		for _, p := range spools {
			if fi, err := os.Stat(p); err == nil {
				got[fi.Size()] = true
			}
		}
		if maps.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("spooled parts: %v in %v, want files of %v bytes", got, spools, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The limits without a route of their own (identifier length, JSON
// nesting, header bytes) are configurable and counted when reached.
func TestLimitMetrics(t *testing.T) {
	e := newEnv(t, func(_ *Deps, o *[]Option) {
		*o = append(*o, WithLimits(Limits{MaxJSONDepth: 1, MaxHeaderBytes: 1 << 10}))
	})
	long := strings.Repeat("p", evidence.MaxIdentifierBytes+1)
	r := e.postJSON("/v1/updates", RoleCI, map[string]any{"image": "registry.example/pump@sha256:" + strings.Repeat("ab", 32), "vendor": long, "product": "infusion-pump", "version": "2.4.0"})
	if r.status != 400 || !strings.Contains(r.message(t), "vendor longer than 256 bytes") {
		t.Fatalf("long identifier: %d %s", r.status, r.body)
	}
	// One level is allowed (the image request), two are not (the device
	// object of an admission).
	body := `{"digest":"` + e.digest + `","device":{"id":"P-1","class":"infusion-pump"}}`
	r = e.do("POST", "/v1/admissions", RoleUpdateServer, "application/json", strings.NewReader(body))
	if r.status != 400 || !strings.Contains(r.message(t), "JSON nested deeper than 1 levels") {
		t.Fatalf("nesting: %d %s", r.status, r.body)
	}
	c, err := net.Dial("tcp", strings.TrimPrefix(e.ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Over 1 KiB and net/http's 4 KiB of slack.
	fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", strings.Repeat("h", 8<<10))
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("big headers: %d", res.StatusCode)
	}
	m := string(e.do("GET", "/metrics", "", "", nil).body)
	for _, want := range []string{`wardgate_limit_reached_total{limit="identifier"} 1`, `wardgate_limit_reached_total{limit="json_depth"} 1`, `wardgate_limit_reached_total{limit="header_bytes"} 1`} {
		if !strings.Contains(m, want) {
			t.Fatalf("metrics lack %s:\n%s", want, m)
		}
	}
}

// The firmware unpacking limits are counted under unpack_bytes,
// unpack_files, unpack_depth and unpack_ratio, from the evaluation's error
// however deep the gate wrapped it (TestServeFirmware counts one through
// the server).
func TestUnpackLimitNames(t *testing.T) {
	for _, l := range []string{firmware.LimitBytes, firmware.LimitFiles, firmware.LimitDepth, firmware.LimitRatio} {
		err := fmt.Errorf("sbom: generate: %w", fmt.Errorf("unpack fw.bin: %w", &firmware.LimitError{Limit: l, Max: 1}))
		if got := unpackLimit(err); got != "unpack_"+l {
			t.Errorf("%s: %q", l, got)
		}
	}
	if got := unpackLimit(fmt.Errorf("x: %w", firmware.ErrUnsafe)); got != "" {
		t.Errorf("an unsafe entry is no limit: %q", got)
	}
	if got := unpackLimit(nil); got != "" {
		t.Errorf("nil: %q", got)
	}
}
