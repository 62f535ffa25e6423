package firmware

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strconv"

	"github.com/cavaliergopher/cpio"
)

// countingReader counts the bytes read through it: how long an archive
// was, for carving.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// tar unpacks a tar stream into dest and returns how many bytes it read.
func (u *unpacker) tar(r io.Reader, dest string, depth int) (int64, error) {
	cr := &countingReader{r: r}
	tr := tar.NewReader(cr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return cr.n, nil
		}
		if err != nil {
			return cr.n, fmt.Errorf("unpack tar: %w", err)
		}
		name, err := entryName(dest, h.Name)
		if err != nil {
			return cr.n, err
		}
		if name == "" {
			continue
		}
		switch h.Typeflag {
		case tar.TypeDir:
			err = u.dir(name)
		case tar.TypeReg:
			var head []byte
			if head, err = u.file(name, tr, h.FileInfo().Mode()); err == nil {
				err = u.nested(name, head, h.Size, depth)
			}
		case tar.TypeSymlink:
			err = u.symlink(name, h.Linkname, dest)
		case tar.TypeLink:
			target, terr := entryName(dest, h.Linkname)
			if terr != nil || target == "" {
				return cr.n, unsafeError("hard link %q points out of the archive to %q", h.Name, h.Linkname)
			}
			err = u.hardlink(name, target)
		default:
			// Devices, FIFOs and the like carry no packages and are never
			// created.
		}
		if err != nil {
			return cr.n, err
		}
	}
}

