package firmware

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// carveMagics are the signatures searched for at any offset, with the
// offset of the magic inside its format's header (tar's "ustar" is at 257).
// Filesystems whose magic sits deep in a block (ext, FAT, ISO 9660) are
// recognised only at the start of a file or member, as binwalk's default
// signatures do for ext and FAT.
var carveMagics = []struct {
	magic []byte
	at    int64
}{
	{magicGzip, 0}, {magicXZ, 0}, {magicBzip2, 0}, {magicZstd, 0}, {magicLZ4, 0}, {magicLZ4Legacy, 0},
	{magicNewc, 0}, {magicNewcCRC, 0}, {magicOdc, 0}, {magicZip, 0}, {magicSquashfs, 0},
	{magicUImage, 0}, {magicFDT, 0}, {[]byte("ustar"), 257},
}

// carveWindow is how much of the file is searched at a time.
const carveWindow = 1 << 20

// findCandidates returns the offsets where some magic starts, ascending.
func findCandidates(r io.ReaderAt, size int64) ([]int64, error) {
	const overlap = 512
	var out []int64
	seen := map[int64]bool{}
	buf := make([]byte, carveWindow+overlap)
	for base := int64(0); base < size; base += carveWindow {
		n, err := r.ReadAt(buf, base)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		w := buf[:n]
		for _, m := range carveMagics {
			for i := 0; i < len(w) && i < carveWindow; {
				j := bytes.Index(w[i:], m.magic)
				if j < 0 || i+j >= carveWindow {
					break
				}
				at := base + int64(i+j) - m.at
				i += j + 1
				if at > 0 && at < size && !seen[at] {
					seen[at] = true
					out = append(out, at)
				}
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// extent is how many bytes a payload at off spans, when its header says
// so; -1 when only unpacking it tells.
func extent(f Format, head []byte) int64 {
	switch f {
	case Squashfs:
		return squashfsSize(head)
	case Ext:
		return extSize(head)
	case FAT:
		return fatSize(head)
	case ISO9660:
		if len(head) >= 32768+84 {
			return int64(binary.LittleEndian.Uint32(head[32768+80:])) * 2048
		}
	case UImage:
		return uImageHeaderLen + int64(binary.BigEndian.Uint32(head[12:16]))
	case FIT:
		return int64(binary.BigEndian.Uint32(head[4:8]))
	}
	return -1
}

// carve looks for payloads behind a vendor header, as binwalk does: every
// offset where a known signature starts is tried, in order, by unpacking
// what is there; a payload that unpacks is kept, and the search goes on
// after it. One payload is unpacked into dest itself, several into
// payload-1, payload-2... (named by order, not offset, so that the paths
// stay the same when a new release's header grows). A candidate that does
// not unpack is dropped; a limit crossed stops everything.
func (u *unpacker) carve(r *os.File, size int64, dest, name string, depth int) error {
	cands, err := findCandidates(r, size)
	if err != nil {
		return fmt.Errorf("carve %s: %w", name, err)
	}
	type found struct {
		dir string
		off int64
	}
	var got []found
	next := int64(0)
	for _, off := range cands {
		if off < next {
			continue
		}
		head := readHead(r, off, size)
		f, ok := Sniff(head, size-off)
		if !ok || (f == Gzip && len(head) > 3 && head[3]&0xe0 != 0) {
			continue
		}
		u.tmp++
		stage := fmt.Sprintf(".wardgate-carve-%d", u.tmp)
		if err := u.root.Mkdir(stage, 0o755); err != nil {
			return err
		}
		nlayers := len(u.layers)
		err := u.expand(r, off, size-off, f, stage, Layer{Path: stage, Source: name, Offset: off}, depth, name)
		var le *LimitError
		if errors.As(err, &le) || u.ctx.Err() != nil || (err != nil && errors.Is(err, ErrUnsafe)) {
			return err
		}
		if err != nil {
			u.layers = u.layers[:nlayers]
			u.forgetDirs()
			if rerr := u.root.RemoveAll(stage); rerr != nil {
				return rerr
			}
			continue
		}
		got = append(got, found{stage, off})
		if e := extent(f, head); e > 0 {
			next = off + e
		} else {
			next = off + 1
		}
	}
	if len(got) == 0 {
		return ErrNotFirmware
	}
	for i, g := range got {
		final := fmt.Sprintf("payload-%d", i+1)
		if len(got) == 1 {
			final = dest
		}
		if err := u.moveStage(g.dir, final); err != nil {
			return err
		}
		for j := range u.layers {
			if p, ok := reroot(u.layers[j].Path, g.dir, final); ok {
				u.layers[j].Path = p
			}
			if p, ok := reroot(u.layers[j].Source, g.dir, final); ok {
				u.layers[j].Source = p
			}
		}
		for j, l := range u.links {
			if p, ok := reroot(l, g.dir, final); ok {
				u.links[j] = p
			}
		}
	}
	return nil
}

// reroot replaces the leading directory from of p with to.
func reroot(p, from, to string) (string, bool) {
	switch {
	case p == from:
		return to, true
	case len(p) > len(from) && p[:len(from)+1] == from+"/":
		if to == "." {
			return p[len(from)+1:], true
		}
		return to + p[len(from):], true
	}
	return p, false
}

// moveStage moves a carved payload's tree to its final place: into the
// root itself (each entry), or to a directory of its own.
func (u *unpacker) moveStage(stage, final string) error {
	u.forgetDirs()
	if final != "." {
		return u.root.Rename(stage, filepath.FromSlash(final))
	}
	d, err := u.root.Open(stage)
	if err != nil {
		return err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := u.root.Rename(filepath.Join(stage, n), n); err != nil {
			return err
		}
	}
	return u.root.Remove(stage)
}
