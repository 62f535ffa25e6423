package vuln_test

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/fixtures"
	"github.com/wardgate/wardgate/vuln"
)

// importTime is after every testdata record's modified time (2026-08-27).
var importTime = time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)

const testdata = "testdata/osv"

// importTestdata imports testdata/osv into a fresh state directory.
func importTestdata(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := vuln.Import(t.Context(), dir, []string{testdata}, vuln.WithImportClock(func() time.Time { return importTime })); err != nil {
		t.Fatal(err)
	}
	return dir
}

func openTestdata(t testing.TB) *vuln.DB {
	t.Helper()
	db, err := vuln.Open(importTestdata(t))
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// zipDir writes the JSON files of dir into a zip, as osv.dev's all.zip.
func zipDir(t testing.TB, dir string) string {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		w, err := zw.Create(e.Name())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "all.zip")
	if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestImport(t *testing.T) {
	clock := vuln.WithImportClock(func() time.Time { return importTime })
	dirState := t.TempDir()
	fromDir, err := vuln.Import(t.Context(), dirState, []string{testdata}, clock)
	if err != nil {
		t.Fatal(err)
	}
	fromZip, err := vuln.Import(t.Context(), t.TempDir(), []string{zipDir(t, testdata)}, clock)
	if err != nil {
		t.Fatal(err)
	}
	if fromDir.Digest != fromZip.Digest {
		t.Errorf("directory and zip of the same records: digests %s and %s", fromDir.Digest, fromZip.Digest)
	}
	want := time.Date(2026, 8, 27, 22, 18, 1, 0, time.UTC)
	if fromDir.Records != 7 || !fromDir.BuiltAt.Equal(want) || fromDir.Ecosystems["Alpine:v3.19"] != 6 || len(fromDir.Ecosystems) != 1 ||
		!fromDir.ImportedAt.Equal(importTime) || fromDir.Format != vuln.FormatOSV || !slices.Equal(fromDir.Sources, []string{"osv"}) {
		t.Errorf("info = %+v", fromDir)
	}
	if got := fromDir.Age(want.Add(72 * time.Hour)); got != 72*time.Hour {
		t.Errorf("Age = %s, want 72h", got)
	}
	info, err := vuln.ReadInfo(dirState)
	if err != nil || info.Digest != fromDir.Digest {
		t.Fatalf("ReadInfo = %+v, %v", info, err)
	}
	db, err := vuln.Open(dirState)
	if err != nil {
		t.Fatal(err)
	}
	if db.Info().Digest != fromDir.Digest || db.Info().Records != 7 {
		t.Errorf("Open: info %+v", db.Info())
	}
}

func TestOpenNoDatabase(t *testing.T) {
	_, err := vuln.Open(t.TempDir())
	if !errors.Is(err, vuln.ErrNoDatabase) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want ErrNoDatabase and os.ErrNotExist", err)
	}
}

