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
	"github.com/diskfs/go-diskfs/filesystem/ext4"
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

// openFilesystem reads a filesystem image with go-diskfs.
func openFilesystem(sr *io.SectionReader, size int64, f Format) (filesystem.FileSystem, error) {
	b := file.New(section{sr}, true)
	switch f {
	case Squashfs:
		return squashfs.Read(b, size, 0, 0)
	case Ext:
		sb := make([]byte, 2048)
		if _, err := sr.ReadAt(sb, 0); err != nil {
			return nil, err
		}
		if bs := extBlockSize(sb); bs != 4096 {
			return nil, fmt.Errorf("ext image with %d-byte blocks: go-diskfs v1.9.4 reads only 4096-byte blocks correctly", bs)
		}
		if binary.LittleEndian.Uint32(sb[1024+0x64:])&extMetadataCsum == 0 {
			// go-diskfs checks every inode's checksum and refuses images
			// without them; say so instead of its "checksum type 0".
			return nil, errors.New("ext image without metadata checksums (ext2, ext3, or ext4 made with -O ^metadata_csum): go-diskfs v1.9.4 reads only ext4 with metadata_csum")
		}
		return ext4.Read(b, size, 0, 0)
	case ISO9660:
		return iso9660.Read(b, size, 0, 0)
	case FAT:
		return openFAT(b, sr, size)
	}
	return nil, fmt.Errorf("%s is not a filesystem", f)
}

// extMetadataCsum is the ro_compat flag of ext4 metadata checksums.
const extMetadataCsum = 0x400

func extBlockSize(sb []byte) int64 {
	return 1024 << binary.LittleEndian.Uint32(sb[1024+24:])
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
func (u *unpacker) filesystem(sr *io.SectionReader, size int64, f Format, dest string, depth int) error {
	fsys, err := openFilesystem(sr, size, f)
	if err != nil {
		return fmt.Errorf("unpack %s: %w", f, err)
	}
	defer fsys.Close()
	return u.walkFS(fsys, f, ".", dest, depth, 0)
}

// maxFSDepth bounds directory nesting inside an image: a corrupted image
// can have a directory that contains itself.
const maxFSDepth = 256

func (u *unpacker) walkFS(fsys filesystem.FileSystem, f Format, dir, dest string, depth, level int) error {
	if level > maxFSDepth {
		return unsafeError("%s: directories nested more than %d deep", f, maxFSDepth)
	}
	if err := u.ctx.Err(); err != nil {
		return err
	}
	entries, err := fsys.ReadDir(dir)
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
			target := linkTarget(info)
			if target == "" {
				return fmt.Errorf("unpack %s: %s: link without a target", f, src)
			}
			err = u.symlink(name, target, dest)
		case e.IsDir():
			if err = u.dir(name); err == nil {
				err = u.walkFS(fsys, f, src, dest, depth, level+1)
			}
		case mode.IsRegular():
			var fh filesystem.File
			if fh, err = fsys.OpenFile(src, os.O_RDONLY); err != nil {
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

// linkTarget reads a symlink's target from a go-diskfs file info.
func linkTarget(info fs.FileInfo) string {
	switch s := info.Sys().(type) {
	case *squashfs.StatT:
		return s.LinkTarget
	case squashfs.StatT:
		return s.LinkTarget
	case *ext4.StatT:
		return s.LinkTarget
	case ext4.StatT:
		return s.LinkTarget
	case *iso9660.StatT:
		return s.LinkTarget
	case iso9660.StatT:
		return s.LinkTarget
	}
	return ""
}
