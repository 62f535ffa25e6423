// Package firmware recognises and unpacks device firmware images, safely and
// recursively, and lists and compares the files inside them.
//
// Unpack takes a firmware file and writes what is inside into an empty
// directory: compressed streams (gzip, xz, bzip2, zstd, lz4), archives (tar,
// cpio newc and odc, zip), filesystem images (squashfs, ext2/3/4, FAT,
// ISO 9660), U-Boot legacy images and FIT images, and payloads found behind
// a vendor header (carving, as binwalk does). A member that is itself one
// of these (a rootfs.squashfs inside a tar) is unpacked in its place: the
// file becomes a directory of the same name. Every layer is reported with
// where it sits in the tree, what it was and at which offset it was found.
//
// Everything is written through an os.Root, so no entry lands outside the
// directory; links are checked after the whole tree is written, following
// every link, so no chain of links leads out; devices and FIFOs are never
// created. Limits bound the bytes written, the entries, the nesting depth
// and the ratio of bytes written to the input's size; crossing one is a
// *LimitError naming it.
//
// Filesystems are read with github.com/diskfs/go-diskfs (squashfs, FAT,
// ISO 9660) and github.com/masahiro331/go-ext4-filesystem (ext2/3/4), newc cpio with
// github.com/cavaliergopher/cpio, streams with the standard library,
// github.com/klauspost/compress, github.com/ulikunitz/xz and
// github.com/pierrec/lz4/v4, manifests with github.com/goccy/go-json;
// golang.org/x/sys/unix sets TreeDir's placement hint. The odc cpio header, the U-Boot legacy header
// and the flattened device tree of FIT images have no maintained Go reader
// in the dependency graph; they are parsed here from their specifications
// (each a few fixed-size fields) and fuzzed.
//
// Manifest lists the files of an unpacked tree (path, size, SHA-256, type,
// ELF build ID or PE details) and DiffManifests compares two releases file by
// file.
//
// Imports: the libraries above and the standard library. Must not import
// syft, net/http server types, cobra, or any other wardgate package.
package firmware
