package cli_test

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// untar unpacks a test archive (regular files and directories only) into
// dir.
func untar(t *testing.T, archive, dir string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o700)
		case tar.TypeReg:
			var b []byte
			if b, err = io.ReadAll(tr); err == nil {
				err = os.WriteFile(p, b, fs.FileMode(h.Mode)&0o777)
			}
		default:
			t.Fatalf("%s: %s holds a %c", archive, h.Name, h.Typeflag)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func getJSON(t *testing.T, url, tok string, v any) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %d: %v", url, res.StatusCode, err)
	}
	return res.StatusCode
}

// A state directory made by the wardgate before the store package (commit
// aa806ec; testdata/legacy/mkstate.sh) keeps working: its log, tokens,
// audit trail, ledger and telemetry are where they were, and the kept
// evaluations and SBOMs it held in files are moved into the store on the
// first open, nothing lost.
func TestEarlierStateDir(t *testing.T) {
	t.Setenv("WARDGATE_KEY_PASSWORD", "")
	dir := t.TempDir()
	untar(t, "testdata/legacy/state-aa806ec.tar.gz", dir)
	state := filepath.Join(dir, "state")
	tok := func(role string) string {
		b, err := os.ReadFile(filepath.Join(dir, "inputs", role+".tok"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	// The log as the earlier wardgate left it: pump 2.3.0 admitted, 2.4.0
	// evaluated, three devices admitted.
	code, out, errOut := run(t, "attest", "log", "--state", state, "-o", "json")
	if code != 0 {
		t.Fatalf("attest log: %d %s", code, errOut)
	}
	var lg struct {
		Checkpoint struct{ Size int } `json:"checkpoint"`
		Entries    []struct{ Device, Result string }
	}
	if err := json.Unmarshal([]byte(out), &lg); err != nil {
		t.Fatal(err)
	}
	var devices []string
	for _, e := range lg.Entries {
		devices = append(devices, e.Device+" "+e.Result)
	}
	if want := []string{" PASSED", " PASSED", "LEGACY-PUMP-1 PASSED", "LEGACY-PUMP-2 PASSED", "LEGACY-PUMP-3 PASSED"}; lg.Checkpoint.Size != 5 || !slices.Equal(devices, want) {
		t.Fatalf("log: size %d, entries %q; want %q", lg.Checkpoint.Size, devices, want)
	}
	for _, d := range []string{"evaluations", "sboms"} {
		if _, err := os.Stat(filepath.Join(state, d)); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s/ is still there after the first open: %v", d, err)
		}
	}

	url, _, stop := startServe(t, state)
	// The update the earlier server evaluated is known, from its imported
	// record: devices are admitted from it with the earlier tokens.
	const digest = "sha256:1bb9998cc1c40e0f1bfd1a8a4a0d357548b295e01cb1e5fe91b541a676f1d187"
	var u struct {
		Evaluated bool
		Artifact  struct{ Version string }
	}
	if code := getJSON(t, url+"/v1/updates/"+digest, tok("auditor"), &u); code != 200 || !u.Evaluated || u.Artifact.Version != "2.4.0" {
		t.Fatalf("GET /v1/updates: %d %+v", code, u)
	}
	// fixtures/trust.yaml has changed since aa806ec (TUF pins), so the
	// gate finds the imported record, made under the earlier trust
	// configuration's digest, and refuses to admit from it: that it names
	// the earlier digest shows the record came through whole. The verdict
	// goes on the earlier log at index 5.
	adm := `{"digest":"` + digest + `","device":{"id":"NEW-PUMP-1","class":"infusion-pump","installedVersion":"2.3.0"}}`
	if code, body := postAdmission(t, url, tok("update-server"), adm); code != 200 || !strings.Contains(body, `"allow":false`) ||
		!strings.Contains(body, "gate: update evaluated under another trust configuration: "+digest+" was evaluated under sha256:f967a705edd0eb36f9e95f5a24c834ebde88229dafd7e3fce595719bf6c863b3") || !strings.Contains(body, `"index":5`) {
		t.Fatalf("admission: %d %s", code, body)
	}
	// The earlier audit trail goes on.
	var au struct {
		Records []struct{ Token, Target, Outcome string }
	}
	if code := getJSON(t, url+"/v1/audit?action=POST+%2Fv1%2Fadmissions", tok("auditor"), &au); code != 200 || len(au.Records) != 4 ||
		au.Records[0].Target != digest+" LEGACY-PUMP-1" || au.Records[3].Target != digest+" NEW-PUMP-1" || au.Records[0].Token != "legacy-update-server" {
		t.Fatalf("audit: %d %+v", code, au)
	}
	// The telemetry batch the earlier server ingested is recognised.
	batch, err := os.ReadFile(filepath.Join(dir, "inputs", "batch.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", url+"/v1/telemetry", strings.NewReader(string(batch)))
	req.Header.Set("Authorization", "Bearer "+tok("sensor"))
	req.Header.Set("Content-Type", "application/x-ndjson")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tr struct{ Added bool }
	err = json.NewDecoder(res.Body).Decode(&tr)
	res.Body.Close()
	if err != nil || res.StatusCode != 200 || tr.Added {
		t.Fatalf("telemetry sent again: %d added %v, %v", res.StatusCode, tr.Added, err)
	}
	stop()

	// The SBOM the earlier wardgate kept in sboms/ is the previous release's
	// SBOM now: pump 2.3.0 (admitted before) asked again after 2.4.0 is
	// diffed against it, its downgrades are warned about, and it is refused
	// as a rollback below the 2.4.0 the earlier ledger admitted.
	code, out, errOut = run(t, "admit", fx+"/firmware/infusion-pump-2.3.0.bin", "--config", "../../../fixtures/trust.yaml", "--state", state,
		"--vendor", "acme-infusion", "--product", "infusion-pump", "--version", "2.3.0", "--no-scan", "-o", "json",
		"--signature", fx+"/sig/infusion-pump-2.3.0.bin.sig", "--bundle", fx+"/keyless/infusion-pump-2.3.0.bin.v0.3.sigstore.json",
		"--sbom", fx+"/sbom/infusion-pump-2.3.0.cdx.json")
	var ao struct {
		Decision struct{ Violations, Warnings []struct{ Code string } }
		Evidence struct {
			SBOM struct {
				Diff *struct{ FromVersion string }
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &ao); err != nil {
		t.Fatalf("admit: %d %s %s", code, out, errOut)
	}
	// The earlier ledger's 2.4.0 is the highest admitted: 2.3.0 is a
	// rollback (versions never go back), diffed against 2.4.0.
	if code != 1 || len(ao.Decision.Violations) != 1 || ao.Decision.Violations[0].Code != "rollback" ||
		ao.Evidence.SBOM.Diff == nil || ao.Evidence.SBOM.Diff.FromVersion != "2.4.0" || len(ao.Decision.Warnings) != 2 || ao.Decision.Warnings[0].Code != "downgraded-component" {
		t.Fatalf("admit 2.3.0 after 2.4.0: %d %s %s", code, out, errOut)
	}
	// Everything verifies as one log.
	pack := filepath.Join(t.TempDir(), "pack.tar.gz")
	if code, out, errOut := run(t, "attest", "export", "--state", state, "--out", pack); code != 0 || !strings.Contains(out, "7 of 7 entries") {
		t.Fatalf("export: %d %s %s", code, out, errOut)
	}
	if code, out, _ := run(t, "attest", "verify", pack, "--key", filepath.Join(state, "signing.pub")); code != 0 || !strings.HasPrefix(out, "INTACT    ") {
		t.Fatalf("verify: %d %s", code, out)
	}
}
