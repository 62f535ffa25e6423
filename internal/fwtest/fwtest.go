// Package fwtest builds firmware images for tests with the real tools
// (mksquashfs, mke2fs, cpio, mkfs.vfat and mcopy, xorriso, mkimage, tar,
// zip and the compressors) from a small root filesystem with an
// Alpine-style package database, so syft finds real packages in every
// format. A test whose tool is missing is skipped with the Debian package
// to install.
package fwtest

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Debian packages of the tools, for skip messages (.ci/run installs them).
var debianPackage = map[string]string{
	"mksquashfs": "squashfs-tools", "mke2fs": "e2fsprogs", "cpio": "cpio", "mkimage": "u-boot-tools",
	"dtc": "device-tree-compiler", "mkfs.vfat": "dosfstools", "mcopy": "mtools", "xorriso": "xorriso",
	"xz": "xz-utils", "zstd": "zstd", "lz4": "lz4", "bzip2": "bzip2", "gzip": "gzip", "tar": "tar", "zip": "zip",
}

// Need skips the test unless every tool is on PATH.
func Need(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (apt-get install -y %s): skipping", tool, debianPackage[tool])
		}
	}
}

// Run runs a tool in dir and fails the test with its output on error.
func Run(t testing.TB, dir, name string, args ...string) {
	t.Helper()
	Need(t, name)
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// Packages are the packages the root filesystem's database lists, as
// name and version; Owned maps each package to the file it owns.
var (
	Packages = map[string]string{"busybox": "1.36.1-r29", "musl": "1.2.5-r0", "zlib": "1.3.1-r1"}
	Owned    = map[string]string{"bin/busybox": "busybox", "lib/ld-musl-x86_64.so.1": "musl", "usr/lib/libz.so.1.3.1": "zlib"}
)

// ApkDB is the lib/apk/db/installed of the root filesystem.
const ApkDB = `C:Q1Gp5h6N3v0bqSm4rDT3lCHWbKxJM=
P:busybox
V:1.36.1-r29
A:x86_64
S:508548
I:975872
T:Size optimized toolbox of many common UNIX utilities
U:https://busybox.net/
L:GPL-2.0-only
o:busybox
m:Soren Tempel <soeren+alpine@soeren-tempel.net>
t:1718003003
c:1e7b9b6e1e3e6f6b0b2d6c9b4b8f8a7f6e5d4c3b
D:so:libc.musl-x86_64.so.1
p:cmd:busybox=1.36.1-r29
F:bin
R:busybox
a:0:0:755

C:Q1qKcZ+j23xssAXmgQhkOO8dHnbWw=
P:musl
V:1.2.5-r0
A:x86_64
S:411323
I:655360
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Timo Teras <timo.teras@iki.fi>
t:1712000000
c:2a2b2c2d2e2f3a3b3c3d3e3f4a4b4c4d4e4f5a5b
p:so:libc.musl-x86_64.so.1=1
F:lib
R:ld-musl-x86_64.so.1
a:0:0:755

C:Q1Xy8O4Z8zGmW8d7Ozt0JqlX5rXhM=
P:zlib
V:1.3.1-r1
A:x86_64
S:53833
I:114688
T:A compression/decompression Library
U:https://zlib.net/
L:Zlib
o:zlib
m:Natanael Copa <ncopa@alpinelinux.org>
t:1714000000
c:3a3b3c3d3e3f4a4b4c4d4e4f5a5b5c5d5e5f6a6b
D:so:libc.musl-x86_64.so.1
p:so:libz.so.1=1.3.1
F:usr/lib
R:libz.so.1.3.1
a:0:0:755
R:libz.so.1

`

// Rootfs writes the root filesystem into a new directory: the package
// database, /etc/os-release, an ELF executable (a copy of /bin/true, as
// bin/busybox), libraries, a script and data; with links, also bin/sh ->
// /bin/busybox (absolute, as Alpine has it) and usr/lib/libz.so.1 ->
// libz.so.1.3.1 (FAT has no links).
func Rootfs(t testing.TB, links bool) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "rootfs")
	elf, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Skipf("no /bin/true to use as an ELF executable: %v", err)
	}
	files := map[string][]byte{
		"lib/apk/db/installed":    []byte(ApkDB),
		"etc/os-release":          []byte("NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.20.3\nPRETTY_NAME=\"Alpine Linux v3.20\"\n"),
		"etc/init.d/app":          []byte("#!/bin/sh\nexec /usr/bin/app --serve\n"),
		"bin/busybox":             elf,
		"lib/ld-musl-x86_64.so.1": bytes.Repeat([]byte("musl"), 1024),
		"usr/lib/libz.so.1.3.1":   bytes.Repeat([]byte("zlib"), 512),
		"usr/share/app/data.txt":  []byte("pump calibration table\n"),
	}
	for name, body := range files {
		Write(t, filepath.Join(dir, name), body, 0o755)
	}
	if links {
		if err := os.Symlink("/bin/busybox", filepath.Join(dir, "bin/sh")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("libz.so.1.3.1", filepath.Join(dir, "usr/lib/libz.so.1")); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Write writes a file, creating its directory.
func Write(t testing.TB, p string, body []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, body, mode); err != nil {
		t.Fatal(err)
	}
}

func out(t testing.TB, name string) string {
	t.Helper()
	return filepath.Join(t.TempDir(), name)
}

// Squashfs makes a squashfs image of dir with mksquashfs, compressed with
// comp (gzip, xz, lz4, zstd).
func Squashfs(t testing.TB, dir, comp string) string {
	t.Helper()
	p := out(t, "rootfs.squashfs")
	Run(t, dir, "mksquashfs", dir, p, "-noappend", "-quiet", "-no-progress", "-comp", comp, "-all-root")
	return p
}

// Ext makes an ext2, ext3 or ext4 image of dir with mke2fs -d, with
// 4 KiB blocks and mke2fs's default features for the type.
func Ext(t testing.TB, dir, typ string) string {
	t.Helper()
	return ExtWith(t, dir, typ, 4096, "")
}

// ExtWith makes an ext image of dir with mke2fs -d, with the block size
// (1024, 2048 or 4096) and, unless empty, mke2fs -O features (such as
// "^metadata_csum").
func ExtWith(t testing.TB, dir, typ string, blockSize int, features string) string {
	t.Helper()
	p := out(t, fmt.Sprintf("rootfs-%d.%s", blockSize, typ))
	args := []string{"-q", "-F", "-b", fmt.Sprint(blockSize), "-t", typ}
	if features != "" {
		args = append(args, "-O", features)
	}
	Run(t, dir, "mke2fs", append(args, "-d", dir, p, "8M")...)
	return p
}

// CPIO makes a cpio archive of dir in format newc or odc.
func CPIO(t testing.TB, dir, format string) string {
	t.Helper()
	Need(t, "cpio", "sh")
	p := out(t, "rootfs."+format+".cpio")
	cmd := exec.Command("sh", "-c", "find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H "+format+" > "+p)
	cmd.Dir = dir
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio: %v\n%s", err, o)
	}
	return p
}

