package firmware

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardgate/wardgate/internal/fwtest"
)

// assertSameTree checks that every regular file of want is in got under
// prefix with the same bytes, and every link leads to the same content.
func assertSameTree(t *testing.T, want, got, prefix string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(want, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		g := filepath.Join(got, prefix, rel)
		switch {
		case d.Type()&os.ModeSymlink != 0:
			if _, err := os.Lstat(g); err != nil {
				t.Errorf("link %s missing: %v", rel, err)
			}
		case d.Type().IsRegular():
			n++
			wb, _ := os.ReadFile(p)
			gb, err := os.ReadFile(g)
			if err != nil || !bytes.Equal(wb, gb) {
				t.Errorf("file %s: %d bytes, want %d (%v)", rel, len(gb), len(wb), err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no files compared")
	}
}

func unpack(t *testing.T, src string, lim Limits) (*Result, string) {
	t.Helper()
	dir := t.TempDir()
	res, err := Unpack(t.Context(), src, dir, lim)
	if err != nil {
		t.Fatalf("Unpack(%s): %v", filepath.Base(src), err)
	}
	return res, dir
}

func formats(l Layer) string {
	var s []string
	for _, f := range l.Formats {
		s = append(s, string(f))
	}
	return strings.Join(s, "+")
}

// TestUnpackFormats unpacks an image of the same root filesystem made by
// the real tool of each format and compares the tree with the original.
func TestUnpackFormats(t *testing.T) {
	type tc struct {
		name   string
		links  bool
		build  func(t *testing.T, root string) string
		layers []string // want: "path formats"
		prefix string
	}
	tests := []tc{
		{"squashfs-gzip", true, func(t *testing.T, r string) string { return fwtest.Squashfs(t, r, "gzip") }, []string{". squashfs"}, ""},
		{"squashfs-xz", true, func(t *testing.T, r string) string { return fwtest.Squashfs(t, r, "xz") }, []string{". squashfs"}, ""},
		{"squashfs-zstd", true, func(t *testing.T, r string) string { return fwtest.Squashfs(t, r, "zstd") }, []string{". squashfs"}, ""},
		{"ext4", true, func(t *testing.T, r string) string { return fwtest.Ext(t, r, "ext4") }, []string{". ext"}, ""},
		{"cpio-newc", true, func(t *testing.T, r string) string { return fwtest.CPIO(t, r, "newc") }, []string{". cpio-newc"}, ""},
		{"cpio-odc", true, func(t *testing.T, r string) string { return fwtest.CPIO(t, r, "odc") }, []string{". cpio-odc"}, ""},
		{"fat", false, func(t *testing.T, r string) string { return fwtest.FAT(t, r) }, []string{". fat"}, ""},
		{"iso9660", true, func(t *testing.T, r string) string { return fwtest.ISO(t, r) }, []string{". iso9660"}, ""},
		{"tar", true, func(t *testing.T, r string) string { return fwtest.Tar(t, r) }, []string{". tar"}, ""},
		{"zip", true, func(t *testing.T, r string) string { return fwtest.Zip(t, r) }, []string{". zip"}, ""},
		{"tar.gz", true, func(t *testing.T, r string) string { return fwtest.Compress(t, fwtest.Tar(t, r), "gzip", ".gz") }, []string{". gzip+tar"}, ""},
		{"tar.xz", true, func(t *testing.T, r string) string { return fwtest.Compress(t, fwtest.Tar(t, r), "xz", ".xz") }, []string{". xz+tar"}, ""},
		{"tar.bz2", true, func(t *testing.T, r string) string { return fwtest.Compress(t, fwtest.Tar(t, r), "bzip2", ".bz2") }, []string{". bzip2+tar"}, ""},
		{"tar.zst", true, func(t *testing.T, r string) string { return fwtest.Compress(t, fwtest.Tar(t, r), "zstd", ".zst", "-q") }, []string{". zstd+tar"}, ""},
		{"tar.lz4", true, func(t *testing.T, r string) string { return fwtest.Compress(t, fwtest.Tar(t, r), "lz4", ".lz4", "-q") }, []string{". lz4+tar"}, ""},
		{"cpio.lz4-legacy", true, func(t *testing.T, r string) string {
			return fwtest.Compress(t, fwtest.CPIO(t, r, "newc"), "lz4", ".lz4", "-q", "-l")
		}, []string{". lz4+cpio-newc"}, ""},
		{"squashfs.xz", true, func(t *testing.T, r string) string {
			return fwtest.Compress(t, fwtest.Squashfs(t, r, "gzip"), "xz", ".xz")
		}, []string{". xz+squashfs"}, ""},
		{"uimage ramdisk cpio.gz", true, func(t *testing.T, r string) string {
			return fwtest.UImage(t, "pump rootfs", "ramdisk", "gzip", fwtest.Compress(t, fwtest.CPIO(t, r, "newc"), "gzip", ".gz"))
		}, []string{". uimage", "pump rootfs cpio-newc"}, "pump rootfs"},
		{"uimage multi", true, func(t *testing.T, r string) string {
			k := filepath.Join(t.TempDir(), "zImage")
			fwtest.Write(t, k, bytes.Repeat([]byte{0xa5}, 4000), 0o644)
			return fwtest.UImage(t, "kernel+rootfs", "multi", "none", k, fwtest.Squashfs(t, r, "xz"))
		}, []string{". uimage", "kernel+rootfs-1 squashfs"}, "kernel+rootfs-1"},
		{"fit", true, func(t *testing.T, r string) string {
			k := filepath.Join(t.TempDir(), "zImage")
			fwtest.Write(t, k, bytes.Repeat([]byte{0x5a}, 4000), 0o644)
			return fwtest.FIT(t, "pump firmware 4.2", false,
				fwtest.FITImage{Node: "kernel-1", Type: "kernel", Compression: "none", File: k},
				fwtest.FITImage{Node: "ramdisk-1", Type: "ramdisk", Compression: "gzip", File: fwtest.Compress(t, fwtest.CPIO(t, r, "newc"), "gzip", ".gz")})
		}, []string{". fit", "ramdisk-1 cpio-newc"}, "ramdisk-1"},
		{"fit external data", true, func(t *testing.T, r string) string {
			return fwtest.FIT(t, "pump firmware 4.2", true,
				fwtest.FITImage{Node: "rootfs", Type: "filesystem", Compression: "none", File: fwtest.Squashfs(t, r, "gzip")})
		}, []string{". fit", "rootfs squashfs"}, "rootfs"},
		{"vendor header + squashfs (carved)", true, func(t *testing.T, r string) string {
			return fwtest.WithHeader(t, fwtest.Squashfs(t, r, "xz"), 512)
		}, []string{". squashfs@512"}, ""},
		{"vendor header + tar.gz (carved)", true, func(t *testing.T, r string) string {
			return fwtest.WithHeader(t, fwtest.Compress(t, fwtest.Tar(t, r), "gzip", ".gz"), 64)
		}, []string{". gzip+tar@64"}, ""},
		{"tar holding a squashfs and a kernel", true, func(t *testing.T, r string) string {
			d := t.TempDir()
			sq := fwtest.Squashfs(t, r, "gzip")
			fwtest.Write(t, filepath.Join(d, "images/kernel.bin"), bytes.Repeat([]byte{1}, 1000), 0o644)
			b, _ := os.ReadFile(sq)
			fwtest.Write(t, filepath.Join(d, "images/rootfs.squashfs"), b, 0o644)
			return fwtest.Compress(t, fwtest.Tar(t, d), "gzip", ".gz")
		}, []string{". gzip+tar", "images/rootfs.squashfs squashfs"}, "images/rootfs.squashfs"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := fwtest.Rootfs(t, tc.links)
			img := tc.build(t, root)
			res, dir := unpack(t, img, Limits{})
			var got []string
			for _, l := range res.Layers {
				s := l.Path + " " + formats(l)
				if l.Offset != 0 && l.Path == "." {
					s += "@" + itoa(l.Offset)
				}
				got = append(got, s)
			}
			// Only the layers named are compared (an image's own payloads,
			// like the kernel, are layers too when they hold no container).
			for _, w := range tc.layers {
				found := false
				for _, g := range got {
					found = found || g == w
				}
				if !found {
					t.Errorf("layers %q, want %q among them", got, w)
				}
			}
			assertSameTree(t, root, dir, tc.prefix)
			if tc.links {
				if tgt, err := os.Readlink(filepath.Join(dir, tc.prefix, "bin/sh")); err != nil || tgt != "busybox" {
					t.Errorf("bin/sh -> %q (%v), want busybox (the absolute /bin/busybox, read from the layer's root)", tgt, err)
				}
			}
			for _, e := range mustReadDir(t, dir) {
				if strings.HasPrefix(e, ".wardgate-") {
					t.Errorf("temporary %s left in the tree", e)
				}
			}
		})
	}
}

func itoa(n int64) string { return formatInt(n) }

func formatInt(n int64) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}

func mustReadDir(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// TestUnpackUnsupported: what go-diskfs v1.9.4 cannot read is refused
// with an error that says so, never unpacked wrong.
func TestUnpackUnsupported(t *testing.T) {
	root := fwtest.Rootfs(t, true)
	for _, tc := range []struct{ name, img, msg string }{
		{"ext2", fwtest.Ext(t, root, "ext2"), "ext image without metadata checksums"},
		{"ext3", fwtest.Ext(t, root, "ext3"), "ext image without metadata checksums"},
		{"ext4 1 KiB blocks", func() string {
			p := filepath.Join(t.TempDir(), "small.ext4")
			fwtest.Run(t, root, "mke2fs", "-q", "-F", "-b", "1024", "-t", "ext4", "-d", root, p, "8M")
			return p
		}(), "1024-byte blocks"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Unpack(t.Context(), tc.img, t.TempDir(), Limits{})
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.msg)
			}
		})
	}
}

func TestUnpackNotFirmware(t *testing.T) {
	p := filepath.Join(t.TempDir(), "notes.txt")
	fwtest.Write(t, p, bytes.Repeat([]byte("plain text, no magic\n"), 100), 0o644)
	if _, err := Unpack(t.Context(), p, t.TempDir(), Limits{}); !errors.Is(err, ErrNotFirmware) {
		t.Fatalf("err = %v, want ErrNotFirmware", err)
	}
}
