package sbom

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// firmwareFiles is a tiny root filesystem: a dpkg database with two
// packages and a Python requirements file.
var firmwareFiles = map[string]string{
	"var/lib/dpkg/status": `Package: busybox
Status: install ok installed
Priority: optional
Section: utils
Installed-Size: 1000
Maintainer: Debian Busybox Team
Architecture: amd64
Version: 1:1.35.0-4
Description: Tiny utilities

Package: zlib1g
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 160
Maintainer: Mark Brown
Architecture: amd64
Source: zlib
Version: 1:1.2.13.dfsg-1
Description: compression library
`,
	"opt/app/requirements.txt": "requests==2.31.0\nurllib3==2.0.7\n",
	"etc/os-release":           "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
}

func writeTree(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type tarEntry struct {
	name, body, link string
	typ              byte
}

func writeTarGz(t testing.TB, p string, entries []tarEntry) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: typ, Linkname: e.link}
		if typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func firmwareTar(t testing.TB) string {
	t.Helper()
	var es []tarEntry
	for n, b := range firmwareFiles {
		es = append(es, tarEntry{name: n, body: b})
	}
	p := filepath.Join(t.TempDir(), "pump-fw-4.2.0.tar.gz")
	writeTarGz(t, p, es)
	return p
}

func componentVersions(t testing.TB, data []byte) map[string]string {
	t.Helper()
	d := mustDecode(t, data)
	out := map[string]string{}
	for _, c := range d.Components {
		// syft writes the distro as an operating-system component in
		// CycloneDX and not in SPDX; the packages are what is compared.
		if c.Type != "file" && c.Type != "operating-system" {
			out[c.Identity()] = c.Version
		}
	}
	return out
}

