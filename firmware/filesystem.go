package firmware

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/diskfs/go-diskfs/backend"
	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/fat12"
	"github.com/diskfs/go-diskfs/filesystem/fat16"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
	"github.com/diskfs/go-diskfs/filesystem/squashfs"
)

// section is a read-only fs.File over part of a file, as go-diskfs's
// backend wants one.
type section struct {
	*io.SectionReader
}

func (s section) Stat() (fs.FileInfo, error) { return sectionInfo{s.Size()}, nil }
func (s section) Close() error               { return nil }

type sectionInfo struct{ size int64 }

func (i sectionInfo) Name() string       { return "image" }
func (i sectionInfo) Size() int64        { return i.size }
func (i sectionInfo) Mode() fs.FileMode  { return 0o400 }
func (i sectionInfo) ModTime() time.Time { return time.Time{} }
func (i sectionInfo) IsDir() bool        { return false }
func (i sectionInfo) Sys() any           { return nil }

// fsTree is a filesystem image opened for reading: the walk lists its
// directories (slash-separated paths, "." for the root) and opens its
// regular files and reads its links by the entries listed.
type fsTree interface {
	ReadDir(dir string) ([]fs.DirEntry, error)
	open(e fs.DirEntry, p string) (io.ReadCloser, error)
	readlink(e fs.DirEntry, info fs.FileInfo, p string) (string, error)
	Close() error
}

// openTree opens a filesystem image: ext2/3/4 with go-ext4-filesystem,
// the others with go-diskfs.
func openTree(sr *io.SectionReader, size int64, f Format) (fsTree, error) {
	if f == Ext {
		return openExt(sr, size)
	}
	fsys, err := openFilesystem(sr, size, f)
	if err != nil {
		return nil, err
	}
	return diskfsTree{fsys}, nil
}

// diskfsTree is a filesystem read by go-diskfs.
type diskfsTree struct{ filesystem.FileSystem }

func (t diskfsTree) open(e fs.DirEntry, p string) (io.ReadCloser, error) { return openEntry(t, e, p) }

func (t diskfsTree) readlink(_ fs.DirEntry, info fs.FileInfo, _ string) (string, error) {
	return linkTarget(info), nil
}

// openFilesystem reads a squashfs, FAT or ISO 9660 image with go-diskfs.
func openFilesystem(sr *io.SectionReader, size int64, f Format) (filesystem.FileSystem, error) {
	b := file.New(section{sr}, true)
	switch f {
	case Squashfs:
		if err := checkSquashfs(sr); err != nil {
			return nil, err
		}
		return squashfs.Read(b, size, 0, 0)
	case ISO9660:
		return iso9660.Read(b, size, 0, 0)
	case FAT:
		return openFAT(b, sr, size)
	}
	return nil, fmt.Errorf("%s is not a filesystem", f)
}

// squashfsLZ4 is the superblock's compression id of lz4.
const squashfsLZ4 = 5

// checkSquashfs refuses what go-diskfs cannot read, before it fails deep
// inside: squashfs keeps lz4 data as raw blocks, and go-diskfs v1.9.4
// decodes lz4 frames only (so does github.com/sylabs/squashfs v1.0.6, the
// other squashfs reader in the dependency graph).
func checkSquashfs(sr *io.SectionReader) error {
	sb := make([]byte, 22)
	if _, err := sr.ReadAt(sb, 0); err != nil {
		return fmt.Errorf("read squashfs superblock: %w", err)
	}
	if binary.LittleEndian.Uint16(sb[20:]) == squashfsLZ4 {
		return errors.New("squashfs compressed with lz4: not readable (go-diskfs v1.9.4 decodes lz4 frames, squashfs keeps raw lz4 blocks); make the image with -comp gzip, xz, zstd, lzo or lzma")
	}
	return nil
}