// A damaged database file is refused, not half-used.
func TestOpenDamaged(t *testing.T) {
	dir := importTestdata(t)
	raw, err := os.ReadFile(vuln.Path(dir))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	plain = bytes.Replace(plain, []byte(`"fixed":"1.36.1-r16"`), []byte(`"fixed":"1.36.1-r10"`), 1)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(plain)
	zw.Close()
	if err := os.WriteFile(vuln.Path(dir), buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = vuln.Open(dir)
	if !errors.Is(err, vuln.ErrInvalid) || !strings.Contains(err.Error(), "the file is damaged") {
		t.Fatalf("err = %v, want a damaged-file error", err)
	}
}

func TestImportRejects(t *testing.T) {
	good, err := os.ReadFile(filepath.Join(testdata, "ALPINE-CVE-2023-42366.json"))
	if err != nil {
		t.Fatal(err)
	}
	edit := func(old, new string) []byte { return bytes.Replace(good, []byte(old), []byte(new), 1) }
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"not JSON", []byte("<html>"), "not an OSV record"},
		{"no id", edit(`"id": "ALPINE-CVE-2023-42366",`, ``), "no id"},
		{"no modified", edit(`"modified": "2026-08-27T22:18:01Z",`, ``), "no modified time"},
		{"future-dated", edit(`2026-08-27T22:18:01Z`, `2027-01-01T00:00:00Z`), "after the import time 2026-09-01T12:00:00Z"},
		{"bad version", bytes.Replace(edit(`"fixed": "1.36.1-r16"`, `"fixed": "a:1.0"`), []byte("Alpine:v3.19"), []byte("Debian:12"), 1),
			`affected[0]: ranges[0].events[1]: version "a:1.0" is not a Debian version`},
		{"no package name", edit(`"name": "busybox",`, ``), "package without ecosystem or name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := t.TempDir()
			if err := os.WriteFile(filepath.Join(src, "a.json"), tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			state := t.TempDir()
			_, err := vuln.Import(t.Context(), state, []string{src}, vuln.WithImportClock(func() time.Time { return importTime }))
			if !errors.Is(err, vuln.ErrInvalid) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "a.json") {
				t.Fatalf("err = %v, want ErrInvalid naming a.json and %q", err, tc.want)
			}
			if _, err := os.Stat(vuln.Path(state)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a database was written after a bad record: %v", err)
			}
		})
	}
	t.Run("symbolic link", func(t *testing.T) {
		src := t.TempDir()
		if err := os.Symlink("/etc/passwd", filepath.Join(src, "link.json")); err != nil {
			t.Fatal(err)
		}
		_, err := vuln.Import(t.Context(), t.TempDir(), []string{src})
		if !errors.Is(err, vuln.ErrInvalid) || !strings.Contains(err.Error(), "link.json is a symbolic link") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("no records", func(t *testing.T) {
		_, err := vuln.Import(t.Context(), t.TempDir(), []string{t.TempDir()})
		if !errors.Is(err, vuln.ErrInvalid) || !strings.Contains(err.Error(), "no OSV records") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("oversized record in a zip", func(t *testing.T) {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		w, _ := zw.Create("big.json")
		w.Write(bytes.Repeat([]byte(" "), vuln.MaxRecordBytes+1))
		zw.Close()
		p := filepath.Join(t.TempDir(), "all.zip")
		os.WriteFile(p, buf.Bytes(), 0o600)
		_, err := vuln.Import(t.Context(), t.TempDir(), []string{p})
		if !errors.Is(err, vuln.ErrInvalid) || !strings.Contains(err.Error(), "big.json") || !strings.Contains(err.Error(), "larger than") {
			t.Fatalf("err = %v", err)
		}
	})
}

// pumpComponents are the infusion pump's Alpine packages as syft names
// them in the pump image (fixtures.PumpPURL).
func pumpComponents(version string) []vuln.Component {
	var cs []vuln.Component
	for _, p := range fixtures.PumpPackages(version) {
		cs = append(cs, vuln.Component{Name: p.Name, Version: p.Version, PURL: fixtures.PumpPURL(p)})
	}
	return cs
}

func ids(ms []vuln.Match) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Component.Name+" "+m.ID+" "+m.Severity)
	}
	return out
}

func TestMatchPump(t *testing.T) {
	db := openTestdata(t)
	res, err := db.Match(t.Context(), pumpComponents("2.4.0"))
	if err != nil {
		t.Fatal(err)
	}
	// busybox 1.36.1-r15 is affected by the four awk/xasprintf CVEs;
	// zlib 1.3.1-r0 is past the fix of CVE-2022-37434. The pump image's
	// libssl3 names no origin package, so openssl's records do not reach it.
	want := []string{
		"busybox ALPINE-CVE-2023-42363 medium", "busybox ALPINE-CVE-2023-42364 medium",
		"busybox ALPINE-CVE-2023-42365 medium", "busybox ALPINE-CVE-2023-42366 medium",
	}
	if got := ids(res.Matches); !slices.Equal(got, want) {
		t.Fatalf("matches:\n got %q\nwant %q", got, want)
	}
	m := res.Matches[3]
	if m.CVSS == nil || m.CVSS.Score != 5.5 || m.CVSS.Version != "3.1" || !slices.Equal(m.FixedIn, []string{"1.36.1-r16"}) ||
		m.Ecosystem != "Alpine:v3.19" || m.Package != "busybox" || !slices.Equal(m.Aliases, []string{"CVE-2023-42366"}) ||
		m.Component.PURL != "pkg:apk/alpine/busybox@1.36.1-r15?arch=x86_64&distro=alpine-3.19.1" ||
		m.Summary != "A heap-buffer-overflow was discovered in BusyBox v.1.36.1 in the next_token function at awk.c:1159." {
		t.Errorf("match = %+v", m)
	}
	if res.Components != 4 || len(res.Unchecked) != 0 || !slices.Equal(res.Ecosystems, []vuln.Ecosystem{{Name: "Alpine:v3.19", Components: 4, Records: 6}}) {
		t.Errorf("result = %+v", res)
	}
}

