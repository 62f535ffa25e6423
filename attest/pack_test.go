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
	"testing"
	"time"
)

func exportPack(t *testing.T, l *Log, opts ExportOptions) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "pack")
	if _, err := l.Export(context.Background(), out, opts); err != nil {
		t.Fatal(err)
	}
	return out
}

func pubPEM(t *testing.T, s *Signer) []byte {
	t.Helper()
	b, err := s.PublicKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func codes(r *PackReport) []string {
	var out []string
	for _, p := range r.Problems {
		if !slices.Contains(out, p.Code) {
			out = append(out, p.Code)
		}
	}
	slices.Sort(out)
	return out
}

func mustVerify(t *testing.T, pack string, pub, since []byte) *PackReport {
	t.Helper()
	r, err := VerifyPack(t.Context(), pack, pub, since)
	if err != nil {
		t.Fatalf("VerifyPack: %v", err)
	}
	return r
}

func TestPackIntact(t *testing.T) {
	s := newSigner(t)
	l, _ := openLog(t, s)
	appendN(t, l, s, 25)
	pub := pubPEM(t, s)
	for _, name := range []string{"pack", "pack.tar.gz"} {
		out := filepath.Join(t.TempDir(), name)
		m, err := l.Export(context.Background(), out, ExportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if m.Entries != 25 || !m.Complete || len(m.Files) != 4 { // checkpoint, key.pub, index.jsonl, one blob
			t.Fatalf("manifest %+v", m)
		}
		r := mustVerify(t, out, pub, nil)
		if !r.Intact || r.Entries != 25 || r.TreeSize != 25 {
			t.Fatalf("%s: %+v", name, r)
		}
	}
	// A filtered pack: one device's verdicts, each with its proof.
	out := exportPack(t, l, ExportOptions{Filter: Filter{Device: "pump-002"}})
	r := mustVerify(t, out, pub, nil)
	if !r.Intact || r.Entries != 5 || r.Complete {
		t.Fatalf("filtered: %+v", r)
	}
	out = exportPack(t, l, ExportOptions{Filter: Filter{Since: t0.Add(10 * time.Minute), Until: t0.Add(12 * time.Minute)}})
	if r := mustVerify(t, out, pub, nil); !r.Intact || r.Entries != 3 {
		t.Fatalf("time window: %+v", r)
	}
}

func TestPackConsistencyWithEarlierCheckpoint(t *testing.T) {
	s := newSigner(t)
	l, _ := openLog(t, s)
	appendN(t, l, s, 10)
	old := l.Checkpoint().Note
	appendN(t, l, s, 7)
	pub := pubPEM(t, s)
	out := exportPack(t, l, ExportOptions{SinceCheckpoint: old})
	r := mustVerify(t, out, pub, old)
	if !r.Intact || r.Consistent == nil || !*r.Consistent {
		t.Fatalf("%+v", r)
	}
	// Without the proof in the pack, consistency cannot be shown.
	out = exportPack(t, l, ExportOptions{})
	r = mustVerify(t, out, pub, old)
	if r.Intact || !slices.Equal(codes(r), []string{ProblemConsistency}) {
		t.Fatalf("%+v", r)
	}
	// A checkpoint from a different history (another log with the same key
	// and origin) is not a prefix.
	l2, _ := openLog(t, s)
	appendN(t, l2, s, 12)
	fork := l2.Checkpoint().Note
	out = exportPack(t, l, ExportOptions{SinceCheckpoint: old})
	r = mustVerify(t, out, pub, fork)
	if r.Intact || !slices.Equal(codes(r), []string{ProblemConsistency}) {
		t.Fatalf("fork: %+v", r)
	}
}

func rewrite(t *testing.T, path string, f func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, f(b), 0o644); err != nil {
		t.Fatal(err)
	}
}

func lines(b []byte) [][]byte { return bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n")) }

func TestPackTampering(t *testing.T) {
	s := newSigner(t)
	l, _ := openLog(t, s)
	appendN(t, l, s, 12)
	pub := pubPEM(t, s)
	other := newSigner(t)
	cases := []struct {
		name   string
		tamper func(t *testing.T, dir string)
		want   []string
	}{
		{"flipped byte in an envelope", func(t *testing.T, dir string) {
			rewrite(t, filepath.Join(dir, fileIndex), func(b []byte) []byte {
				i := bytes.Index(b, []byte(`"envelope":"`)) + 40
				b[i] ^= 0x01
				return b
			})
		}, []string{ProblemEntryProof, ProblemEntrySignature, ProblemFileDigest, ProblemRoot}},
		{"entry removed", func(t *testing.T, dir string) {
			rewrite(t, filepath.Join(dir, fileIndex), func(b []byte) []byte {
				ls := lines(b)
				return append(bytes.Join(append(ls[:4:4], ls[5:]...), []byte("\n")), '\n')
			})
		}, []string{ProblemEntryCount, ProblemEntryOrder, ProblemFileDigest}},
		{"two entries swapped", func(t *testing.T, dir string) {
			rewrite(t, filepath.Join(dir, fileIndex), func(b []byte) []byte {
				ls := lines(b)
				ls[2], ls[3] = ls[3], ls[2]
				return append(bytes.Join(ls, []byte("\n")), '\n')
			})
		}, []string{ProblemEntryOrder, ProblemFileDigest}},
		{"forged checkpoint", func(t *testing.T, dir string) {
			ol, _ := openLog(t, other)
			appendN(t, ol, other, 12)
			if err := os.WriteFile(filepath.Join(dir, fileCheckpoint), ol.Checkpoint().Note, 0o644); err != nil {
				t.Fatal(err)
			}
		}, []string{ProblemCheckpoint, ProblemFileDigest}},
		{"blob replaced", func(t *testing.T, dir string) {
			matches, _ := filepath.Glob(filepath.Join(dir, dirBlobs, "*"))
			if err := os.WriteFile(matches[0], []byte("vendors: [evil]\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, []string{ProblemFileDigest}},
		{"file removed", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, fileKey)); err != nil {
				t.Fatal(err)
			}
		}, []string{ProblemFileMissing}},
		{"file added", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "extra.txt"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, []string{ProblemFileExtra}},
		{"manifest edited to match a removed entry", func(t *testing.T, dir string) {
			rewrite(t, filepath.Join(dir, fileManifest), func(b []byte) []byte {
				return bytes.Replace(b, []byte(`"entries": 12`), []byte(`"entries": 11`), 1)
			})
		}, []string{ProblemEntryCount, ProblemManifestSignature}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := exportPack(t, l, ExportOptions{})
			tc.tamper(t, dir)
			r := mustVerify(t, dir, pub, nil)
			if r.Intact || !slices.Equal(codes(r), tc.want) {
				t.Fatalf("codes = %v, want %v\n%+v", codes(r), tc.want, r.Problems)
			}
		})
	}
	t.Run("wrong key", func(t *testing.T) {
		dir := exportPack(t, l, ExportOptions{})
		r := mustVerify(t, dir, pubPEM(t, other), nil)
		want := []string{ProblemCheckpoint, ProblemKey, ProblemManifestSignature}
		if r.Intact || !slices.Equal(codes(r), want) {
			t.Fatalf("codes = %v, want %v", codes(r), want)
		}
	})
}

func TestPackUnreadable(t *testing.T) {
	s := newSigner(t)
	pub := pubPEM(t, s)
	dir := t.TempDir()
	write := func(name string, entries []tar.Header, data []byte) string {
		p := filepath.Join(dir, name)
		var buf bytes.Buffer
		gz := gzip.NewWriter(&buf)
		tw := tar.NewWriter(gz)
		for _, h := range entries {
			h := h
			if err := tw.WriteHeader(&h); err != nil {
				t.Fatal(err)
			}
			if h.Typeflag == tar.TypeReg {
				tw.Write(data[:h.Size])
			}
		}
		tw.Close()
		gz.Close()
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name, path, want string
	}{
		{"symlink", write("link.tar.gz", []tar.Header{{Name: "manifest.json", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}}, nil), "is a link or special file"},
		{"escape", write("escape.tar.gz", []tar.Header{{Name: "../evil", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644}}, []byte("x")), "escapes the pack"},
		{"no manifest", write("empty.tar.gz", nil, nil), "manifest.json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := VerifyPack(t.Context(), tc.path, pub, nil)
			if !errors.Is(err, ErrPackUnreadable) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want unreadable with %q", err, tc.want)
			}
		})
	}
	trunc := filepath.Join(dir, "trunc.tar.gz")
	l, _ := openLog(t, s)
	appendN(t, l, s, 3)
	full := filepath.Join(dir, "full.tar.gz")
	if _, err := l.Export(context.Background(), full, ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(full)
	os.WriteFile(trunc, b[:len(b)/2], 0o644)
	if _, err := VerifyPack(t.Context(), trunc, pub, nil); !errors.Is(err, ErrPackUnreadable) {
		t.Fatalf("truncated pack: %v", err)
	}
	if _, err := l.Export(context.Background(), full, ExportOptions{}); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("export over existing: %v", err)
	}
}
