package cli_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wardgate/wardgate/cmd/wardgate/cli"
)

// syncBuffer is a bytes.Buffer safe for the server's logger and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestServeValidation(t *testing.T) {
	code, _, errOut := run(t, "serve", "--state", t.TempDir())
	if code != 2 || !strings.Contains(errOut, "--config is required") {
		t.Fatalf("%d %s", code, errOut)
	}
	code, _, errOut = run(t, "serve", "--state", t.TempDir(), "--config", "x.yaml", "--client-ca", "ca.pem")
	if code != 2 || !strings.Contains(errOut, "--client-ca needs --tls-cert") {
		t.Fatalf("%d %s", code, errOut)
	}
	code, _, errOut = run(t, "serve", "--state", t.TempDir(), "--config", "x.yaml", "-o", "yaml")
	if code != 2 || !strings.Contains(errOut, "-o yaml: want json or text") {
		t.Fatalf("%d %s", code, errOut)
	}
}

// postUpdate posts the genuine pump 2.4.0 release to POST /v1/updates.
func postUpdate(t *testing.T, url, tok string) (int, string) {
	t.Helper()
	code, d := postForm(t, url+"/v1/updates", tok, map[string]string{"vendor": "acme-infusion", "product": "infusion-pump", "version": "2.4.0"},
		formFile{"firmware", fx + "/firmware/infusion-pump-2.4.0.bin", ""}, formFile{"signature", fx + "/sig/infusion-pump-2.4.0.bin.sig", ""},
		formFile{"bundle", fx + "/keyless/infusion-pump-2.4.0.bin.v0.3.sigstore.json", ""}, formFile{"sbom", fx + "/sbom/infusion-pump-2.4.0.cdx.json", ""})
	return code, string(d)
}

func postAdmission(t *testing.T, url, tok, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/v1/admissions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// startServe runs wardgate serve on state (the fixture trust
// configuration, no scanning) on a free loopback port, and returns its URL,
// its log and a func that shuts it down gracefully.
func startServe(t *testing.T, state string) (string, *syncBuffer, func()) {
	t.Helper()
	return serveWith(t, cli.ServeConfig{Trust: "../../../fixtures/trust.yaml", State: state, LogLevel: "info", NoScan: true, RiskTTL: time.Second})
}

// wardgate serve end to end: tokens from the CLI, an evaluation, an
// admission, a SIGHUP reload that drops no request and keeps the
// evaluation, a restart that still knows it, and a graceful shutdown.
func TestServe(t *testing.T) {
	t.Setenv("WARDGATE_KEY_PASSWORD", "test-only")
	state := t.TempDir()
	ci, us := token(t, state, "ci"), token(t, state, "update-server")
	start := func() (string, *syncBuffer, func()) { return startServe(t, state) }
	url, logs, stop := start()
	code, body := postUpdate(t, url, ci)
	if code != 200 || !strings.Contains(body, `"allow":true`) {
		t.Fatalf("evaluate: %d %s", code, body)
	}
	var u struct{ Digest string }
	json.Unmarshal([]byte(body), &u)
	adm := `{"digest":"` + u.Digest + `","device":{"id":"P-1","class":"infusion-pump","installedVersion":"2.3.0"}}`
	if code, body := postAdmission(t, url, us, adm); code != 200 || !strings.Contains(body, `"allow":true`) {
		t.Fatalf("admit: %d %s", code, body)
	}
	// SIGHUP while admissions run: none fails.
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	for range 4 {
		wg.Go(func() {
			for range 25 {
				if code, body := postAdmission(t, url, us, adm); code != 200 || !strings.Contains(body, `"allow":true`) {
					errs <- body
				}
			}
		})
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("admission during reload: %s", e)
	}
	for i := 0; !strings.Contains(logs.String(), `"msg":"reloaded"`); i++ {
		if i > 100 {
			t.Fatalf("no reload logged:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), `"route":"POST /v1/admissions","status":200`) || !strings.Contains(logs.String(), `"decision":"allow"`) {
		t.Fatalf("request log lines missing:\n%s", logs.String())
	}
	stop()
	// Restarted, the server still knows the evaluated update.
	url, _, stop = start()
	defer stop()
	if code, body := postAdmission(t, url, us, strings.Replace(adm, "P-1", "P-2", 1)); code != 200 || !strings.Contains(body, `"allow":true`) {
		t.Fatalf("admit after restart: %d %s", code, body)
	}
}
