package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/cmd/wardgate/cli"
)

// release is one update as both drivers send it: the file (and the name it
// is sent under), the caller's claims, and the signatures and SBOM given.
type release struct {
	file, name               string
	vendor, product, version string
	signature, bundle, sbom  string
}

func pumpRelease(version string) release {
	return release{file: fx + "/firmware/infusion-pump-" + version + ".bin", vendor: "acme-infusion", product: "infusion-pump", version: version,
		signature: fx + "/sig/infusion-pump-" + version + ".bin.sig", bundle: fx + "/keyless/infusion-pump-" + version + ".bin.v0.3.sigstore.json",
		sbom: fx + "/sbom/infusion-pump-" + version + ".cdx.json"}
}

func mriRelease(version string) release {
	return release{file: fx + "/firmware/mri-console-" + version + ".bin", vendor: "medimaging", product: "mri-console", version: version,
		signature: fx + "/sig/mri-console-" + version + ".bin.sig", sbom: fx + "/sbom/mri-console-" + version + ".cdx.json"}
}

// device is the device an admission is for.
type device struct{ id, class, installed string }

// failCase removes, unsigns, or contradicts the input of one configured
// check, and names the codes the deny must carry.
type failCase struct {
	check string
	prior []release // admitted first (each must be allowed)
	rel   release
	dev   device
	want  []string
	// config edits fixtures/trust.yaml for this case; nil: the fixtures'.
	config func(string) string
}