func TestGenerateDirAndArchive(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeTree(t, dir, firmwareFiles)
	want := map[string]string{
		"pkg:deb/debian/busybox?arch=amd64": "1:1.35.0-4",
		"pkg:deb/debian/zlib1g?arch=amd64":  "1:1.2.13.dfsg-1",
		"pkg:pypi/requests":                 "2.31.0",
		"pkg:pypi/urllib3":                  "2.0.7",
	}
	check := func(name string, g *Generated) {
		got := componentVersions(t, g.Data)
		for id, v := range want {
			if got[id] != v {
				t.Errorf("%s: %s version %q, want %q (got %v)", name, id, got[id], v, got)
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s: %d packages, want %d: %v", name, len(got), len(want), got)
		}
	}
	g, err := Generate(t.Context(), "dir:"+dir, WithoutCache())
	if err != nil {
		t.Fatal(err)
	}
	// syft's default: CycloneDX 1.7.
	if d := mustDecode(t, g.Data); d.Format != FormatCycloneDXJSON || d.SpecVersion != "1.7" {
		t.Errorf("default output %s %s, want cyclonedx-json 1.7", d.Format, d.SpecVersion)
	}
	check("dir", g)
	ga, err := Generate(t.Context(), "archive:"+firmwareTar(t), WithoutCache())
	if err != nil {
		t.Fatal(err)
	}
	check("archive", ga)
	if ch := Diff(mustDecode(t, g.Data), mustDecode(t, ga.Data)); ch.Count(Added, Removed, Upgraded, Downgraded) != 0 {
		t.Errorf("dir and archive of the same tree differ: %+v", ch.Changes)
	}
}

func TestGenerateFormats(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeTree(t, dir, firmwareFiles)
	cases := []struct {
		f      Format
		detect Format
		spec   string
	}{
		{FormatCycloneDXXML, FormatCycloneDXXML, "1.7"},
		{"cyclonedx-json@1.5", FormatCycloneDXJSON, "1.5"},
		{"cyclonedx-xml@1.4", FormatCycloneDXXML, "1.4"},
		{FormatSPDXJSON, FormatSPDXJSON, "2.3"},
		{"spdx-json@2.2", FormatSPDXJSON, "2.2"},
		{FormatSPDXTagValue, FormatSPDXTagValue, "2.3"},
		{"spdx@2.2", FormatSPDXTagValue, "2.2"},
	}
	var fs []OutputFormat
	for _, tc := range cases {
		f, err := ParseOutputFormat(string(tc.f))
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
	}
	// One scan, every encoding.
	all, err := Generate(t.Context(), "dir:"+dir, WithOutputs(fs...), WithoutCache())
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range cases {
		data := all.Outputs[i].Data
		d := mustDecode(t, data)
		if d.Format != tc.detect || d.SpecVersion != tc.spec {
			t.Errorf("%s: decoded as %s %s", tc.f, d.Format, d.SpecVersion)
		}
		if len(componentVersions(t, data)) != 4 {
			t.Errorf("%s: %v", tc.f, componentVersions(t, data))
		}
	}
	g, err := Generate(t.Context(), "dir:"+dir, WithFormat(FormatSyftJSON), WithoutCache())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(g.Data, []byte(`"artifacts"`)) || !bytes.Contains(g.Data, []byte(`"busybox"`)) {
		t.Errorf("syft-json output lacks artifacts: %.300s", g.Data)
	}
	// json is syft's own format, as in syft -o json.
	g, err = Generate(t.Context(), "dir:"+dir, WithFormat("json"), WithoutCache())
	if err != nil || g.Format != FormatSyftJSON {
		t.Fatalf("json: %v %v", g, err)
	}
	if _, err := Generate(t.Context(), "dir:"+dir, WithFormat("cdx-yaml")); err == nil || !strings.Contains(err.Error(), `output format "cdx-yaml": want one of`) {
		t.Errorf("WithFormat(cdx-yaml) = %v", err)
	}
	if _, err := Generate(t.Context(), "dir:"+dir, WithFormat("spdx-json@9.9")); err == nil {
		t.Error("spdx-json@9.9 accepted")
	}
}

func TestGenerateCache(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeTree(t, dir, firmwareFiles)
	cache := t.TempDir()
	first, err := Generate(t.Context(), "dir:"+dir, WithCacheDir(cache))
	if err != nil {
		t.Fatal(err)
	}
	second, err := Generate(t.Context(), "dir:"+dir, WithCacheDir(cache))
	if err != nil {
		t.Fatal(err)
	}
	if first.Cached || !second.Cached || first.Key != second.Key || !bytes.Equal(first.Data, second.Data) {
		t.Fatalf("cached: %v %v, keys %s %s", first.Cached, second.Cached, first.Key, second.Key)
	}
	// A changed file is a new key and a new scan.
	writeTree(t, dir, map[string]string{"opt/app/requirements.txt": "requests==2.32.0\nurllib3==2.0.7\n"})
	third, err := Generate(t.Context(), "dir:"+dir, WithCacheDir(cache))
	if err != nil {
		t.Fatal(err)
	}
	if third.Cached || third.Key == first.Key || componentVersions(t, third.Data)["pkg:pypi/requests"] != "2.32.0" {
		t.Errorf("changed content: cached %v, same key %v", third.Cached, third.Key == first.Key)
	}
	// Another format is encoded from the cached scan: no second scan.
	x, err := Generate(t.Context(), "dir:"+dir, WithCacheDir(cache), WithFormat(FormatSPDXJSON))
	if err != nil {
		t.Fatal(err)
	}
	if d := mustDecode(t, x.Data); !x.Cached || d.Format != FormatSPDXJSON || componentVersions(t, x.Data)["pkg:pypi/requests"] != "2.32.0" {
		t.Errorf("spdx-json from the cached scan: cached %v, %s, %v", x.Cached, d.Format, componentVersions(t, x.Data))
	}
	if _, err := Generate(t.Context(), "dir:"+dir, WithCacheDir(cache), WithoutCache()); err == nil || !strings.Contains(err.Error(), "conflict") {
		t.Errorf("WithCacheDir + WithoutCache = %v", err)
	}
}

func TestGenerateUnsafeArchives(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		entries []tarEntry
		msg     string
	}{
		{"traversal", []tarEntry{{name: "../../etc/cron.d/evil", body: "x"}}, `entry "../../etc/cron.d/evil" escapes`},
		{"absolute", []tarEntry{{name: "/etc/passwd", body: "x"}}, `entry "/etc/passwd" escapes`},
		{"symlink out", []tarEntry{{name: "lib/x", typ: tar.TypeSymlink, link: "../../../etc"}}, `link "lib/x" points out`},
		{"hard link out", []tarEntry{{name: "x", typ: tar.TypeLink, link: "../outside"}}, `hard link "x" points out`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "fw.tar.gz")
			writeTarGz(t, p, tc.entries)
			_, err := Generate(t.Context(), "archive:"+p, WithoutCache())
			if !errors.Is(err, ErrUnsafeArchive) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want ErrUnsafeArchive mentioning %q", err, tc.msg)
			}
		})
	}
	t.Run("size bomb", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "bomb.tar.gz")
		writeTarGz(t, p, []tarEntry{{name: "zeros", body: strings.Repeat("\x00", 1<<20)}})
		_, err := Generate(t.Context(), "archive:"+p, WithoutCache(), WithArchiveLimits(64<<10, 10))
		if !errors.Is(err, ErrUnsafeArchive) || !strings.Contains(err.Error(), "more than 64 KiB unpacked") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("file count", func(t *testing.T) {
		var es []tarEntry
		for i := range 20 {
			es = append(es, tarEntry{name: strings.Repeat("d/", i%3) + "f" + string(rune('a'+i)), body: "x"})
		}
		p := filepath.Join(t.TempDir(), "many.tar.gz")
		writeTarGz(t, p, es)
		_, err := Generate(t.Context(), "archive:"+p, WithoutCache(), WithArchiveLimits(1<<20, 10))
		if !errors.Is(err, ErrUnsafeArchive) || !strings.Contains(err.Error(), "more than 10 files") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("zip traversal", func(t *testing.T) {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		w, _ := zw.Create("../evil")
		w.Write([]byte("x"))
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), "fw.zip")
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Generate(t.Context(), p, WithoutCache())
		if !errors.Is(err, ErrUnsafeArchive) || !strings.Contains(err.Error(), `entry "../evil" escapes`) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("internal symlink is fine", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "ok.tar.gz")
		writeTarGz(t, p, []tarEntry{
			{name: "var/lib/dpkg/status", body: firmwareFiles["var/lib/dpkg/status"]},
			{name: "etc/os-release", body: firmwareFiles["etc/os-release"]},
			{name: "status-link", typ: tar.TypeSymlink, link: "var/lib/dpkg/status"},
			// Absolute, as root filesystems have them: read from the
			// firmware's root, not the host's.
			{name: "bin/shadow", typ: tar.TypeSymlink, link: "/etc/shadow"},
		})
		g, err := Generate(t.Context(), "archive:"+p, WithoutCache())
		if err != nil {
			t.Fatal(err)
		}
		if got := componentVersions(t, g.Data); got["pkg:deb/debian/busybox?arch=amd64"] != "1:1.35.0-4" {
			t.Errorf("packages %v", got)
		}
	})
}

