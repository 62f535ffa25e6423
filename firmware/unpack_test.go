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
		{"squashfs-lzo", true, func(t *testing.T, r string) string { return fwtest.Squashfs(t, r, "lzo") }, []string{". squashfs"}, ""},
		{"squashfs-lzma", true, func(t *testing.T, r string) string { return fwtest.Squashfs(t, r, "lzma") }, []string{". squashfs"}, ""},
		{"ext4", true, func(t *testing.T, r string) string { return fwtest.Ext(t, r, "ext4") }, []string{". ext"}, ""},
		{"ext2 1 KiB blocks", true, func(t *testing.T, r string) string { return fwtest.ExtWith(t, r, "ext2", 1024, "") }, []string{". ext"}, ""},
		{"ext2 4 KiB blocks", true, func(t *testing.T, r string) string { return fwtest.ExtWith(t, r, "ext2", 4096, "") }, []string{". ext"}, ""},
		{"ext3 1 KiB blocks", true, func(t *testing.T, r string) string { return fwtest.ExtWith(t, r, "ext3", 1024, "") }, []string{". ext"}, ""},
		{"ext3 2 KiB blocks", true, func(t *testing.T, r string) string { return fwtest.ExtWith(t, r, "ext3", 2048, "") }, []string{". ext"}, ""},
		{"ext4 1 KiB blocks", true, func(t *testing.T, r string) string { return fwtest.ExtWith(t, r, "ext4", 1024, "") }, []string{". ext"}, ""},
		{"ext4 2 KiB blocks", true, func(t *testing.T, r string) string { return fwtest.ExtWith(t, r, "ext4", 2048, "") }, []string{". ext"}, ""},
		{"ext4 without metadata checksums", true, func(t *testing.T, r string) string {
			return fwtest.ExtWith(t, r, "ext4", 4096, "^metadata_csum")
		}, []string{". ext"}, ""},
		{"ext4 1 KiB blocks without metadata checksums", true, func(t *testing.T, r string) string {
			return fwtest.ExtWith(t, r, "ext4", 1024, "^metadata_csum,^64bit")
		}, []string{". ext"}, ""},
		{"cpio-newc", true, func(t *testing.T, r string) string { return fwtest.CPIO(t, r, "newc") }, []string{". cpio-newc"}, ""},
		{"cpio-odc", true, func(t *testing.T, r string) string { return fwtest.CPIO(t, r, "odc") }, []string{". cpio-odc"}, ""},
		{"fat", false, func(t *testing.T, r string) string { return fwtest.FAT(t, r) }, []string{". fat"}, ""},
		{"iso9660", true, func(t *testing.T, r string) string { return fwtest.ISO(t, r) }, []string{". iso9660"}, ""},
		{"tar", true, func(t *testing.T, r string) string { return fwtest.Tar(t, r) }, []string{". tar"}, ""},
		{"zip", true, func(t *testing.T, r string) string { return fwtest.Zip(t, r) }, []string{". zip"}, ""},
		{"tar.gz", true, func(t *testing.T, r string) string { return fwtest.Compress(t, fwtest.Tar(t, r), "gzip", ".gz") }, []string{". gzip+tar"}, ""},
		{"tar.xz", true, func(t *testing.T, r string) string { return fwtest.Compress(t, fwtest.Tar(t, r), "xz", ".xz", "-0") }, []string{". xz+tar"}, ""},
		{"tar.bz2", true, func(t *testing.T, r string) string { return fwtest.Compress(t, fwtest.Tar(t, r), "bzip2", ".bz2") }, []string{". bzip2+tar"}, ""},
		{"tar.zst", true, func(t *testing.T, r string) string { return fwtest.Compress(t, fwtest.Tar(t, r), "zstd", ".zst", "-q") }, []string{". zstd+tar"}, ""},
		{"tar.lz4", true, func(t *testing.T, r string) string { return fwtest.Compress(t, fwtest.Tar(t, r), "lz4", ".lz4", "-q") }, []string{". lz4+tar"}, ""},
		{"cpio.lz4-legacy", true, func(t *testing.T, r string) string {
			return fwtest.Compress(t, fwtest.CPIO(t, r, "newc"), "lz4", ".lz4", "-q", "-l")
		}, []string{". lz4+cpio-newc"}, ""},
		{"squashfs.xz", true, func(t *testing.T, r string) string {
			return fwtest.Compress(t, fwtest.Squashfs(t, r, "gzip"), "xz", ".xz", "-0")
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
	// One root filesystem with links and one without (FAT has none), read
	// by every case; the cases run the image tools in parallel.
	roots := map[bool]string{true: fwtest.Rootfs(t, true), false: fwtest.Rootfs(t, false)}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := roots[tc.links]
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

// TestUnpackUnsupported: what no reader in the dependency graph reads is
// refused with an error that says so, never unpacked wrong.
func TestUnpackUnsupported(t *testing.T) {
	root := fwtest.Rootfs(t, true)
	// A link whose target is longer than an inode holds: ext2 and ext3
	// keep it in a data block.
	longRoot := fwtest.Rootfs(t, true)
	long := "/usr/share/app/" + strings.Repeat("calibration-", 6) + "table.txt"
	if err := os.Symlink(long, filepath.Join(longRoot, "etc/calibration")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		build func(t *testing.T) string
		msg   string
	}{
		{"squashfs lz4", func(t *testing.T) string { return fwtest.Squashfs(t, root, "lz4") }, "squashfs compressed with lz4: not readable"},
		{"ext2 link target in a data block", func(t *testing.T) string { return fwtest.ExtWith(t, longRoot, "ext2", 1024, "") },
			"link etc/calibration: target of 96 bytes kept in a data block"},
		{"ext4 inline data", func(t *testing.T) string { return fwtest.ExtWith(t, root, "ext4", 4096, "inline_data") },
			"ext image with inline_data: not readable by go-ext4-filesystem"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Unpack(t.Context(), tc.build(t), t.TempDir(), Limits{})
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.msg)
			}
		})
	}
}

// TestUnpackExtLongLink: ext4 keeps a link target longer than the inode
// holds in an extent, which the reader reads.
func TestUnpackExtLongLink(t *testing.T) {
	root := fwtest.Rootfs(t, true)
	long := "/usr/share/app/" + strings.Repeat("calibration-", 6) + "table.txt"
	if err := os.Symlink(long, filepath.Join(root, "etc/calibration")); err != nil {
		t.Fatal(err)
	}
	_, dir := unpack(t, fwtest.ExtWith(t, root, "ext4", 1024, ""), Limits{})
	want := "../usr/share/app/" + strings.Repeat("calibration-", 6) + "table.txt"
	if got, err := os.Readlink(filepath.Join(dir, "etc/calibration")); err != nil || got != want {
		t.Fatalf("etc/calibration -> %q (%v), want %q", got, err, want)
	}
}

func TestUnpackNotFirmware(t *testing.T) {
	p := filepath.Join(t.TempDir(), "notes.txt")
	fwtest.Write(t, p, bytes.Repeat([]byte("plain text, no magic\n"), 100), 0o644)
	if _, err := Unpack(t.Context(), p, t.TempDir(), Limits{}); !errors.Is(err, ErrNotFirmware) {
		t.Fatalf("err = %v, want ErrNotFirmware", err)
	}
}