// openFAT reads the FAT variant the boot sector names, or tries each.
func openFAT(b backend.Storage, sr *io.SectionReader, size int64) (filesystem.FileSystem, error) {
	bs := make([]byte, 512)
	if _, err := sr.ReadAt(bs, 0); err != nil {
		return nil, err
	}
	var errs []error
	for _, v := range fatOrder(bs) {
		var (
			fsys filesystem.FileSystem
			err  error
		)
		switch v {
		case "FAT12":
			fsys, err = fat12.Read(b, size, 0, 0)
		case "FAT16":
			fsys, err = fat16.Read(b, size, 0, 0)
		default:
			fsys, err = fat32.Read(b, size, 0, 0)
		}
		if err == nil {
			return fsys, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", v, err))
	}
	return nil, errors.Join(errs...)
}

// fatOrder puts the variant the boot sector names first.
func fatOrder(bs []byte) []string {
	switch {
	case strings.HasPrefix(string(bs[82:]), "FAT32"):
		return []string{"FAT32", "FAT16", "FAT12"}
	case strings.HasPrefix(string(bs[54:]), "FAT12"):
		return []string{"FAT12", "FAT16", "FAT32"}
	}
	return []string{"FAT16", "FAT12", "FAT32"}
}

// filesystem unpacks a filesystem image into dest, walking it from its
// root: directories, regular files and symlinks; devices, FIFOs and sockets
// are never created.
//
// The readers are third-party parsers of untrusted bytes: a panic in one is
// a corrupt image, reported as an error naming the format, never a crash.
func (u *unpacker) filesystem(sr *io.SectionReader, size int64, f Format, dest string, depth int) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("unpack %s: corrupt image: the reader failed: %v", f, r)
		}
	}()
	t, err := openTree(sr, size, f)
	if err != nil {
		return fmt.Errorf("unpack %s: %w", f, err)
	}
	defer t.Close()
	return u.walkFS(t, f, size, ".", dest, depth, 0)
}

// maxFSDepth bounds directory nesting inside an image: a corrupted image
// can have a directory that contains itself.
const maxFSDepth = 256

func (u *unpacker) walkFS(t fsTree, f Format, size int64, dir, dest string, depth, level int) error {
	if level > maxFSDepth {
		return unsafeError("%s: directories nested more than %d deep", f, maxFSDepth)
	}
	if err := u.ctx.Err(); err != nil {
		return err
	}
	entries, err := t.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("unpack %s: read directory %s: %w", f, dir, err)
	}
	for _, e := range entries {
		n := e.Name()
		if n == "." || n == ".." || n == "" {
			continue
		}
		if f == Ext && dir == "." && n == "lost+found" {
			continue // made by mke2fs, not part of the firmware
		}
		src := path.Join(dir, n)
		name, err := entryName(dest, src)
		if err != nil {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return fmt.Errorf("unpack %s: %s: %w", f, src, err)
		}
		mode := info.Mode()
		switch {
		case mode&fs.ModeSymlink != 0:
			var target string
			if target, err = t.readlink(e, info, src); err != nil {
				return fmt.Errorf("unpack %s: link %s: %w", f, src, err)
			}
			if target == "" {
				return fmt.Errorf("unpack %s: %s: link without a target", f, src)
			}
			err = u.symlink(name, target, dest)
		case e.IsDir():
			// A directory cannot be larger than the image holding it;
			// one that says so is corrupt (and would have the reader
			// allocate what it says).
			if info.Size() > size {
				return fmt.Errorf("unpack %s: directory %s claims %d bytes in a %d-byte image", f, src, info.Size(), size)
			}
			if err = u.dir(name); err == nil {
				err = u.walkFS(t, f, size, src, dest, depth, level+1)
			}
		case mode.IsRegular():
			// What the entry says it holds is charged before it is opened:
			// a reader sizes its block tables by it.
			if err := u.fits(info.Size()); err != nil {
				return err
			}
			var fh io.ReadCloser
			if fh, err = t.open(e, src); err != nil {
				return fmt.Errorf("unpack %s: open %s: %w", f, src, err)
			}
			var head []byte
			head, err = u.file(name, io.LimitReader(fh, info.Size()), mode)
			fh.Close()
			if err == nil {
				err = u.nested(name, head, info.Size(), depth)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// openEntry opens a regular file found by ReadDir. go-diskfs's squashfs
// entries open themselves from the inode already read; its OpenFile would
// re-read the directory from the root and every inode in it, which makes
// unpacking a directory of n files cost n² inode reads.
func openEntry(fsys filesystem.FileSystem, e fs.DirEntry, p string) (io.ReadCloser, error) {
	if o, ok := e.(entryOpener); ok {
		return o.Open()
	}
	return fsys.OpenFile(p, os.O_RDONLY)
}

// entryOpener is a go-diskfs squashfs directory entry.
type entryOpener interface {
	Open() (filesystem.File, error)
}

// linkTarget reads a symlink's target from a go-diskfs file info.
func linkTarget(info fs.FileInfo) string {
	switch s := info.Sys().(type) {
	case *squashfs.StatT:
		return s.LinkTarget
	case squashfs.StatT:
		return s.LinkTarget
	case *iso9660.StatT:
		return s.LinkTarget
	case iso9660.StatT:
		return s.LinkTarget
	}
	return ""
}