// FAT makes a FAT image of dir with mkfs.vfat and mcopy.
func FAT(t testing.TB, dir string) string {
	t.Helper()
	Need(t, "mkfs.vfat", "mcopy")
	p := out(t, "rootfs.vfat")
	Run(t, dir, "mkfs.vfat", "-C", p, "8192")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-s", "-i", p}
	for _, e := range entries {
		args = append(args, e.Name())
	}
	args = append(args, "::/")
	Run(t, dir, "mcopy", args...)
	return p
}

// ISO makes an ISO 9660 image with Rock Ridge of dir with xorriso.
func ISO(t testing.TB, dir string) string {
	t.Helper()
	p := out(t, "rootfs.iso")
	Run(t, dir, "xorriso", "-as", "mkisofs", "-quiet", "-R", "-o", p, dir)
	return p
}

// Tar makes a tar of dir; Zip a zip (with links stored as links).
func Tar(t testing.TB, dir string) string {
	t.Helper()
	p := out(t, "rootfs.tar")
	Run(t, dir, "tar", "-cf", p, "-C", dir, ".")
	return p
}

func Zip(t testing.TB, dir string) string {
	t.Helper()
	p := out(t, "rootfs.zip")
	Run(t, dir, "zip", "-q", "-r", "-y", p, ".")
	return p
}

