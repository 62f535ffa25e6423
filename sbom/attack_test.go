package sbom

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// The archive attacks of issue 13 (item 2 and item 9): each one got past
// the limits before, through syft unpacking on its own into TMPDIR or
// through a link check that did not follow links.

// isolateTMPDIR points TMPDIR at an empty directory and returns a check that
// nothing was left in it: syft must never unpack into TMPDIR on its own.
func isolateTMPDIR(t *testing.T) func() {
	t.Helper()
	d := t.TempDir()
	t.Setenv("TMPDIR", d)
	return func() {
		t.Helper()
		es, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			t.Errorf("left in TMPDIR: %s", e.Name())
		}
	}
}

// zeroTar is a tar holding one file of n zero bytes, written through wrap.
func zeroTar(t testing.TB, w io.Writer, n int64) {
	t.Helper()
	tw := tar.NewWriter(w)
	if err := tw.WriteHeader(&tar.Header{Name: "zeros", Mode: 0o644, Size: n, Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(tw, zeroReader{}, n); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func writeFile(t testing.TB, p string, b []byte) string {
	t.Helper()
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAttackZstdBomb(t *testing.T) {
	check := isolateTMPDIR(t)
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	zeroTar(t, zw, 12<<20)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	p := writeFile(t, filepath.Join(t.TempDir(), "fw.tar.zst"), buf.Bytes())
	_, err = Generate(t.Context(), p, WithoutCache(), WithArchiveLimits(8<<20, 1000), WithTempDir(t.TempDir()))
	if !errors.Is(err, ErrUnsafeArchive) || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("a %d-byte tar.zst holding 12 MiB with an 8 MiB limit: err = %v, want an ErrUnsafeArchive naming the limit", buf.Len(), err)
	}
	check()
}

func TestAttackPrependedZip(t *testing.T) {
	check := isolateTMPDIR(t)
	var buf bytes.Buffer
	buf.WriteByte('X')
	zw := zip.NewWriter(&buf)
	w, err := zw.Create("zeros")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(w, zeroReader{}, 12<<20); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	p := writeFile(t, filepath.Join(t.TempDir(), "fw.zip"), buf.Bytes())
	_, err = Generate(t.Context(), p, WithoutCache(), WithArchiveLimits(8<<20, 1000), WithTempDir(t.TempDir()))
	if !errors.Is(err, ErrUnsafeArchive) || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("a zip with one byte prepended holding 12 MiB with an 8 MiB limit: err = %v, want an ErrUnsafeArchive naming the limit", err)
	}
	check()
}

func TestAttackManyFiles(t *testing.T) {
	check := isolateTMPDIR(t)
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(zw)
	for i := range 2000 {
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("d%d/f%d", i%10, i), Mode: 0o644, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	p := writeFile(t, filepath.Join(t.TempDir(), "many.tar.zst"), buf.Bytes())
	_, err = Generate(t.Context(), p, WithoutCache(), WithArchiveLimits(1<<30, 1000), WithTempDir(t.TempDir()))
	if !errors.Is(err, ErrUnsafeArchive) || !strings.Contains(err.Error(), "1000 files") {
		t.Fatalf("2,000 files as tar.zst with a 1,000-file limit: err = %v", err)
	}
	check()
}

func TestAttackGzipRatioBomb(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	zeroTar(t, gz, 24<<20)
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	p := writeFile(t, filepath.Join(t.TempDir(), "fw.tar.gz"), buf.Bytes())
	// The byte limit (1 GiB) is far away: the compression ratio (about
	// 1,000 for zeros, the limit 100, counted past 16 MiB) stops it.
	_, err := Generate(t.Context(), p, WithoutCache(), WithArchiveLimits(1<<30, 1000), WithTempDir(t.TempDir()))
	if !errors.Is(err, ErrUnsafeArchive) || !strings.Contains(err.Error(), "ratio") {
		t.Fatalf("a %d-byte gzip holding 24 MiB: err = %v, want an ErrUnsafeArchive naming the ratio limit", buf.Len(), err)
	}
}

// TestAttackChainedLink: x -> . makes x/x/w the same place as w, so a
// target of ../.. from there leaves the unpack directory, although the
// names alone say it stays inside.
func TestAttackChainedLink(t *testing.T) {
	t.Parallel()
	t.Run("tar", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "fw.tar.gz")
		writeTarGz(t, p, []tarEntry{
			{name: "x", typ: tar.TypeSymlink, link: "."},
			{name: "x/x/w", typ: tar.TypeSymlink, link: "../.."},
		})
		dir := t.TempDir()
		_, err := Generate(t.Context(), "archive:"+p, WithoutCache(), WithTempDir(dir))
		if !errors.Is(err, ErrUnsafeArchive) || !strings.Contains(err.Error(), "points out") {
			t.Fatalf("err = %v, want ErrUnsafeArchive: link points out", err)
		}
		assertNoLinkOut(t, dir)
	})
	t.Run("zip", func(t *testing.T) {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		for _, l := range [][2]string{{"x", "."}, {"x/x/w", "../.."}} {
			h := &zip.FileHeader{Name: l[0]}
			h.SetMode(os.ModeSymlink | 0o777)
			w, err := zw.CreateHeader(h)
			if err != nil {
				t.Fatal(err)
			}
			w.Write([]byte(l[1]))
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		p := writeFile(t, filepath.Join(t.TempDir(), "fw.zip"), buf.Bytes())
		dir := t.TempDir()
		_, err := Generate(t.Context(), "archive:"+p, WithoutCache(), WithTempDir(dir))
		if !errors.Is(err, ErrUnsafeArchive) || !strings.Contains(err.Error(), "points out") {
			t.Fatalf("err = %v, want ErrUnsafeArchive: link points out", err)
		}
		assertNoLinkOut(t, dir)
	})
}

// assertNoLinkOut checks that no symlink under dir resolves outside it.
func assertNoLinkOut(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.Type()&os.ModeSymlink == 0 {
			return nil
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return nil
		}
		if rel, err := filepath.Rel(dir, real); err != nil || !filepath.IsLocal(rel) {
			t.Errorf("link %s resolves to %s, outside %s", p, real, dir)
		}
		return nil
	})
}
