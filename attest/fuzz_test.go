package attest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseCheckpoint: any bytes either parse into a checkpoint whose note
// verifies under the key and origin, or are rejected; never a panic, and
// only a note signed by the key is ever accepted.
func FuzzParseCheckpoint(f *testing.F) {
	s := newSigner(f)
	l, err := openLogDir(f, f.TempDir(), s)
	if err != nil {
		f.Fatal(err)
	}
	appendN(f, l, s, 3)
	good := l.Checkpoint()
	f.Add(good.Note)
	f.Add([]byte("wardgate/x\n3\nAAAA\n\n— wardgate/x AAAAAAAA\n"))
	f.Add([]byte(""))
	v := s.Verifier()
	f.Fuzz(func(t *testing.T, data []byte) {
		cp, err := ParseCheckpoint(data, good.Origin, v)
		if err != nil {
			return
		}
		if cp.Origin != good.Origin {
			t.Fatalf("accepted a checkpoint for origin %q", cp.Origin)
		}
		// Only the genuine note, or one that differs outside the signed
		// text, can verify.
		if cp.Size != good.Size || !bytes.Equal(cp.Root, good.Root) {
			t.Fatalf("accepted a forged checkpoint: size %d root %x", cp.Size, cp.Root)
		}
	})
}

// FuzzVerifyPack feeds arbitrary bytes as a .tar.gz pack: the reader must
// refuse or report, never panic (it writes nothing: packs are streamed).
func FuzzVerifyPack(f *testing.F) {
	s := newSigner(f)
	l, err := openLogDir(f, f.TempDir(), s)
	if err != nil {
		f.Fatal(err)
	}
	appendN(f, l, s, 4)
	pack := filepath.Join(f.TempDir(), "pack.tar.gz")
	if _, err := l.Export(context.Background(), pack, ExportOptions{}); err != nil {
		f.Fatal(err)
	}
	good, err := os.ReadFile(pack)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	tw.WriteHeader(&tar.Header{Name: "manifest.json", Typeflag: tar.TypeReg, Size: 2, Mode: 0o644})
	tw.Write([]byte("{}"))
	tw.Close()
	gz.Close()
	f.Add(buf.Bytes())
	pub, err := s.PublicKeyPEM()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "fuzz.tar.gz")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		rep, err := VerifyPack(t.Context(), p, pub, nil)
		if err != nil {
			if !errors.Is(err, ErrPackUnreadable) {
				t.Fatalf("error is not ErrPackUnreadable: %v", err)
			}
			return
		}
		if rep.Intact && !bytes.Equal(data, good) && rep.Entries != 4 {
			t.Fatalf("a different pack verified intact with %d entries", rep.Entries)
		}
	})
}
