package cli_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/cmd/wardgate/cli"
	"github.com/wardgate/wardgate/gate"
	"github.com/wardgate/wardgate/internal/fwtest"
	"github.com/wardgate/wardgate/store"
)

// TestServeFirmware: `wardgate serve` unpacks firmware under the limits of
// its configuration file, keeps file manifests so POST /v1/updates gets the
// file-level diff against the previous admitted release (the trojaned
// busybox of TestAdmitTrojanedExecutable), and scans an upload whose
// signature did not verify only when scan_unsigned (or --scan-unsigned)
// says so.
func TestServeFirmware(t *testing.T) {
	fwtest.Need(t, "mksquashfs")
	t.Setenv("WARDGATE_KEY_PASSWORD", "test-only")
	dir, state := t.TempDir(), t.TempDir()
	key := releaseKey(t, dir)
	trust := firmwareTrust(t, dir, "trust.yaml", "")
	// The root filesystem has 19 entries; 40 leaves room for the next
	// release and none for one with 30 more files.
	serverConfig := filepath.Join(dir, "server.yaml")
	fwtest.Write(t, serverConfig, []byte("limits:\n  max_unpack_files: 40\n"), 0o644)
	ci := token(t, state, "ci")

	// release makes a squashfs of root, signed with the release key, or
	// with a signature of other bytes when !signed.
	release := func(root string, signed bool) (img, sig, digest string) {
		img = fwtest.Squashfs(t, root, "gzip")
		b, err := os.ReadFile(img)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		signedSum := sum
		if !signed {
			signedSum = sha256.Sum256([]byte("other bytes"))
		}
		s, err := ecdsa.SignASN1(rand.Reader, key, signedSum[:])
		if err != nil {
			t.Fatal(err)
		}
		sig = img + ".sig"
		fwtest.Write(t, sig, []byte(base64.StdEncoding.EncodeToString(s)), 0o644)
		return img, sig, "sha256:" + hex.EncodeToString(sum[:])
	}
	type response struct {
		Allow    bool `json:"allow"`
		Decision struct {
			Violations []struct{ Code, Message string } `json:"violations"`
			Warnings   []struct{ Code, Message string } `json:"warnings"`
		} `json:"decision"`
	}
	post := func(url, version, img, sig string) response {
		t.Helper()
		code, body := postFirmware(t, url, ci, map[string]string{"vendor": "acme", "product": "pump", "version": version}, map[string]string{"firmware": img, "signature": sig})
		var r response
		if code != 200 || json.Unmarshal([]byte(body), &r) != nil {
			t.Fatalf("POST /v1/updates %s: %d %s", version, code, body)
		}
		return r
	}
	kept := func(digest string) bool {
		_, err := os.Stat(filepath.Join(state, "manifests", "sha256-"+strings.TrimPrefix(digest, "sha256:")))
		return err == nil
	}

	url, stop := startServeArgs(t, "--config", trust, "--state", state, "--server-config", serverConfig)
	root := fwtest.Rootfs(t, true)
	img, sig, _ := release(root, true)
	if r := post(url, "1.0.0", img, sig); !r.Allow {
		t.Fatalf("1.0.0: %+v", r)
	}
	// 1.0.1: the same packages, another executable as bin/busybox.
	other, err := os.ReadFile("/bin/false")
	if err != nil {
		t.Skipf("no /bin/false: %v", err)
	}
	fwtest.Write(t, filepath.Join(root, "bin/busybox"), other, 0o755)
	img, sig, trojaned := release(root, true)
	r := post(url, "1.0.1", img, sig)
	if !slices.ContainsFunc(r.Decision.Warnings, func(w struct{ Code, Message string }) bool { return w.Code == "executable-changed-same-version" }) {
		t.Fatalf("1.0.1: no executable-changed-same-version warning: %+v", r)
	}
	// 1.0.2: 30 more files than the root filesystem, past max_unpack_files.
	big := fwtest.Rootfs(t, true)
	for i := range 30 {
		fwtest.Write(t, filepath.Join(big, fmt.Sprintf("usr/share/app/table-%02d.txt", i)), []byte{byte(i)}, 0o644)
	}
	img, sig, _ = release(big, true)
	r = post(url, "1.0.2", img, sig)
	if r.Allow || len(r.Decision.Violations) != 1 || r.Decision.Violations[0].Code != "could-not-evaluate" ||
		!strings.Contains(r.Decision.Violations[0].Message, "40 files") {
		t.Fatalf("1.0.2 past the file limit: %+v", r)
	}
	res, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || !strings.Contains(string(metrics), "\nwardgate_limit_reached_total{limit=\"unpack_files\"} 1\n") {
		t.Fatalf("the file limit is not counted (%v):\n%s", err, metrics)
	}
	// An upload whose signature does not verify is not unpacked.
	unsignedRoot := fwtest.Rootfs(t, true)
	fwtest.Write(t, filepath.Join(unsignedRoot, "etc/motd"), []byte("unsigned 1\n"), 0o644)
	img, sig, unsigned := release(unsignedRoot, false)
	if r := post(url, "1.0.3", img, sig); r.Allow {
		t.Fatalf("unsigned 1.0.3 allowed: %+v", r)
	}
	if kept(unsigned) {
		t.Fatal("an upload whose signature did not verify was unpacked (its file manifest is kept) without scan_unsigned")
	}
	stop()

	// The file diff is in the evidence kept for the evaluation.
	st, err := store.Open(t.Context(), state)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := gate.OpenRecords(t.Context(), st)
	if err != nil {
		t.Fatal(err)
	}
	rec, ok := recs.Get(trojaned)
	if !ok || rec.Evidence.Files == nil || rec.Evidence.Files.FromVersion != "1.0.0" || len(rec.Evidence.Files.Changes) != 1 ||
		rec.Evidence.Files.Changes[0].Code != "executable-changed-same-version" || rec.Evidence.Files.Changes[0].Path != "bin/busybox" {
		t.Fatalf("kept evidence of 1.0.1: files %+v", rec)
	}

	// --scan-unsigned: the unsigned upload is unpacked (and still denied).
	url, stop = startServeArgs(t, "--config", trust, "--state", state, "--server-config", serverConfig, "--scan-unsigned")
	fwtest.Write(t, filepath.Join(unsignedRoot, "etc/motd"), []byte("unsigned 2\n"), 0o644)
	img, sig, unsigned = release(unsignedRoot, false)
	if r := post(url, "1.0.4", img, sig); r.Allow {
		t.Fatalf("unsigned 1.0.4 allowed: %+v", r)
	}
	if !kept(unsigned) {
		t.Fatal("--scan-unsigned: the unsigned upload was not unpacked")
	}
	stop()
}

// startServeArgs runs `wardgate serve` on a free loopback port until stop.
func startServeArgs(t *testing.T, args ...string) (url string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	logs := &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- cli.Main(ctx, append([]string{"serve", "--listen", "127.0.0.1:0", "--log-level", "info"}, args...), io.Discard, logs)
	}()
	addr := regexp.MustCompile(`"msg":"serving","addr":"([^"]+)"`)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if m := addr.FindStringSubmatch(logs.String()); m != nil {
			url = "http://" + m[1]
			break
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited %d:\n%s", code, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("serve did not start:\n%s", logs.String())
		}
	}
	return url, func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited %d:\n%s", code, logs.String())
		}
	}
}

// postFirmware posts a multipart POST /v1/updates.
func postFirmware(t *testing.T, url, tok string, fields, files map[string]string) (int, string) {
	t.Helper()
	var ff []formFile
	for field, p := range files {
		ff = append(ff, formFile{field, p, ""})
	}
	code, b := postForm(t, url+"/v1/updates", tok, fields, ff...)
	return code, string(b)
}