// Compress compresses file with tool (gzip, xz, bzip2, zstd, lz4) into a
// new file named after it with ext. Tests pass xz -0: its default preset
// allocates about 100 MiB and costs a quarter of a second of CPU per call,
// for the same stream format.
func Compress(t testing.TB, file, tool, ext string, args ...string) string {
	t.Helper()
	Need(t, tool)
	p := out(t, filepath.Base(file)+ext)
	cmd := exec.Command(tool, append(append([]string{"-c"}, args...), file)...)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = f
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("%s: %v\n%s", tool, err, stderr.Bytes())
	}
	return p
}

// UImage wraps payloads in a U-Boot legacy image with mkimage: one payload
// of type typ, or several as a multi-file image when len(payloads) > 1.
// comp is what the header says the data is compressed with (mkimage does
// not compress).
func UImage(t testing.TB, name, typ, comp string, payloads ...string) string {
	t.Helper()
	p := out(t, "firmware.uimg")
	if len(payloads) > 1 {
		typ = "multi"
	}
	Run(t, filepath.Dir(p), "mkimage", "-A", "arm", "-O", "linux", "-T", typ, "-C", comp, "-a", "0", "-e", "0", "-n", name, "-d", strings.Join(payloads, ":"), p)
	return p
}

// FITImage is one image of a FIT image.
type FITImage struct {
	Node, Type, Compression, File string
}

// FIT makes a FIT image with mkimage -f from an image tree source; with
// external, the data is placed after the device tree (mkimage -E).
func FIT(t testing.TB, description string, external bool, images ...FITImage) string {
	t.Helper()
	Need(t, "mkimage", "dtc")
	var its strings.Builder
	fmt.Fprintf(&its, "/dts-v1/;\n/ {\n\tdescription = %q;\n\t#address-cells = <1>;\n\timages {\n", description)
	for _, im := range images {
		fmt.Fprintf(&its, "\t\t%s {\n\t\t\tdescription = %q;\n\t\t\tdata = /incbin/(%q);\n\t\t\ttype = %q;\n\t\t\tarch = \"arm\";\n\t\t\tos = \"linux\";\n\t\t\tcompression = %q;\n\t\t\tload = <0>;\n\t\t\tentry = <0>;\n\t\t};\n",
			im.Node, im.Node, im.File, im.Type, im.Compression)
	}
	fmt.Fprintf(&its, "\t};\n\tconfigurations {\n\t\tdefault = \"conf-1\";\n\t\tconf-1 {\n\t\t\tkernel = %q;\n\t\t};\n\t};\n};\n", images[0].Node)
	dir := t.TempDir()
	src := filepath.Join(dir, "fw.its")
	Write(t, src, []byte(its.String()), 0o644)
	p := out(t, "firmware.itb")
	args := []string{"-f", src}
	if external {
		args = append(args, "-E")
	}
	Run(t, dir, "mkimage", append(args, p)...)
	return p
}

// WithHeader writes a vendor header of n random bytes, then file.
func WithHeader(t testing.TB, file string, n int) string {
	t.Helper()
	body, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, n)
	rand.Read(hdr)
	copy(hdr, "ACMEFW\x00\x01")
	p := out(t, "vendor-"+filepath.Base(file)+".bin")
	Write(t, p, append(hdr, body...), 0o644)
	return p
}
