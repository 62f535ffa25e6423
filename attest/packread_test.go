package attest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// verifyWithin runs VerifyPack and fails the test if it does not return
// within d (it must never block).
func verifyWithin(t *testing.T, ctx context.Context, d time.Duration, pack string, pub []byte) (*PackReport, error) {
	t.Helper()
	type result struct {
		r   *PackReport
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := VerifyPack(ctx, pack, pub, nil)
		done <- result{r, err}
	}()
	select {
	case res := <-done:
		return res.r, res.err
	case <-time.After(d):
		t.Fatalf("VerifyPack(%s) still running after %s", filepath.Base(pack), d)
		return nil, nil
	}
}

// A directory pack with a named pipe in place of a file is reported, not
// opened (an open would wait for a writer forever), and a cancelled
// context (SIGINT, SIGTERM in the CLI) ends a verification.
func TestPackNonRegularFiles(t *testing.T) {
	s := newSigner(t)
	l, _ := openLog(t, s)
	appendN(t, l, s, 5)
	pub := pubPEM(t, s)
	fifo := func(t *testing.T, dir, name string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Skipf("no named pipes here: %v", err)
		}
	}
	for _, tc := range []struct {
		name string
		want []string
	}{
		{fileIndex, []string{ProblemFileType}},
		{fileManifestSig, []string{ProblemFileType, ProblemManifestSignature}},
		{fileCheckpoint, []string{ProblemCheckpoint, ProblemFileType}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := exportPack(t, l, ExportOptions{})
			fifo(t, dir, tc.name)
			r, err := verifyWithin(t, t.Context(), 10*time.Second, dir, pub)
			if err != nil || r.Intact || !slices.Equal(codes(r), tc.want) {
				t.Fatalf("err %v, codes %v, want %v: %+v", err, codes(r), tc.want, r)
			}
		})
	}
	t.Run(fileManifest, func(t *testing.T) {
		dir := exportPack(t, l, ExportOptions{})
		fifo(t, dir, fileManifest)
		if _, err := verifyWithin(t, t.Context(), 10*time.Second, dir, pub); !errors.Is(err, ErrPackUnreadable) || !strings.Contains(err.Error(), "named pipe") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("pack is a named pipe", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "pack.tar.gz")
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Skipf("no named pipes here: %v", err)
		}
		if _, err := verifyWithin(t, t.Context(), 10*time.Second, p, pub); !errors.Is(err, ErrPackUnreadable) || !strings.Contains(err.Error(), "named pipe") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		for _, name := range []string{"pack", "pack.tar.gz"} {
			out := filepath.Join(t.TempDir(), name)
			if _, err := l.Export(t.Context(), out, ExportOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := verifyWithin(t, ctx, 10*time.Second, out, pub); !errors.Is(err, context.Canceled) {
				t.Fatalf("%s: err = %v, want context.Canceled", name, err)
			}
		}
	})
}

// The gzip trailer of a .tar.gz pack is checked: a wrong CRC or length, a
// truncated trailer and anything after the stream make the pack not
// intact, with archive-integrity.
func TestPackGzipTrailer(t *testing.T) {
	s := newSigner(t)
	l, _ := openLog(t, s)
	appendN(t, l, s, 5)
	pub := pubPEM(t, s)
	good := filepath.Join(t.TempDir(), "pack.tar.gz")
	if _, err := l.Export(t.Context(), good, ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	var second bytes.Buffer
	gz := gzip.NewWriter(&second)
	gz.Write(bytes.Repeat([]byte{0}, 1024))
	gz.Close()
	for _, tc := range []struct {
		name string
		mod  func([]byte) []byte
	}{
		{"CRC flipped", func(b []byte) []byte { b[len(b)-8] ^= 1; return b }},
		{"length flipped", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }},
		{"trailer truncated", func(b []byte) []byte { return b[:len(b)-4] }},
		{"trailer missing", func(b []byte) []byte { return b[:len(b)-8] }},
		{"garbage appended", func(b []byte) []byte { return append(b, "GARBAGE"...) }},
		{"second gzip member", func(b []byte) []byte { return append(b, second.Bytes()...) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "pack.tar.gz")
			if err := os.WriteFile(p, tc.mod(slices.Clone(b)), 0o644); err != nil {
				t.Fatal(err)
			}
			r, err := VerifyPack(t.Context(), p, pub, nil)
			if err != nil || r.Intact || !slices.Contains(codes(r), ProblemArchive) {
				t.Fatalf("err %v report %+v", err, r)
			}
		})
	}
	if r, err := VerifyPack(t.Context(), good, pub, nil); err != nil || !r.Intact {
		t.Fatalf("the good pack: %v %+v", err, r)
	}
}

// A .tar.gz pack is never unpacked: a small gzip that expands to far more
// than MaxPackRatio times its size is refused once it has, with nothing
// written to disk, and a pack whose manifest signature fails has its
// entries left unread.
func TestPackStreamBounded(t *testing.T) {
	s := newSigner(t)
	pub := pubPEM(t, s)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	bomb := filepath.Join(t.TempDir(), "bomb.tar.gz")
	f, err := os.Create(bomb)
	if err != nil {
		t.Fatal(err)
	}
	gz, _ := gzip.NewWriterLevel(f, gzip.BestCompression)
	tw := tar.NewWriter(gz)
	const size = 256 << 20
	if err := tw.WriteHeader(&tar.Header{Name: "blobs/zero", Typeflag: tar.TypeReg, Size: size, Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	zero := make([]byte, 1<<20)
	for range size >> 20 {
		tw.Write(zero)
	}
	tw.Close()
	gz.Close()
	f.Close()
	st, _ := os.Stat(bomb)
	_, err = VerifyPack(t.Context(), bomb, pub, nil)
	if !errors.Is(err, ErrPackUnreadable) || !strings.Contains(err.Error(), "expands beyond its limit") {
		t.Fatalf("%d-byte gzip of %d bytes: %v", st.Size(), size, err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Fatalf("wrote %v to TMPDIR", left)
	}
	// A forged manifest signature: the index (tampered too) is not read.
	l, _ := openLog(t, s)
	appendN(t, l, s, 5)
	dir := exportPack(t, l, ExportOptions{})
	rewrite(t, filepath.Join(dir, fileManifestSig), func(b []byte) []byte { return bytes.Replace(b, []byte(`"sig":"`), []byte(`"sig":"A`), 1) })
	rewrite(t, filepath.Join(dir, fileIndex), func(b []byte) []byte {
		i := bytes.Index(b, []byte(`"envelope":"`)) + 40
		b[i] ^= 0x01
		return b
	})
	pack := filepath.Join(t.TempDir(), "forged.tar.gz")
	if err := writeTarGz(pack, dir); err != nil {
		t.Fatal(err)
	}
	r, err := VerifyPack(t.Context(), pack, pub, nil)
	if want := []string{ProblemFileDigest, ProblemManifestSignature, ProblemNotChecked}; err != nil || !slices.Equal(codes(r), want) {
		t.Fatalf("codes %v, want %v (%v)", codes(r), want, err)
	}
}