func TestGenerateBadSource(t *testing.T) {
	_, err := Generate(t.Context(), "dir:"+filepath.Join(t.TempDir(), "nope"), WithoutCache())
	if !errors.Is(err, ErrBadSource) {
		t.Errorf("missing dir: %v", err)
	}
	_, err = Generate(t.Context(), "no-such-thing", WithoutCache())
	if !errors.Is(err, ErrBadSource) || !strings.Contains(err.Error(), "want SCHEME:PATH") {
		t.Errorf("unknown source: %v", err)
	}
}

func TestGenerateProgress(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, firmwareFiles)
	var p Progress
	if _, err := Generate(t.Context(), "dir:"+dir, WithCacheDir(t.TempDir()), WithProgress(&p)); err != nil {
		t.Fatal(err)
	}
	// Three files hashed for the cache key; syft's count of packages (the
	// two dpkg packages and two Python requirements); indexing finished.
	if p.Files() != 3 || p.Packages() != 4 || p.Indexing() != "" {
		t.Errorf("progress: %d files, %d packages, indexing %q; want 3, 4, \"\"", p.Files(), p.Packages(), p.Indexing())
	}
	if _, err := Generate(t.Context(), "dir:"+dir, WithProgress(nil)); err == nil || err.Error() != "sbom: nil progress" {
		t.Errorf("WithProgress(nil) = %v", err)
	}
}