// The fail-closed matrix (issue 12): for each check the fixtures' trust
// configuration turns on, its input removed, unsigned, stale or
// contradictory gives a deny with the check's code, through wardgate admit
// and through POST /v1/updates + POST /v1/admissions (the same table, two
// drivers). Not in it yet: SBOM drift (it needs the scan, which the table
// turns off to stay fast; TestAdmitReasonCodes covers it), fleet risk and
// the egress manifest (TestAdmitQuarantined,
// TestEgressFindingsManifestMustBeSigned).
func TestFailClosedMatrix(t *testing.T) {
	pump := device{"P-1", "infusion-pump", ""}
	mri := device{"M-1", "mri-console", ""}
	unsigned := pumpRelease("2.4.0")
	unsigned.signature, unsigned.bundle = "", ""
	untrusted := pumpRelease("2.4.0")
	untrusted.signature, untrusted.bundle = fx+"/tampered/infusion-pump-2.4.0.bin.wrongkey.sig", fx+"/tampered/infusion-pump-2.4.0.bin.intruder.sigstore.json"
	oneSigner := pumpRelease("2.4.0")
	oneSigner.bundle = ""
	noSBOM := pumpRelease("2.4.0")
	noSBOM.sbom = ""
	rebuilt := pumpRelease("2.4.0")
	rebuilt.sbom = fx + "/sbom/infusion-pump-2.4.0.rebuilt.cdx.json"
	flippedRel := pumpRelease("2.4.0")
	flippedRel.file, flippedRel.name = fx+"/tampered/infusion-pump-2.4.0-flipped.bin", "infusion-pump-2.4.0.bin"
	flippedRel.signature = fx + "/sig/infusion-pump-2.4.0.bin.sigstore.json"
	belowMin := pumpRelease("2.3.0")
	belowMin.version = "2.2.9"
	relabelled := pumpRelease("2.4.0")
	relabelled.version = "9.9.9"
	reissued := pumpRelease("2.3.0")
	reissued.version = "2.4.0"
	mriClaim := mriRelease("7.2.0")
	mriClaim.version = "7.1.0"
	swapped := mriRelease("7.1.0")
	swapped.name, swapped.version, swapped.signature = "mri-console-7.2.0.bin", "7.2.0", fx+"/sig/mri-console-7.1.0.bin.sig"
	cases := []failCase{
		{check: "signature: none", rel: unsigned, dev: pump, want: []string{"unsigned"}},
		{check: "signature: untrusted signers", rel: untrusted, dev: pump, want: []string{"untrusted-signer"}},
		{check: "signature: content swapped", rel: flippedRel, dev: pump, want: []string{"digest-mismatch", "untrusted-signer"}},
		{check: "threshold: one of two", rel: oneSigner, dev: pump, want: []string{"threshold-not-met"}},
		{check: "sbom required: none", rel: noSBOM, dev: pump, want: []string{"sbom-missing"}},
		{check: "diff rules: component rebuilt", prior: []release{pumpRelease("2.3.0")}, rel: rebuilt, dev: pump, want: []string{"component-hash-changed"}},
		{check: "min version", rel: belowMin, dev: pump, want: []string{"rollback"}},
		{check: "device class", rel: pumpRelease("2.4.0"), dev: device{"P-1", "mri-console", ""}, want: []string{"wrong-device-class"}},
		{check: "installed version", rel: pumpRelease("2.4.0"), dev: device{"P-1", "infusion-pump", "2.5.1"}, want: []string{"rollback"}},
		{check: "ledger: rollback", prior: []release{pumpRelease("2.4.0")}, rel: pumpRelease("2.3.0"), dev: pump, want: []string{"rollback"}},
		{check: "ledger: version conflict", prior: []release{relabelled}, rel: pumpRelease("2.4.0"), dev: pump, want: []string{"rollback", "version-conflict"}},
		{check: "ledger: same version, other file", prior: []release{pumpRelease("2.4.0")}, rel: reissued, dev: pump, want: []string{"same-version-different-digest"}},
		{check: "metadata age: stale", rel: pumpRelease("2.4.0"), dev: pump, want: []string{"metadata-expired"},
			config: func(s string) string { return strings.Replace(s, "max_metadata_age: 3650d", "max_metadata_age: 1h", 1) }},
		// Without TUF metadata nothing stands in for the signature's
		// missing trusted time either.
		{check: "TUF metadata: none", rel: mriRelease("7.2.0"), dev: mri, want: []string{"metadata-missing", "metadata-untimed"},
			config: func(s string) string {
				return regexp.MustCompile(`(?m)^      repository: .*/tuf/medimaging\n`).ReplaceAllString(s, "")
			}},
		{check: "TUF metadata: version claim", rel: mriClaim, dev: mri, want: []string{"metadata-mismatch"}},
		// The TUF metadata did not verify the file, so it cannot stand in
		// for the signature's missing trusted time either.
		{check: "TUF metadata: expected digest", rel: swapped, dev: mri, want: []string{"digest-mismatch", "metadata-untimed"}},
	}
	drivers := []struct {
		name  string
		admit func(t *testing.T, state, config string, prior []release, rel release, dev device) []string
	}{
		{"admit", admitDriver},
		{"http", httpDriver},
	}
	t.Setenv("WARDGATE_KEY_PASSWORD", "test-only")
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			for _, tc := range cases {
				t.Run(tc.check, func(t *testing.T) {
					config := "../../../fixtures/trust.yaml"
					if tc.config != nil {
						config = fixtureTrust(t, tc.config)
					}
					got := d.admit(t, t.TempDir(), config, tc.prior, tc.rel, tc.dev)
					if !slices.Equal(got, tc.want) {
						t.Fatalf("codes = %v, want %v", got, tc.want)
					}
				})
			}
		})
	}
}

// admitArgs are the wardgate admit arguments of a release; the file is
// copied under its name when it is sent under another one.
func admitArgs(t *testing.T, config string, r release) []string {
	file := r.file
	if r.name != "" {
		file = filepath.Join(t.TempDir(), r.name)
		b, err := os.ReadFile(r.file)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"admit", file, "--config", config, "--vendor", r.vendor, "--product", r.product, "--version", r.version, "--no-scan", "--no-log", "-o", "json"}
	for flag, v := range map[string]string{"--signature": r.signature, "--bundle": r.bundle, "--sbom": r.sbom} {
		if v != "" {
			args = append(args, flag, v)
		}
	}
	return args
}

