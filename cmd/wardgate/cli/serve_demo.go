package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wardgate/wardgate/attest"
	"github.com/wardgate/wardgate/evidence"
	"github.com/wardgate/wardgate/policy"
	"github.com/wardgate/wardgate/server"
	"github.com/wardgate/wardgate/store"
)

// `wardgate serve --demo` serves the story of scripts/demo.sh in the web
// console: a temporary state directory, the repository's fixtures, the
// gate evaluating four updates through the API, an update server asking
// for devices, the sensors posting the fleet's telemetry, and the
// compromised infusion pump update quarantined. It runs from a wardgate
// checkout (it reads fixtures/) until interrupted, then removes the state.

// demoFleetDigest is the fleet fixture's 3CX-like update; as in
// scripts/demo.sh, its pilot installations are relabelled with the digest
// of the real infusion pump 2.4.0 firmware.
const demoFleetDigest = "sha256:7889dee97295a5ad686303faf86796bcb60b09eddd8af8ccac51b789affed93b"

// DemoConfig configures RunServeDemo.
type DemoConfig struct {
	// Fixtures is the repository's fixtures directory.
	Fixtures string
	// Serve is the server configuration; Trust and State are set by the
	// demo.
	Serve ServeConfig
}

// demoStory talks to the demo's server like CI, an update server and the
// sensors do.
type demoStory struct {
	url    string
	fx     string
	tokens map[server.Role]string
	client *http.Client
}

func (d *demoStory) post(ctx context.Context, role server.Role, path, ctype string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+d.tokens[role])
	req.Header.Set("Content-Type", ctype)
	resp, err := d.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s: %s", path, resp.Status, bytes.TrimSpace(b))
	}
	return json.Unmarshal(b, out)
}

// update evaluates one firmware through POST /v1/updates.
func (d *demoStory) update(ctx context.Context, vendor, product, version, file string, parts map[string]string) (server.UpdateResponse, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, v := range map[string]string{"vendor": vendor, "product": product, "version": version} {
		if err := mw.WriteField(k, v); err != nil {
			return server.UpdateResponse{}, err
		}
	}
	files := map[string]string{"firmware": filepath.Join(d.fx, "testdata/firmware", file)}
	for k, v := range parts {
		files[k] = filepath.Join(d.fx, "testdata", v)
	}
	for _, k := range []string{"firmware", "signature", "bundle", "sbom"} {
		p, ok := files[k]
		if !ok {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return server.UpdateResponse{}, err
		}
		w, err := mw.CreateFormFile(k, filepath.Base(p))
		if err != nil {
			return server.UpdateResponse{}, err
		}
		if _, err := w.Write(b); err != nil {
			return server.UpdateResponse{}, err
		}
	}
	if err := mw.Close(); err != nil {
		return server.UpdateResponse{}, err
	}
	var out server.UpdateResponse
	err := d.post(ctx, server.RoleCI, "/v1/updates", mw.FormDataContentType(), &body, &out)
	return out, err
}

func (d *demoStory) admit(ctx context.Context, digest, device, class, installed string) (server.AdmissionResponse, error) {
	b, err := json.Marshal(server.AdmissionRequest{Digest: digest, Device: evidence.Device{ID: device, Class: class, InstalledVersion: installed}})
	if err != nil {
		return server.AdmissionResponse{}, err
	}
	var out server.AdmissionResponse
	err = d.post(ctx, server.RoleUpdateServer, "/v1/admissions", "application/json", bytes.NewReader(b), &out)
	return out, err
}

func fileDigest(p string) (string, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:]), nil
}

// prepareDemoState fills a new state directory: the fleet's inventory,
// detection configuration and pilot installations, and a token per role.
func prepareDemoState(ctx context.Context, fx, state, pumpDigest string) (map[server.Role]string, error) {
	fleet := filepath.Join(fx, "fleet", "testdata")
	cfgb, err := os.ReadFile(filepath.Join(fleet, "config.json"))
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(state, egressConfigFile), cfgb, 0o600); err != nil {
		return nil, err
	}
	ins, err := os.ReadFile(filepath.Join(fleet, "installations.json"))
	if err != nil {
		return nil, err
	}
	installs := filepath.Join(state, "tmp-installations.json")
	if err := os.WriteFile(installs, bytes.ReplaceAll(ins, []byte(demoFleetDigest), []byte(pumpDigest)), 0o600); err != nil {
		return nil, err
	}
	defer os.Remove(installs)
	if err := RunEgressIngest(ctx, EgressIngestConfig{State: state, Inventory: filepath.Join(fleet, "inventory.json"), Installs: installs, Format: "auto"}, io.Discard); err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, state)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	t := server.NewTokens(st)
	tokens := map[server.Role]string{}
	for _, r := range []server.Role{server.RoleCI, server.RoleUpdateServer, server.RoleSensor, server.RoleAuditor} {
		s, err := t.Create(ctx, r, "demo-"+string(r))
		if err != nil {
			return nil, err
		}
		tokens[r] = string(s)
	}
	return tokens, nil
}