func TestParsePackageCount(t *testing.T) {
	for stage, want := range map[string]int64{"1,234 packages": 1234, "0 packages": 0, "7 packages": 7, "": 0, "many packages": 0} {
		if got := parsePackageCount(stage); got != want {
			t.Errorf("parsePackageCount(%q) = %d, want %d", stage, got, want)
		}
	}
}

// crossFormatFiles is a tree whose packages carry what syft writes
// differently in CycloneDX and SPDX: maintainers (one with an e-mail domain
// syft's SPDX writer cannot parse), declared licences that are and are not
// SPDX identifiers, files, and an operating system.
var crossFormatFiles = map[string]string{
	"var/lib/dpkg/status": "Package: zlib1g\nStatus: install ok installed\nMaintainer: Mark Brown <broonie@debian.org>\nArchitecture: amd64\nSource: zlib\nVersion: 1:1.2.13.dfsg-1\nDescription: compression library\n\n" +
		"Package: zstd\nStatus: install ok installed\nMaintainer: RPM packaging team <team+pkg-rpm@tracker.debian.org>\nArchitecture: amd64\nVersion: 1.5.4+dfsg2-5\nDescription: fast compression\n",
	"usr/share/doc/zlib1g/copyright":                           "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: Zlib\n\nFiles: debian/*\nLicense: GPL-2+\n",
	"usr/lib/python3/dist-packages/foo-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: foo\nVersion: 1.0\nLicense: MIT\nAuthor: Foo Dev\nAuthor-email: foo@example.com\n",
	"usr/lib/python3/dist-packages/bar-2.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: bar\nVersion: 2.0\nLicense: BSD-like custom\nAuthor: Bar Corp\n",
	"etc/os-release": "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
}

// TestCrossFormatDiffIsEmpty: one scan written in every format diffs (and
// drifts) empty against itself in every other.
func TestCrossFormatDiffIsEmpty(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeTree(t, dir, crossFormatFiles)
	var fs []OutputFormat
	for _, n := range []string{"cyclonedx-json", "spdx-json", "cyclonedx-xml", "spdx-tag-value", "json", "cyclonedx-json@1.5", "spdx-json@2.2"} {
		f, err := ParseOutputFormat(n)
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
	}
	g, err := Generate(t.Context(), "dir:"+dir, WithOutputs(fs...), WithoutCache())
	if err != nil {
		t.Fatal(err)
	}
	base := mustDecode(t, g.Outputs[0].Data)
	if len(base.Components) < 6 || len(base.OperatingSystems) != 1 {
		t.Fatalf("the scan found %d components and %d operating systems: %+v", len(base.Components), len(base.OperatingSystems), base.Components)
	}
	suppliers := map[string]string{}
	for _, c := range base.Components {
		suppliers[c.Name] = c.Supplier
	}
	if suppliers["zlib1g"] != "Mark Brown <broonie@debian.org>" || suppliers["foo"] != "Foo Dev <foo@example.com>" {
		t.Errorf("suppliers: %v", suppliers)
	}
	for i, o := range g.Outputs[1:] {
		d := mustDecode(t, o.Data)
		if ch := Diff(base, d); len(ch.Changes) != 0 {
			t.Errorf("%s against %s: %+v", fs[i+1], fs[0], ch.Changes)
		}
		if ch := Diff(d, base); len(ch.Changes) != 0 {
			t.Errorf("%s against %s: %+v", fs[0], fs[i+1], ch.Changes)
		}
		if ch := Drift(d, base); len(ch.Changes) != 0 {
			t.Errorf("drift %s claimed, %s observed: %+v", fs[i+1], fs[0], ch.Changes)
		}
	}
}
