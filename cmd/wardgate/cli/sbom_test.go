package cli

// These tests are in package cli, not cli_test, to reach the progress line.

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/sbom"
)

// wardgate runs the CLI as the binary would.
func wardgate(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(t.Context(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const oldBOM = `{"bomFormat": "CycloneDX", "specVersion": "1.4", "components": [
  {"bom-ref": "a", "type": "library", "name": "lodash", "version": "4.9.0", "purl": "pkg:npm/lodash@4.9.0"},
  {"bom-ref": "b", "type": "library", "name": "openssl", "version": "3.0.13-1", "purl": "pkg:deb/debian/openssl@3.0.13-1",
   "hashes": [{"alg": "SHA-256", "content": "aa"}]},
  {"bom-ref": "c", "type": "library", "name": "left-pad", "version": "1.3.0", "purl": "pkg:npm/left-pad@1.3.0"}
]}`

// newBOM is SPDX: the diff reads across formats.
const newBOM = `{"spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT", "name": "fw",
 "documentNamespace": "https://example.com/fw", "creationInfo": {"created": "2026-01-01T00:00:00Z", "creators": ["Tool: test"]},
 "packages": [
  {"SPDXID": "SPDXRef-a", "name": "lodash", "versionInfo": "4.17.21", "downloadLocation": "NOASSERTION",
   "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": "pkg:npm/lodash@4.17.21"}]},
  {"SPDXID": "SPDXRef-b", "name": "openssl", "versionInfo": "3.0.13-1", "downloadLocation": "NOASSERTION",
   "checksums": [{"algorithm": "SHA256", "checksumValue": "bb"}],
   "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": "pkg:deb/debian/openssl@3.0.13-1"}]}
 ]}`

func TestSbomDiffOutputs(t *testing.T) {
	dir := t.TempDir()
	oldP := writeFile(t, dir, "old.cdx.json", oldBOM)
	newP := writeFile(t, dir, "new.spdx.json", newBOM)

	code, out, errOut := wardgate(t, "sbom", "diff", oldP, newP)
	wantTable := `CODE          NAME      FROM        TO
removed       left-pad  1.3.0       -
upgraded      lodash    4.9.0       4.17.21
hash-changed  openssl   SHA-256:aa  SHA-256:bb
summary: 1 removed, 1 upgraded, 1 hash-changed
`
	if code != 0 || out != wantTable || errOut != "" {
		t.Errorf("table: exit %d, stderr %q, out:\n%s\nwant:\n%s", code, errOut, out, wantTable)
	}

	code, out, _ = wardgate(t, "sbom", "diff", "-o", "json", oldP, newP)
	wantJSON := `{"summary":{"added":0,"dependency-added":0,"dependency-removed":0,"downgraded":0,"hash-changed":1,"license-changed":0,"removed":1,"supplier-changed":0,"upgraded":1},"changes":[` +
		`{"code":"removed","name":"left-pad","purl":"pkg:npm/left-pad@1.3.0","from":"1.3.0","to":"","identity":"pkg:npm/left-pad","ref":"c"},` +
		`{"code":"upgraded","name":"lodash","purl":"pkg:npm/lodash@4.17.21","from":"4.9.0","to":"4.17.21","identity":"pkg:npm/lodash","ref":"SPDXRef-a"},` +
		`{"code":"hash-changed","name":"openssl","purl":"pkg:deb/debian/openssl@3.0.13-1","from":"SHA-256:aa","to":"SHA-256:bb","version":"3.0.13-1","identity":"pkg:deb/debian/openssl","ref":"SPDXRef-b"}]}` + "\n"
	if code != 0 || out != wantJSON {
		t.Errorf("json: exit %d\n got %s\nwant %s", code, out, wantJSON)
	}

	code, out, _ = wardgate(t, "sbom", "diff", "-o", "markdown", oldP, newP)
	wantMD := "| Change | Component | From | To |\n|---|---|---|---|\n" +
		"| removed | `left-pad` | 1.3.0 | - |\n" +
		"| upgraded | `lodash` | 4.9.0 | 4.17.21 |\n" +
		"| hash-changed | `openssl` | SHA-256:aa | SHA-256:bb |\n\n" +
		"**Summary:** 1 removed, 1 upgraded, 1 hash-changed\n"
	if code != 0 || out != wantMD {
		t.Errorf("markdown: exit %d\n got %q\nwant %q", code, out, wantMD)
	}

	code, out, _ = wardgate(t, "sbom", "diff", oldP, oldP)
	if code != 0 || out != "summary: no changes\n" {
		t.Errorf("same file: exit %d, %q", code, out)
	}
}

func TestSbomDiffExitCodes(t *testing.T) {
	dir := t.TempDir()
	oldP := writeFile(t, dir, "old.json", oldBOM)
	newP := writeFile(t, dir, "new.json", newBOM)
	bad := writeFile(t, dir, "bad.json", `{"bomFormat": "CycloneDX", "specVersion": "1.9"}`)
	tests := []struct {
		name    string
		args    []string
		code    int
		wantErr string
	}{
		{"fail-on hit", []string{"--fail-on", "downgraded,hash-changed", oldP, newP}, 1, ""},
		{"fail-on miss", []string{"--fail-on", "added,downgraded", oldP, newP}, 0, ""},
		{"fail-on unknown code", []string{"--fail-on", "tampered", oldP, newP}, 2, "wardgate: --fail-on tampered: unknown code\n"},
		{"missing file", []string{oldP, filepath.Join(dir, "nope.json")}, 2, "no such file or directory"},
		{"unsupported version", []string{oldP, bad}, 2, `bad.json: sbom: unsupported spec version: CycloneDX JSON specVersion "1.9" (want 1.2 to 1.7)`},
		{"bad output", []string{"-o", "yaml", oldP, newP}, 2, "wardgate: -o yaml: want table, json or markdown\n"},
		{"one arg", []string{oldP}, 2, "accepts 2 arg(s), received 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := wardgate(t, append([]string{"sbom", "diff"}, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.code, errOut)
			}
			if !strings.Contains(errOut, tc.wantErr) || (tc.wantErr == "" && errOut != "") {
				t.Errorf("stderr %q, want %q", errOut, tc.wantErr)
			}
		})
	}
}

func TestSbomDiffProtonBridge(t *testing.T) {
	const shared = "../../../../shared/data/sbom"
	old, new := filepath.Join(shared, "proton-bridge-v1.6.3.bom.json"), filepath.Join(shared, "proton-bridge-v1.8.0.bom.json")
	if _, err := os.Stat(old); err != nil {
		t.Skipf("../shared/data/sbom absent: %v", err)
	}
	code, out, errOut := wardgate(t, "sbom", "diff", "--fail-on", "added,removed,downgraded,hash-changed,license-changed,supplier-changed", old, new)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if !strings.HasSuffix(out, "summary: 7 upgraded, 3 dependency-added, 3 dependency-removed\n") {
		t.Errorf("summary line: %q", out[strings.LastIndex(out[:len(out)-1], "\n")+1:])
	}
	if code, _, _ := wardgate(t, "sbom", "diff", "--fail-on", "upgraded", old, new); code != 1 {
		t.Errorf("--fail-on upgraded: exit %d, want 1", code)
	}
}

func TestSbomDrift(t *testing.T) {
	dir := t.TempDir()
	claimed := writeFile(t, dir, "vendor.json", oldBOM)
	observed := writeFile(t, dir, "observed.json", newBOM)
	code, out, errOut := wardgate(t, "sbom", "drift", "--claimed", claimed, "--observed", observed, "--fail-on", "undeclared,hash-mismatch")
	want := `CODE              NAME      FROM        TO
missing           left-pad  1.3.0       -
version-mismatch  lodash    4.9.0       4.17.21
hash-mismatch     openssl   SHA-256:aa  SHA-256:bb
summary: 1 missing, 1 version-mismatch, 1 hash-mismatch
`
	if code != 1 || out != want || errOut != "" {
		t.Errorf("exit %d (want 1), stderr %q, out:\n%s\nwant:\n%s", code, errOut, out, want)
	}
	code, _, errOut = wardgate(t, "sbom", "drift", "--claimed", claimed)
	if code != 2 || errOut != "wardgate: --claimed and --observed are required\n" {
		t.Errorf("no --observed: exit %d, %q", code, errOut)
	}
	code, _, errOut = wardgate(t, "sbom", "drift", "--claimed", claimed, "--observed", observed, "--fail-on", "added")
	if code != 2 || errOut != "wardgate: --fail-on added: unknown code\n" {
		t.Errorf("diff code given to drift: exit %d, %q", code, errOut)
	}
}

func TestSbomGenerateAndDriftFromSource(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "fw/opt/app/requirements.txt", "requests==2.31.0\nurllib3==2.0.7\n")
	fw := filepath.Join(root, "fw")
	out := filepath.Join(root, "fw.cdx.json")
	cache := filepath.Join(root, "cache")
	code, stdout, errOut := wardgate(t, "sbom", "generate", "dir:"+fw, "--file", out, "--cache-dir", cache)
	if code != 0 || stdout != "" || errOut != "" {
		t.Fatalf("generate: exit %d, stdout %q, stderr %q", code, stdout, errOut)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := sbom.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if d.Format != sbom.FormatCycloneDXJSON || d.SpecVersion != "1.7" {
		t.Errorf("generated %s %s", d.Format, d.SpecVersion)
	}
	// The vendor claims requests 2.31.0 and certifi; the tree has urllib3
	// instead of certifi.
	claimed := writeFile(t, root, "vendor.json", `{"bomFormat": "CycloneDX", "specVersion": "1.5", "components": [
	  {"type": "library", "name": "requests", "version": "2.31.0", "purl": "pkg:pypi/requests@2.31.0"},
	  {"type": "library", "name": "certifi", "version": "2024.2.2", "purl": "pkg:pypi/certifi@2024.2.2"}]}`)
	code, stdout, errOut = wardgate(t, "sbom", "drift", "--claimed", claimed, "--observed", "dir:"+fw, "--cache-dir", cache, "-o", "json")
	// syft's bom-refs carry a package id: checked apart, then dropped.
	if !strings.Contains(stdout, `"ref":"pkg:pypi/urllib3@2.0.7?package-id=`) {
		t.Errorf("undeclared urllib3 without its bom-ref: %s", stdout)
	}
	stdout = regexp.MustCompile(`,"ref":"[^"]*"`).ReplaceAllString(stdout, "")
	want := `{"summary":{"hash-mismatch":0,"missing":1,"undeclared":1,"version-mismatch":0},"changes":[` +
		`{"code":"undeclared","name":"urllib3","purl":"pkg:pypi/urllib3@2.0.7","from":"","to":"2.0.7","identity":"pkg:pypi/urllib3"},` +
		`{"code":"missing","name":"certifi","purl":"pkg:pypi/certifi@2024.2.2","from":"2024.2.2","to":"","identity":"pkg:pypi/certifi"}]}` + "\n"
	if code != 0 || stdout != want || errOut != "" {
		t.Errorf("drift from source: exit %d, stderr %q\n got %s\nwant %s", code, errOut, stdout, want)
	}
	code, _, errOut = wardgate(t, "sbom", "generate", "dir:"+filepath.Join(root, "nope"), "--no-cache")
	if code != 2 || !strings.Contains(errOut, "sbom: bad source") {
		t.Errorf("missing dir: exit %d, %q", code, errOut)
	}
}

func TestSbomProgressTerminal(t *testing.T) {
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	file, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	env := func(ci string) func(string) string {
		return func(k string) string {
			if k == "CI" {
				return ci
			}
			return ""
		}
	}
	tests := []struct {
		name string
		w    io.Writer
		ci   string
		want bool
	}{
		{"character device", devnull, "", true},
		{"character device, CI=false", devnull, "false", true},
		{"character device, CI=0", devnull, "0", true},
		{"character device, CI=true", devnull, "true", false},
		{"character device, CI=1", devnull, "1", false},
		{"pipe", pw, "", false},
		{"regular file", file, "", false},
		{"buffer", &bytes.Buffer{}, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, got := progressTerminal(tc.w, env(tc.ci)); got != tc.want {
				t.Errorf("progressTerminal = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSbomProgressLine(t *testing.T) {
	tests := []struct {
		files, packages int64
		indexing, want  string
		hashing         bool
	}{
		{0, 0, "", "scanning: 0 files read, 0 packages found", true},
		{1234567, 999, "", "scanning: 1,234,567 files read, 999 packages found", true},
		{1000, 1001, "/fw/usr/lib", "scanning: 1,000 files read, 1,001 packages found, indexing /fw/usr/lib", true},
		{5, 2, "/very/long/path/to/some/deeply/nested/dir/of/the/firmware/lib.so", "scanning: 5 files read, 2 packages found, indexing ...ply/nested/dir/of/the/firmware/lib.so", true},
		// --no-cache: nothing counts files, so no count is shown.
		{0, 12, "/fw/usr/lib", "scanning: 12 packages found, indexing /fw/usr/lib", false},
	}
	for _, tc := range tests {
		if got := progressLine(tc.files, tc.packages, tc.indexing, tc.hashing); got != tc.want {
			t.Errorf("progressLine(%d, %d, %q) = %q, want %q", tc.files, tc.packages, tc.indexing, got, tc.want)
		}
	}
}

func TestSbomDrawProgress(t *testing.T) {
	var buf bytes.Buffer
	stop := drawProgress(&buf, &sbom.Progress{}, time.Hour, true)
	stop()
	if want := "\r\x1b[Kscanning: 0 files read, 0 packages found\r\x1b[K"; buf.String() != want {
		t.Errorf("drew %q, want %q", buf.String(), want)
	}
}

// TestSbomGenerateQuietOnPipe: with standard error a pipe, generate writes
// nothing there, and the SBOM alone to standard output.
func TestSbomGenerateQuietOnPipe(t *testing.T) {
	t.Setenv("CI", "")
	root := t.TempDir()
	writeFile(t, root, "fw/opt/app/requirements.txt", "requests==2.31.0\n")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	var out bytes.Buffer
	code := Main(t.Context(), []string{"sbom", "generate", "dir:" + filepath.Join(root, "fw"), "--no-cache"}, &out, pw)
	pw.Close()
	errOut, err := io.ReadAll(pr)
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 || len(errOut) != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	d, err := sbom.Decode(&out)
	if err != nil || len(d.Components) == 0 {
		t.Fatalf("stdout is no SBOM with components: %v", err)
	}
}

// TestSbomGenerateSeveralOutputs is syft's -o FORMAT=FILE, repeated: one
// scan, written as CycloneDX and SPDX (and syft JSON on standard output),
// authored by wardgate at its version, and the two diff empty.
func TestSbomGenerateSeveralOutputs(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "fw/opt/app/requirements.txt", "requests==2.31.0\nurllib3==2.0.7\n")
	writeFile(t, root, "fw/var/lib/dpkg/status", "Package: zlib1g\nStatus: install ok installed\nMaintainer: Mark Brown <broonie@debian.org>\nArchitecture: amd64\nVersion: 1:1.2.13.dfsg-1\nDescription: z\n")
	a, b := filepath.Join(root, "a.json"), filepath.Join(root, "b.json")
	code, stdout, errOut := wardgate(t, "sbom", "generate", "dir:"+filepath.Join(root, "fw"), "--no-cache",
		"-o", "cyclonedx-json@1.5="+a, "-o", "spdx-json="+b, "-o", "json")
	if code != 0 || errOut != "" {
		t.Fatalf("generate: exit %d, stderr %q", code, errOut)
	}
	if !strings.Contains(stdout, `"artifacts"`) || !strings.Contains(stdout, `"name": "wardgate"`) {
		t.Errorf("syft JSON on standard output: %.400s", stdout)
	}
	var cdx struct {
		SpecVersion string `json:"specVersion"`
		Metadata    struct {
			Tools struct {
				Components []struct {
					Name, Version, Author, Publisher string
				} `json:"components"`
			} `json:"tools"`
		} `json:"metadata"`
	}
	data, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &cdx); err != nil {
		t.Fatal(err)
	}
	tools := cdx.Metadata.Tools.Components
	if cdx.SpecVersion != "1.5" || len(tools) != 2 || tools[0].Name != "wardgate" || tools[0].Version != Version || tools[0].Author != "" || tools[0].Publisher != "wardgate" || tools[1].Name != "syft" {
		t.Errorf("CycloneDX %s tools: %+v", cdx.SpecVersion, tools)
	}
	var spdx struct {
		Namespace    string `json:"documentNamespace"`
		CreationInfo struct {
			Creators []string `json:"creators"`
		} `json:"creationInfo"`
	}
	data, err = os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &spdx); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(spdx.Namespace, "https://wardgate.dev/spdxdocs/dir/") || len(spdx.CreationInfo.Creators) != 2 || spdx.CreationInfo.Creators[0] != "Tool: wardgate-"+Version || !strings.HasPrefix(spdx.CreationInfo.Creators[1], "Tool: syft") {
		t.Errorf("SPDX namespace %q, creators %q", spdx.Namespace, spdx.CreationInfo.Creators)
	}
	if strings.Contains(strings.ToLower(string(data)), "anchore") {
		t.Errorf("the SPDX document names Anchore")
	}
	code, stdout, errOut = wardgate(t, "sbom", "diff", a, b)
	if code != 0 || stdout != "summary: no changes\n" {
		t.Errorf("diff of the two: exit %d %q %s", code, stdout, errOut)
	}
	code, stdout, _ = wardgate(t, "sbom", "diff", a, b, "-o", "json")
	if code != 0 || !strings.Contains(stdout, `"changes":[]`) {
		t.Errorf("diff -o json: %d %s", code, stdout)
	}
	// Two outputs to standard output, and an unknown format, are refused.
	if code, _, errOut := wardgate(t, "sbom", "generate", "dir:"+root, "-o", "json", "-o", "spdx-json"); code != 2 || !strings.Contains(errOut, "more than one -o writes to standard output") {
		t.Errorf("two stdout outputs: %d %s", code, errOut)
	}
	if code, _, errOut := wardgate(t, "sbom", "generate", "dir:"+root, "-o", "cdx-yaml"); code != 2 || !strings.Contains(errOut, `-o cdx-yaml: sbom: output format "cdx-yaml": want one of`) {
		t.Errorf("unknown format: %d %s", code, errOut)
	}
}