func admitDriver(t *testing.T, state, config string, prior []release, rel release, dev device) []string {
	t.Helper()
	for _, p := range prior {
		if code, r := admit(t, state, admitArgs(t, config, p)); code != 0 {
			t.Fatalf("prior %s: exit %d %+v", p.version, code, r)
		}
	}
	args := append(admitArgs(t, config, rel), "--device", dev.id, "--device-class", dev.class)
	if dev.installed != "" {
		args = append(args, "--installed-version", dev.installed)
	}
	code, r := admit(t, state, args)
	if code != 1 || r.Allow {
		t.Fatalf("exit %d, want 1 (deny): %+v", code, r)
	}
	return r.codes()
}

// decided is what both endpoints answer.
type decided struct {
	Allow    bool   `json:"allow"`
	Digest   string `json:"digest"`
	Decision struct {
		Violations []struct {
			Code string `json:"code"`
		} `json:"violations"`
	} `json:"decision"`
}

func (d decided) codes() []string {
	var out []string
	for _, v := range d.Decision.Violations {
		out = append(out, v.Code)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func httpDriver(t *testing.T, state, config string, prior []release, rel release, dev device) []string {
	t.Helper()
	ci, us := token(t, state, "ci"), token(t, state, "update-server")
	ctx, cancel := context.WithCancel(t.Context())
	addrc, done := make(chan string, 1), make(chan error, 1)
	logs := &syncBuffer{}
	cfg := cli.ServeConfig{Trust: config, State: state, Listen: "127.0.0.1:0", LogLevel: "warn", NoScan: true, RiskTTL: time.Second,
		Ready: func(a string) { addrc <- a }}
	go func() { done <- cli.RunServe(ctx, cfg, logs) }()
	var url string
	select {
	case a := <-addrc:
		url = "http://" + a
	case err := <-done:
		t.Fatalf("serve: %v\n%s", err, logs.String())
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}()
	for _, p := range prior {
		if code, u := postRelease(t, url, ci, p); code != 200 || !u.Allow {
			t.Fatalf("prior %s: %d %+v", p.version, code, u)
		}
	}
	code, u := postRelease(t, url, ci, rel)
	if code != 200 || u.Digest == "" {
		t.Fatalf("POST /v1/updates: %d %+v", code, u)
	}
	body, err := json.Marshal(map[string]any{"digest": u.Digest, "device": map[string]string{"id": dev.id, "class": dev.class, "installedVersion": dev.installed}})
	if err != nil {
		t.Fatal(err)
	}
	code, out := postAdmission(t, url, us, string(body))
	var a decided
	if err := json.Unmarshal([]byte(out), &a); err != nil || code != 200 || a.Allow {
		t.Fatalf("POST /v1/admissions: %d %v %s", code, err, out)
	}
	return a.codes()
}

// postRelease sends a release to POST /v1/updates as multipart form data.
func postRelease(t *testing.T, url, tok string, r release) (int, decided) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range map[string]string{"vendor": r.vendor, "product": r.product, "version": r.version} {
		if err := mw.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	name := r.name
	if name == "" {
		name = filepath.Base(r.file)
	}
	for _, f := range []struct{ field, path, name string }{{"firmware", r.file, name}, {"signature", r.signature, ""}, {"bundle", r.bundle, ""}, {"sbom", r.sbom, ""}} {
		if f.path == "" {
			continue
		}
		if f.name == "" {
			f.name = filepath.Base(f.path)
		}
		b, err := os.ReadFile(f.path)
		if err != nil {
			t.Fatal(err)
		}
		w, err := mw.CreateFormFile(f.field, f.name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest("POST", url+"/v1/updates", &buf)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var d decided
	if err := json.NewDecoder(res.Body).Decode(&d); err != nil {
		t.Fatalf("POST /v1/updates: %d: %v", res.StatusCode, err)
	}
	return res.StatusCode, d
}