// RunServeDemo loads the demo story into a temporary state directory and
// serves it until ctx is done. It prints where to look on out.
func RunServeDemo(ctx context.Context, cfg DemoConfig, out, stderr io.Writer) error {
	fx := cfg.Fixtures
	if _, err := os.Stat(filepath.Join(fx, "trust.yaml")); err != nil {
		return fmt.Errorf("--demo reads the story from the repository's fixtures directory (%s): run it from a wardgate checkout, or point --demo-fixtures at one: %w", fx, err)
	}
	pump := filepath.Join(fx, "testdata", "firmware", "infusion-pump-2.4.0.bin")
	pumpDigest, err := fileDigest(pump)
	if err != nil {
		return err
	}
	state, err := os.MkdirTemp("", "wardgate-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(state)
	fmt.Fprintf(out, "wardgate console demo: loading the story into %s\n", state)
	tokens, err := prepareDemoState(ctx, fx, state, pumpDigest)
	if err != nil {
		return fmt.Errorf("demo state: %w", err)
	}
	sc := cfg.Serve
	sc.Trust, sc.State = filepath.Join(fx, "trust.yaml"), state
	// The demo's state is temporary: without a password set, its service
	// key is created unencrypted (and serve says so).
	sc.UnencryptedKey = os.Getenv(attest.PasswordEnv) == ""
	ready := make(chan string, 1)
	sc.Ready = func(addr string) { ready <- addr }
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- RunServe(ctx, sc, stderr) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-served:
		return err
	}
	scheme := "http"
	if sc.TLSCert != "" {
		scheme = "https"
	}
	story := &demoStory{url: scheme + "://" + addr, fx: fx, tokens: tokens, client: &http.Client{Timeout: 10 * time.Minute}}
	if err := story.run(ctx, out, pumpDigest); err != nil {
		cancel()
		<-served
		return fmt.Errorf("demo story: %w", err)
	}
	fmt.Fprintf(out, `
The compromised infusion pump 2.4.0 update is quarantined. Look at it in the console:

  open      %s/ui/updates/%s
  sign in   with the auditor token %s

The gate's API is on %s (tokens: ci %s, update-server %s, sensor %s).
Press Ctrl-C to stop; the temporary state directory is removed.
`, story.url, pumpDigest, tokens[server.RoleAuditor], story.url, tokens[server.RoleCI], tokens[server.RoleUpdateServer], tokens[server.RoleSensor])
	err = <-served
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// run is scripts/demo.sh's story through the API: CI evaluates the pump
// 2.3.0 and 2.4.0, the MRI console and the HVAC controller; the update
// server admits a pump and refuses an MRI console the pump firmware; the
// sensors post the fleet's telemetry; the next pump is refused the
// quarantined update.
func (d *demoStory) run(ctx context.Context, out io.Writer, pumpDigest string) error {
	step := func(format string, args ...any) { fmt.Fprintf(out, "  "+format+"\n", args...) }
	for _, u := range []struct {
		vendor, product, version, file string
		parts                          map[string]string
	}{
		{"acme-infusion", "infusion-pump", "2.3.0", "infusion-pump-2.3.0.bin", map[string]string{"signature": "sig/infusion-pump-2.3.0.bin.sig", "bundle": "keyless/infusion-pump-2.3.0.bin.v0.3.sigstore.json", "sbom": "sbom/infusion-pump-2.3.0.cdx.json"}},
		{"acme-infusion", "infusion-pump", "2.4.0", "infusion-pump-2.4.0.bin", map[string]string{"signature": "sig/infusion-pump-2.4.0.bin.sig", "bundle": "keyless/infusion-pump-2.4.0.bin.v0.3.sigstore.json", "sbom": "sbom/infusion-pump-2.4.0.cdx.json"}},
		{"medimaging", "mri-console", "7.2.0", "mri-console-7.2.0.bin", map[string]string{"signature": "sig/mri-console-7.2.0.bin.sig", "sbom": "sbom/mri-console-7.2.0.cdx.json"}},
		{"buildctl", "hvac-controller", "1.1.0", "hvac-controller-1.1.0.bin", map[string]string{"bundle": "sig/hvac-controller-1.1.0.bin.sigstore.json", "sbom": "sbom/hvac-controller-1.1.0.cdx.json"}},
	} {
		r, err := d.update(ctx, u.vendor, u.product, u.version, u.file, u.parts)
		if err != nil {
			return err
		}
		step("CI evaluated %s/%s %s: %s", u.vendor, u.product, u.version, decisionWord(r.Allow, r.Decision.Violations))
	}
	for _, a := range []struct{ device, class, installed string }{{"HOSP-IOT-PUMP-05", "infusion-pump", "2.3.0"}, {"HOSP-IOT-MRI-01", "mri-console", ""}} {
		r, err := d.admit(ctx, pumpDigest, a.device, a.class, a.installed)
		if err != nil {
			return err
		}
		step("update server asked for %s: %s", a.device, decisionWord(r.Allow, r.Decision.Violations))
	}
	f, err := os.Open(filepath.Join(d.fx, "fleet", "testdata", "defender.jsonl"))
	if err != nil {
		return err
	}
	defer f.Close()
	var tr server.TelemetryResponse
	if err := d.post(ctx, server.RoleSensor, "/v1/telemetry", "application/x-ndjson", f, &tr); err != nil {
		return err
	}
	step("sensors posted %d events; %d update(s) not clean", tr.Stored, len(tr.Updates))
	r, err := d.admit(ctx, pumpDigest, "HOSP-IOT-PUMP-06", "infusion-pump", "2.3.0")
	if err != nil {
		return err
	}
	step("update server asked for HOSP-IOT-PUMP-06: %s", decisionWord(r.Allow, r.Decision.Violations))
	if r.Allow || r.RiskState != "quarantined" {
		return fmt.Errorf("the pump 2.4.0 update was not quarantined (risk state %q)", r.RiskState)
	}
	return nil
}

func decisionWord(allow bool, vs []policy.Violation) string {
	if allow {
		return "allow"
	}
	codes := make([]string, len(vs))
	for i, v := range vs {
		codes[i] = string(v.Code)
	}
	return "deny (" + strings.Join(codes, ", ") + ")"
}