// zip unpacks a zip archive. archive/zip finds the central directory from
// the end, so a zip behind a header (a self-extractor, or one byte
// prepended) is read too.
func (u *unpacker) zip(r io.ReaderAt, size int64, dest string, depth int) error {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return fmt.Errorf("unpack zip: %w", err)
	}
	for _, zf := range zr.File {
		name, err := entryName(dest, zf.Name)
		if err != nil {
			return err
		}
		if name == "" {
			continue
		}
		mode := zf.Mode()
		switch {
		case mode.IsDir():
			err = u.dir(name)
		case mode&fs.ModeSymlink != 0:
			var target []byte
			if target, err = readSmall(zf); err == nil {
				err = u.symlink(name, string(target), dest)
			}
		case mode.IsRegular():
			var rc io.ReadCloser
			if rc, err = zf.Open(); err != nil {
				return fmt.Errorf("unpack %s: %w", name, err)
			}
			var head []byte
			head, err = u.file(name, rc, mode)
			rc.Close()
			if err == nil {
				err = u.nested(name, head, int64(zf.UncompressedSize64), depth)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// readSmall reads a zip entry that must be small (a link target).
func readSmall(zf *zip.File) ([]byte, error) {
	rc, err := zf.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 4097))
	if err != nil {
		return nil, err
	}
	if len(b) > 4096 {
		return nil, unsafeError("link %q has a target longer than 4096 bytes", zf.Name)
	}
	return b, nil
}

// cpio unpacks a cpio archive (newc through cavaliergopher/cpio, odc
// through readOdc) and returns how many bytes it read.
func (u *unpacker) cpio(r io.Reader, f Format, dest string, depth int) (int64, error) {
	cr := &countingReader{r: r}
	var next func() (*cpioEntry, error)
	if f == CPIOOdc {
		or := &odcReader{r: bufio.NewReader(cr)}
		next = or.next
	} else {
		nr := cpio.NewReader(cr)
		next = func() (*cpioEntry, error) {
			h, err := nr.Next()
			if err != nil {
				return nil, err
			}
			e := &cpioEntry{name: h.Name, mode: h.Mode, size: h.Size, linkname: h.Linkname, body: nr}
			return e, nil
		}
	}
	for {
		e, err := next()
		if err == io.EOF {
			return cr.n, nil
		}
		if err != nil {
			return cr.n, fmt.Errorf("unpack %s: %w", f, err)
		}
		name, err := entryName(dest, e.name)
		if err != nil {
			return cr.n, err
		}
		if name == "" {
			continue
		}
		switch e.mode & cpio.ModeType {
		case cpio.TypeDir:
			err = u.dir(name)
		case cpio.TypeReg:
			var head []byte
			if head, err = u.file(name, io.LimitReader(e.body, e.size), fs.FileMode(e.mode.Perm())); err == nil {
				err = u.nested(name, head, e.size, depth)
			}
		case cpio.TypeSymlink:
			target := e.linkname
			if target == "" {
				// newc and odc keep the target as the entry's data.
				b, rerr := io.ReadAll(io.LimitReader(e.body, min(e.size, 4096)))
				if rerr != nil {
					return cr.n, fmt.Errorf("unpack %s: %w", name, rerr)
				}
				target = string(b)
			}
			err = u.symlink(name, target, dest)
		default:
		}
		if err != nil {
			return cr.n, err
		}
	}
}

// cpioEntry is one entry of either cpio format.
type cpioEntry struct {
	name     string
	mode     cpio.FileMode
	size     int64
	linkname string
	body     io.Reader
}

// odcReader reads the POSIX.1 portable "odc" cpio format (magic 070707):
// a 76-byte header of octal fields, the NUL-terminated name, then the data,
// with no padding; the archive ends with the entry "TRAILER!!!".
// cavaliergopher/cpio reads only newc; no maintained Go reader of odc was
// found, and the format is these few fields (POSIX.1-1988, pax(1)).
type odcReader struct {
	r    *bufio.Reader
	left int64 // unread data of the previous entry
}

// odcMaxName bounds an entry name (PATH_MAX).
const odcMaxName = 4096

var errOdcHeader = errors.New("cpio-odc: bad header")

func (o *odcReader) next() (*cpioEntry, error) {
	if o.left > 0 {
		if _, err := io.CopyN(io.Discard, o.r, o.left); err != nil {
			return nil, err
		}
		o.left = 0
	}
	e, err := parseOdcHeader(o.r)
	if err != nil {
		return nil, err
	}
	o.left = e.size
	e.body = &odcBody{o: o}
	return e, nil
}

// odcBody reads the current entry's data.
type odcBody struct{ o *odcReader }

func (b *odcBody) Read(p []byte) (int, error) {
	if b.o.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.o.left {
		p = p[:b.o.left]
	}
	n, err := b.o.r.Read(p)
	b.o.left -= int64(n)
	if err == io.EOF && b.o.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// parseOdcHeader reads one odc header and its name; io.EOF at the trailer.
func parseOdcHeader(r io.Reader) (*cpioEntry, error) {
	var h [76]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if err == io.EOF {
			return nil, io.ErrUnexpectedEOF // an archive ends with its trailer
		}
		return nil, err
	}
	if !bytes.Equal(h[:6], magicOdc) {
		return nil, errOdcHeader
	}
	field := func(off, n int) (int64, error) {
		v, err := strconv.ParseInt(string(h[off:off+n]), 8, 64)
		if err != nil || v < 0 {
			return 0, fmt.Errorf("%w: field at %d: %q", errOdcHeader, off, h[off:off+n])
		}
		return v, nil
	}
	// c_magic 6, c_dev 6, c_ino 6, c_mode 6, c_uid 6, c_gid 6, c_nlink 6,
	// c_rdev 6, c_mtime 11, c_namesize 6, c_filesize 11.
	mode, err := field(18, 6)
	if err != nil {
		return nil, err
	}
	namesize, err := field(59, 6)
	if err != nil {
		return nil, err
	}
	size, err := field(65, 11)
	if err != nil {
		return nil, err
	}
	if namesize < 1 || namesize > odcMaxName {
		return nil, fmt.Errorf("%w: name size %d", errOdcHeader, namesize)
	}
	name := make([]byte, namesize)
	if _, err := io.ReadFull(r, name); err != nil {
		return nil, err
	}
	if name[namesize-1] != 0 {
		return nil, fmt.Errorf("%w: name not NUL-terminated", errOdcHeader)
	}
	n := string(name[:namesize-1])
	if n == "TRAILER!!!" {
		return nil, io.EOF
	}
	return &cpioEntry{name: path.Clean("/" + n)[1:], mode: cpio.FileMode(mode), size: size}, nil
}
