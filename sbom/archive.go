package sbom

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// ErrUnsafeArchive is wrapped by errors about a firmware archive that
// Generate refuses to unpack: an entry escaping the target directory, a
// link pointing out of it, or more data or files than the limits allow.
var ErrUnsafeArchive = errors.New("sbom: unsafe archive")

// Archive limits: a real firmware image is at most a few GiB and tens of
// thousands of files; anything beyond is treated as an archive bomb.
const (
	DefaultMaxArchiveBytes = 8 << 30
	DefaultMaxArchiveFiles = 200_000
)

type archiveKind int

const (
	notArchive archiveKind = iota
	archiveTar
	archiveTarGz
	archiveZip
)

// sniffArchive tells a tar, gzip-compressed tar or zip file by its magic.
func sniffArchive(p string) (archiveKind, error) {
	f, err := os.Open(p)
	if err != nil {
		return notArchive, err
	}
	defer f.Close()
	head := make([]byte, 512)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		return archiveZip, nil
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return archiveTarGz, nil
	case len(head) >= 262 && string(head[257:262]) == "ustar":
		return archiveTar, nil
	}
	return notArchive, nil
}

type archiveLimits struct {
	maxBytes int64
	maxFiles int
}

// unpacker writes entries under an os.Root, so nothing it writes can land
// outside dir even through a symlink created by an earlier entry.
type unpacker struct {
	root   *os.Root
	limits archiveLimits
	bytes  int64
	files  int
}

// unpackArchive unpacks the archive at src into the empty directory dir.
func unpackArchive(src, dir string, kind archiveKind, limits archiveLimits) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	u := &unpacker{root: root, limits: limits}
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	switch kind {
	case archiveZip:
		st, err := f.Stat()
		if err != nil {
			return err
		}
		return u.zip(f, st.Size())
	case archiveTarGz:
		gz, err := gzip.NewReader(bufio.NewReader(f))
		if err != nil {
			return fmt.Errorf("unpack %s: %w", src, err)
		}
		defer gz.Close()
		return u.tar(gz)
	case archiveTar:
		return u.tar(bufio.NewReader(f))
	}
	return fmt.Errorf("unpack %s: not a tar, tar.gz or zip archive", src)
}

// entryName checks an entry name and returns it relative to the root. Any
// absolute name or ".." element is refused, even one that would resolve
// inside: real firmware archives never need them.
func entryName(name string) (string, error) {
	n := strings.ReplaceAll(name, `\`, "/")
	if strings.HasPrefix(n, "/") || (len(n) > 1 && n[1] == ':') || slices.Contains(strings.Split(n, "/"), "..") {
		return "", fmt.Errorf("%w: entry %q escapes the archive", ErrUnsafeArchive, name)
	}
	n = path.Clean(n)
	if n == "." {
		return "", nil
	}
	return filepath.FromSlash(n), nil
}

// linkTarget checks that a link at name pointing to target stays inside.
func linkTarget(name, target string) error {
	if filepath.IsAbs(target) || strings.HasPrefix(target, "/") {
		return fmt.Errorf("%w: link %q points to absolute path %q", ErrUnsafeArchive, name, target)
	}
	joined := path.Join(path.Dir(filepath.ToSlash(name)), filepath.ToSlash(target))
	if !filepath.IsLocal(filepath.FromSlash(joined)) {
		return fmt.Errorf("%w: link %q points out of the archive to %q", ErrUnsafeArchive, name, target)
	}
	return nil
}

func (u *unpacker) count(size int64) error {
	u.files++
	if u.files > u.limits.maxFiles {
		return fmt.Errorf("%w: more than %d files", ErrUnsafeArchive, u.limits.maxFiles)
	}
	if size > 0 && u.bytes+size > u.limits.maxBytes {
		return fmt.Errorf("%w: more than %s unpacked", ErrUnsafeArchive, humanBytes(u.limits.maxBytes))
	}
	return nil
}

func (u *unpacker) writeFile(name string, r io.Reader, mode fs.FileMode) error {
	if err := u.root.MkdirAll(filepath.Dir(name), 0o755); err != nil && filepath.Dir(name) != "." {
		return fmt.Errorf("unpack %s: %w", name, err)
	}
	f, err := u.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode.Perm()|0o600)
	if err != nil {
		return fmt.Errorf("unpack %s: %w", name, err)
	}
	// Count what is really written, not what the header claims: a
	// compressed entry may lie about its size.
	left := u.limits.maxBytes - u.bytes
	n, err := io.Copy(f, io.LimitReader(r, left+1))
	u.bytes += n
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("unpack %s: %w", name, err)
	}
	if n > left {
		return fmt.Errorf("%w: more than %s unpacked", ErrUnsafeArchive, humanBytes(u.limits.maxBytes))
	}
	return nil
}

func (u *unpacker) tar(r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("unpack tar: %w", err)
		}
		name, err := entryName(h.Name)
		if err != nil {
			return err
		}
		if name == "" {
			continue
		}
		if err := u.count(h.Size); err != nil {
			return err
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := u.root.MkdirAll(name, 0o755); err != nil {
				return fmt.Errorf("unpack %s: %w", name, err)
			}
		case tar.TypeReg:
			if err := u.writeFile(name, tr, h.FileInfo().Mode()); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := linkTarget(name, h.Linkname); err != nil {
				return err
			}
			if err := u.root.MkdirAll(filepath.Dir(name), 0o755); err != nil && filepath.Dir(name) != "." {
				return err
			}
			if err := u.root.Symlink(h.Linkname, name); err != nil {
				return fmt.Errorf("unpack %s: %w", name, err)
			}
		case tar.TypeLink:
			target, err := entryName(h.Linkname)
			if err != nil || target == "" {
				return fmt.Errorf("%w: hard link %q points out of the archive to %q", ErrUnsafeArchive, h.Name, h.Linkname)
			}
			if err := u.root.Link(target, name); err != nil {
				return fmt.Errorf("unpack %s: %w", name, err)
			}
		default:
			// Devices, FIFOs and the like carry no packages; skip them.
		}
	}
}

func (u *unpacker) zip(r io.ReaderAt, size int64) error {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return fmt.Errorf("unpack zip: %w", err)
	}
	for _, zf := range zr.File {
		name, err := entryName(zf.Name)
		if err != nil {
			return err
		}
		if name == "" {
			continue
		}
		if err := u.count(int64(zf.UncompressedSize64)); err != nil {
			return err
		}
		mode := zf.Mode()
		switch {
		case mode.IsDir():
			if err := u.root.MkdirAll(name, 0o755); err != nil {
				return fmt.Errorf("unpack %s: %w", name, err)
			}
		case mode&fs.ModeSymlink != 0:
			rc, err := zf.Open()
			if err != nil {
				return err
			}
			target, err := io.ReadAll(io.LimitReader(rc, 4096))
			rc.Close()
			if err != nil {
				return err
			}
			if err := linkTarget(name, string(target)); err != nil {
				return err
			}
			if err := u.root.Symlink(string(target), name); err != nil {
				return fmt.Errorf("unpack %s: %w", name, err)
			}
		case mode.IsRegular():
			rc, err := zf.Open()
			if err != nil {
				return fmt.Errorf("unpack %s: %w", name, err)
			}
			err = u.writeFile(name, rc, mode)
			rc.Close()
			if err != nil {
				return err
			}
		}
	}
	return nil
}