// libssl3 as syft writes it for a real Alpine image: its origin package is
// openssl (upstream=), whose records name it. ALPINE-CVE-2024-5535 carries
// no rating; its upstream CVE record rates it critical (9.1).
func TestMatchOriginPackage(t *testing.T) {
	db := openTestdata(t)
	cs := []vuln.Component{
		{Name: "libssl3", Version: "3.1.4-r6", PURL: "pkg:apk/alpine/libssl3@3.1.4-r6?arch=x86_64&upstream=openssl&distro=alpine-3.19.1"},
		{Name: "libcrypto3", Version: "3.1.7-r0", PURL: "pkg:apk/alpine/libcrypto3@3.1.7-r0?arch=x86_64&upstream=openssl&distro=alpine-3.19.1"},
		// The same version on another Alpine branch: its records are not in the database.
		{Name: "libssl3", Version: "3.1.4-r6", PURL: "pkg:apk/alpine/libssl3@3.1.4-r6?arch=x86_64&upstream=openssl&distro=alpine-3.18.4"},
	}
	res, err := db.Match(t.Context(), cs)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(res.Matches); !slices.Equal(got, []string{"libssl3 ALPINE-CVE-2024-5535 critical"}) {
		t.Fatalf("matches = %q", got)
	}
	m := res.Matches[0]
	if m.CVSS == nil || m.CVSS.Score != 9.1 || m.CVSS.Vector != "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:H" ||
		m.Package != "openssl" || !slices.Equal(m.FixedIn, []string{"3.1.7-r0"}) || m.Component.Version != "3.1.4-r6" {
		t.Errorf("match = %+v", m)
	}
	wantEco := []vuln.Ecosystem{{Name: "Alpine:v3.18", Components: 1, Records: 0}, {Name: "Alpine:v3.19", Components: 2, Records: 6}}
	if !slices.Equal(res.Ecosystems, wantEco) {
		t.Errorf("ecosystems = %+v, want %+v", res.Ecosystems, wantEco)
	}
}

func TestMatchUnchecked(t *testing.T) {
	db := openTestdata(t)
	cs := []vuln.Component{
		{Name: "pump-control", Version: "2.4.0", PURL: "pkg:generic/acme-infusion/pump-control@2.4.0"},
		{Name: "alpine", Version: "3.19.1"},
		{Name: "busybox", PURL: "pkg:apk/alpine/busybox?arch=x86_64&distro=alpine-3.19.1"},
		{Name: "openssl", Version: "a:3.0.11", PURL: "pkg:deb/debian/openssl@a:3.0.11?arch=amd64&distro=debian-12"},
		{Name: "left-pad", Version: "1.3.0", PURL: "pkg:npm/left-pad@1.3.0"},
	}
	res, err := db.Match(t.Context(), cs)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range res.Unchecked {
		got = append(got, u.Component.Name+" "+u.Reason)
	}
	want := []string{"pump-control no-ecosystem", "alpine no-ecosystem", "busybox no-version", "openssl bad-version"}
	if !slices.Equal(got, want) {
		t.Errorf("unchecked = %q, want %q", got, want)
	}
	wantEco := []vuln.Ecosystem{{Name: "Alpine:v3.19", Components: 1, Records: 6}, {Name: "Debian:12", Components: 1, Records: 0}, {Name: "npm", Components: 1, Records: 0}}
	if !slices.Equal(res.Ecosystems, wantEco) || len(res.Matches) != 0 {
		t.Errorf("result = %+v", res)
	}
}

// The same records imported twice from two exports keep one copy.
func TestImportDuplicates(t *testing.T) {
	info, err := vuln.Import(t.Context(), t.TempDir(), []string{testdata, zipDir(t, testdata)}, vuln.WithImportClock(func() time.Time { return importTime }))
	if err != nil {
		t.Fatal(err)
	}
	if info.Records != 7 || !slices.Equal(info.Sources, []string{"osv", "all.zip"}) {
		t.Errorf("info = %+v", info)
	}
}

// Many components are matched on several workers, and concurrent calls
// give the same result as one alone (run with -race).
func TestMatchConcurrent(t *testing.T) {
	db := openTestdata(t)
	var cs []vuln.Component
	for range 300 {
		cs = append(cs, pumpComponents("2.4.0")...)
		cs = append(cs, vuln.Component{Name: "libssl3", Version: "3.1.4-r6", PURL: "pkg:apk/alpine/libssl3@3.1.4-r6?upstream=openssl&distro=alpine-3.19.1"})
	}
	want, err := db.Match(t.Context(), cs)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(want.Matches); len(got) != 5 || want.Components != 1500 || want.Ecosystems[0].Components != 1500 {
		t.Fatalf("matches %q, result %+v", got, want.Ecosystems)
	}
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			got, err := db.Match(t.Context(), cs)
			if err == nil && !slices.Equal(ids(got.Matches), ids(want.Matches)) {
				err = errors.New("concurrent result differs")
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
