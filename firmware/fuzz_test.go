package firmware

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// FuzzParseFDT: the device tree parser never panics, and a tree it
// accepts has a root whose properties lie inside the blob.
func FuzzParseFDT(f *testing.F) {
	f.Add(minimalFDT())
	f.Add([]byte{0xd0, 0x0d, 0xfe, 0xed})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := parseFDT(b)
		if err == nil && n == nil {
			t.Fatal("nil tree without an error")
		}
	})
}

// FuzzUImageHeader: a header is accepted only with its CRC right.
func FuzzUImageHeader(f *testing.F) {
	f.Add(uImageHeaderFor(100, "kernel"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseUImageHeader(b)
		if err != nil {
			return
		}
		var hdr [uImageHeaderLen]byte
		copy(hdr[:], b)
		want := binary.BigEndian.Uint32(hdr[4:8])
		clear(hdr[4:8])
		if crc32.ChecksumIEEE(hdr[:]) != want || len(h.Name) > 32 {
			t.Fatalf("accepted a bad header: %+v", h)
		}
	})
}

// FuzzUnpack: carving and unpacking arbitrary bytes never panics, never
// writes outside its directory and stays within the limits.
func FuzzUnpack(f *testing.F) {
	f.Add(append([]byte("ACMEFW"), minimalFDT()...))
	f.Add(append(uImageHeaderFor(0, "x"), 0))
	f.Add([]byte("070707000000000000000000000000000000000000000000000000000000000000000000000000"))
	// Small filesystem images from the real tools, when installed, for
	// the fuzzer to corrupt: the readers are third-party parsers.
	for _, img := range fuzzImages(f) {
		f.Add(img)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		src := filepath.Join(dir, "fw.bin")
		if err := os.WriteFile(src, b, 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "out")
		if err := os.Mkdir(out, 0o755); err != nil {
			t.Fatal(err)
		}
		res, err := Unpack(t.Context(), src, out, Limits{MaxBytes: 1 << 20, MaxFiles: 100, MaxDepth: 4})
		if err == nil && (res.Bytes > 1<<20 || res.Files > 100) {
			t.Fatalf("limits crossed: %+v", res)
		}
		es, _ := os.ReadDir(dir)
		if len(es) != 2 {
			t.Fatalf("wrote beside the output directory: %v", es)
		}
	})
}

// FuzzOdcHeader: the odc header parser never panics nor returns a
// negative size.
func FuzzOdcHeader(f *testing.F) {
	f.Add([]byte("07070700000000000000010064400000000000000000000000000000000000000600000000005hello\x00abcde"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := parseOdcHeader(bytes.NewReader(b))
		if err == nil && e.size < 0 {
			t.Fatalf("negative size %d", e.size)
		}
	})
}

// minimalFDT is a device tree with a root and an empty /images node.
func minimalFDT() []byte {
	var st bytes.Buffer
	w := func(v uint32) { binary.Write(&st, binary.BigEndian, v) }
	w(fdtBeginNode)
	st.Write([]byte{0, 0, 0, 0})
	w(fdtBeginNode)
	st.WriteString("images\x00\x00")
	w(fdtEndNode)
	w(fdtEndNode)
	w(fdtEnd)
	hdr := make([]byte, 40)
	total := 40 + st.Len()
	be := binary.BigEndian
	copy(hdr, magicFDT)
	be.PutUint32(hdr[4:], uint32(total))
	be.PutUint32(hdr[8:], 40)
	be.PutUint32(hdr[12:], uint32(total))
	be.PutUint32(hdr[20:], 17)
	be.PutUint32(hdr[24:], 16)
	be.PutUint32(hdr[36:], uint32(st.Len()))
	return append(hdr, st.Bytes()...)
}

func uImageHeaderFor(size uint32, name string) []byte {
	h := make([]byte, uImageHeaderLen)
	copy(h, magicUImage)
	binary.BigEndian.PutUint32(h[12:], size)
	copy(h[32:], name)
	binary.BigEndian.PutUint32(h[4:], crc32.ChecksumIEEE(h))
	return h
}

func TestParseMinimalFDT(t *testing.T) {
	n, err := parseFDT(minimalFDT())
	if err != nil || n.child("images") == nil {
		t.Fatalf("parseFDT: %v %+v", err, n)
	}
}

// fuzzImages makes a 64 KiB ext2 image with 1 KiB blocks and a squashfs
// image of a two-file tree with the tools that are installed.
func fuzzImages(f *testing.F) [][]byte {
	root := filepath.Join(f.TempDir(), "root")
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin/app"), []byte("#!/bin/sh\necho pump\n"), 0o755); err != nil {
		f.Fatal(err)
	}
	if err := os.Symlink("app", filepath.Join(root, "bin/run")); err != nil {
		f.Fatal(err)
	}
	var out [][]byte
	for _, c := range []struct {
		tool string
		args []string
	}{
		{"mke2fs", []string{"-q", "-F", "-t", "ext2", "-b", "1024", "-N", "16", "-d", root, "IMG", "64k"}},
		{"mksquashfs", []string{root, "IMG", "-noappend", "-quiet", "-no-progress", "-comp", "gzip"}},
	} {
		if _, err := exec.LookPath(c.tool); err != nil {
			continue
		}
		img := filepath.Join(f.TempDir(), "img")
		args := slices.Clone(c.args)
		args[slices.Index(args, "IMG")] = img
		if o, err := exec.Command(c.tool, args...).CombinedOutput(); err != nil {
			f.Fatalf("%s: %v\n%s", c.tool, err, o)
		}
		b, err := os.ReadFile(img)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}
