package firmware

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"path"
	"strings"
)

// U-Boot legacy image (include/image.h): a 64-byte big-endian header, then
// the data. The header and data carry CRC-32 checksums, both checked.
type uImageHeader struct {
	Size        uint32
	DataCRC     uint32
	Type        uint8
	Compression uint8
	Name        string
}

// U-Boot image types and compressions used here (include/image.h).
const (
	uImageTypeMulti = 4
)

var uImageCompression = map[uint8]string{0: "none", 1: "gzip", 2: "bzip2", 3: "lzma", 4: "lzo", 5: "lz4", 6: "zstd"}

var errUImage = errors.New("uimage: bad header")

// parseUImageHeader checks the magic and header CRC and returns the fields
// wardgate reads.
func parseUImageHeader(h []byte) (uImageHeader, error) {
	if len(h) < uImageHeaderLen || !isUImage(h) {
		return uImageHeader{}, errUImage
	}
	name := h[32:64]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	return uImageHeader{
		Size:        binary.BigEndian.Uint32(h[12:16]),
		DataCRC:     binary.BigEndian.Uint32(h[24:28]),
		Type:        h[30],
		Compression: h[31],
		Name:        string(name),
	}, nil
}

// uImageMaxParts bounds the images of a multi-file image.
const uImageMaxParts = 64

// uimage unpacks a U-Boot legacy image: its data (decompressed as the
// header says) is written as one file named after the image, or, for a
// multi-file image, one file per part; each is unpacked in its place when it
// is a container.
func (u *unpacker) uimage(sr *io.SectionReader, size int64, dest string, l Layer, depth int) error {
	h := make([]byte, uImageHeaderLen)
	if _, err := sr.ReadAt(h, 0); err != nil {
		return fmt.Errorf("unpack uimage: %w", err)
	}
	hdr, err := parseUImageHeader(h)
	if err != nil {
		return err
	}
	if int64(hdr.Size) > size-uImageHeaderLen {
		return fmt.Errorf("unpack uimage: data of %d bytes, only %d after the header", hdr.Size, size-uImageHeaderLen)
	}
	data := io.NewSectionReader(sr, uImageHeaderLen, int64(hdr.Size))
	if crc, err := crcOf(data); err != nil || crc != hdr.DataCRC {
		return fmt.Errorf("unpack uimage %q: data CRC %08x, header says %08x", hdr.Name, crc, hdr.DataCRC)
	}
	comp, ok := uImageCompression[hdr.Compression]
	if !ok || comp == "lzo" {
		return fmt.Errorf("unpack uimage %q: compression %d not supported", hdr.Name, hdr.Compression)
	}
	l.Name = hdr.Name
	u.record(l)
	type part struct{ off, size int64 }
	parts := []part{{0, int64(hdr.Size)}}
	if hdr.Type == uImageTypeMulti {
		parts = parts[:0]
		var sizes []int64
		var b [4]byte
		off := int64(0)
		for {
			if _, err := data.ReadAt(b[:], off); err != nil {
				return fmt.Errorf("unpack uimage %q: part table: %w", hdr.Name, err)
			}
			off += 4
			s := int64(binary.BigEndian.Uint32(b[:]))
			if s == 0 {
				break
			}
			if sizes = append(sizes, s); len(sizes) > uImageMaxParts {
				return fmt.Errorf("unpack uimage %q: more than %d parts", hdr.Name, uImageMaxParts)
			}
		}
		for _, s := range sizes {
			if off+s > int64(hdr.Size) {
				return fmt.Errorf("unpack uimage %q: part of %d bytes at %d runs past the data", hdr.Name, s, off)
			}
			parts = append(parts, part{off, s})
			off += (s + 3) &^ 3
		}
	}
	base := safeName(hdr.Name, "image")
	for i, p := range parts {
		name := base
		if hdr.Type == uImageTypeMulti {
			name = fmt.Sprintf("%s-%d", base, i)
		}
		var r io.Reader = io.NewSectionReader(data, p.off, p.size)
		if err := u.payload(r, comp, dest, name, depth, l.Source, uImageHeaderLen+p.off); err != nil {
			return err
		}
	}
	return nil
}

func crcOf(r io.Reader) (uint32, error) {
	h := crc32.NewIEEE()
	_, err := io.Copy(h, r)
	return h.Sum32(), err
}

// safeName makes an image name usable as one path element.
func safeName(s, fallback string) string {
	s = strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r < 0x20 || r == 0x7f {
			return '_'
		}
		return r
	}, strings.TrimSpace(s))
	if s == "" || s == "." || s == ".." {
		return fallback
	}
	return s
}

// payload writes one image's data, decompressed as its header says, to
// dest/name and unpacks it in its place when it is a container.
func (u *unpacker) payload(r io.Reader, comp, dest, name string, depth int, source string, off int64) error {
	var err error
	var rc io.ReadCloser
	switch comp {
	case "", "none":
		rc = io.NopCloser(r)
	case "gzip":
		rc, err = decompress(Gzip, r)
	case "bzip2":
		rc, err = decompress(Bzip2, r)
	case "lz4":
		rc, err = decompress(LZ4, r)
	case "zstd":
		rc, err = decompress(Zstd, r)
	case "lzma":
		rc, err = lzmaReader(r)
	default:
		return fmt.Errorf("unpack %s: compression %q not supported", name, comp)
	}
	if err != nil {
		return fmt.Errorf("unpack %s: %w", name, err)
	}
	defer rc.Close()
	p := path.Join(dest, name)
	if dest == "." {
		p = name
	}
	head, err := u.file(p, rc, 0o644)
	if err != nil {
		return err
	}
	if f, ok := Sniff(head, -1); ok && f != Zip {
		_ = off
		return u.nested(p, head, -1, depth)
	}
	return nil
}

// Flattened device tree (the Devicetree Specification, chapter 5): a
// big-endian header, a structure block of tokens and a strings block.
const (
	fdtBeginNode = 1
	fdtEndNode   = 2
	fdtProp      = 3
	fdtNop       = 4
	fdtEnd       = 9
	fdtMaxDepth  = 64
)

var errFDT = errors.New("fdt: bad device tree")

// fdtHeader is the part of the header the parser needs.
type fdtHeader struct {
	TotalSize, OffStruct, OffStrings, SizeStrings, SizeStruct uint32
}

// parseFDTHeader checks the header: magic, versions 16 or 17, blocks inside
// the total size, total size inside the file (size < 0: unknown).
func parseFDTHeader(h []byte, size int64) (fdtHeader, error) {
	if len(h) < 40 || !bytes.HasPrefix(h, magicFDT) {
		return fdtHeader{}, errFDT
	}
	be := binary.BigEndian
	hd := fdtHeader{TotalSize: be.Uint32(h[4:]), OffStruct: be.Uint32(h[8:]), OffStrings: be.Uint32(h[12:]), SizeStrings: be.Uint32(h[32:]), SizeStruct: be.Uint32(h[36:])}
	version, last := be.Uint32(h[20:]), be.Uint32(h[24:])
	switch {
	case version < 16 || version > 17 || last > 17:
		return hd, fmt.Errorf("%w: version %d", errFDT, version)
	case hd.TotalSize < 40 || (size >= 0 && int64(hd.TotalSize) > size):
		return hd, fmt.Errorf("%w: total size %d", errFDT, hd.TotalSize)
	case uint64(hd.OffStruct)+uint64(hd.SizeStruct) > uint64(hd.TotalSize),
		uint64(hd.OffStrings)+uint64(hd.SizeStrings) > uint64(hd.TotalSize):
		return hd, fmt.Errorf("%w: blocks outside the total size", errFDT)
	}
	return hd, nil
}

// fdtNode is one device tree node.
type fdtNode struct {
	Name     string
	Props    map[string][]byte
	Children []*fdtNode
}

func (n *fdtNode) child(name string) *fdtNode {
	for _, c := range n.Children {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func (n *fdtNode) str(prop string) string {
	return string(bytes.TrimRight(n.Props[prop], "\x00"))
}

func (n *fdtNode) u32(prop string) (uint32, bool) {
	v, ok := n.Props[prop]
	if !ok || len(v) != 4 {
		return 0, false
	}
	return binary.BigEndian.Uint32(v), true
}

// parseFDT parses a whole device tree blob. Property values share b.
func parseFDT(b []byte) (*fdtNode, error) {
	hd, err := parseFDTHeader(b, int64(len(b)))
	if err != nil {
		return nil, err
	}
	st := b[hd.OffStruct : hd.OffStruct+hd.SizeStruct]
	strs := b[hd.OffStrings : hd.OffStrings+hd.SizeStrings]
	var stack []*fdtNode
	var root *fdtNode
	off := 0
	u32 := func() (uint32, error) {
		if off+4 > len(st) {
			return 0, fmt.Errorf("%w: structure block ends early", errFDT)
		}
		v := binary.BigEndian.Uint32(st[off:])
		off += 4
		return v, nil
	}
	for {
		tok, err := u32()
		if err != nil {
			return nil, err
		}
		switch tok {
		case fdtBeginNode:
			end := bytes.IndexByte(st[off:], 0)
			if end < 0 {
				return nil, fmt.Errorf("%w: node name not terminated", errFDT)
			}
			n := &fdtNode{Name: string(st[off : off+end]), Props: map[string][]byte{}}
			off = (off + end + 1 + 3) &^ 3
			switch {
			case len(stack) >= fdtMaxDepth:
				return nil, fmt.Errorf("%w: nodes nested more than %d deep", errFDT, fdtMaxDepth)
			case len(stack) > 0:
				p := stack[len(stack)-1]
				p.Children = append(p.Children, n)
			case root != nil:
				return nil, fmt.Errorf("%w: two root nodes", errFDT)
			default:
				root = n
			}
			stack = append(stack, n)
		case fdtEndNode:
			if len(stack) == 0 {
				return nil, fmt.Errorf("%w: end of a node never begun", errFDT)
			}
			stack = stack[:len(stack)-1]
		case fdtProp:
			ln, err := u32()
			if err != nil {
				return nil, err
			}
			nameoff, err := u32()
			if err != nil {
				return nil, err
			}
			if len(stack) == 0 || uint64(off)+uint64(ln) > uint64(len(st)) || int(nameoff) >= len(strs) {
				return nil, fmt.Errorf("%w: property outside its node or block", errFDT)
			}
			nend := bytes.IndexByte(strs[nameoff:], 0)
			if nend < 0 {
				return nil, fmt.Errorf("%w: property name not terminated", errFDT)
			}
			stack[len(stack)-1].Props[string(strs[nameoff:int(nameoff)+nend])] = st[off : off+int(ln)]
			off = (off + int(ln) + 3) &^ 3
		case fdtNop:
		case fdtEnd:
			if len(stack) != 0 || root == nil {
				return nil, fmt.Errorf("%w: end inside a node", errFDT)
			}
			return root, nil
		default:
			return nil, fmt.Errorf("%w: token %#x", errFDT, tok)
		}
	}
}

// fitMaxBytes bounds the device tree read into memory; images with
// external data (mkimage -E) keep only the metadata in it.
const fitMaxBytes = 256 << 20

// fit unpacks a FIT image: each node under /images is written as a file
// named after the node (its data decompressed as its "compression"
// property says), and unpacked in its place when it is a container. Data
// may be inside the tree ("data") or after it ("data-offset" from the end
// of the tree, or "data-position" from the start, with "data-size").
func (u *unpacker) fit(sr *io.SectionReader, size int64, dest string, l Layer, depth int) error {
	h := make([]byte, 40)
	if _, err := sr.ReadAt(h, 0); err != nil {
		return fmt.Errorf("unpack fit: %w", err)
	}
	hd, err := parseFDTHeader(h, size)
	if err != nil {
		return fmt.Errorf("unpack fit: %w", err)
	}
	if hd.TotalSize > fitMaxBytes {
		return fmt.Errorf("unpack fit: device tree of %d bytes, more than %d", hd.TotalSize, fitMaxBytes)
	}
	if err := u.count(int64(hd.TotalSize)); err != nil {
		return err // held in memory: charged like written bytes
	}
	b := make([]byte, hd.TotalSize)
	if _, err := sr.ReadAt(b, 0); err != nil {
		return fmt.Errorf("unpack fit: %w", err)
	}
	root, err := parseFDT(b)
	if err != nil {
		return fmt.Errorf("unpack fit: %w", err)
	}
	images := root.child("images")
	if images == nil {
		return fmt.Errorf("unpack fit: %w: no /images node (a device tree blob, not a FIT image)", errFDT)
	}
	l.Name = root.str("description")
	u.record(l)
	ext := (int64(hd.TotalSize) + 3) &^ 3
	for _, img := range images.Children {
		var r io.Reader
		var off int64
		if d, ok := img.Props["data"]; ok {
			r = bytes.NewReader(d)
			off = -1
		} else {
			n, ok1 := img.u32("data-size")
			o, ok2 := img.u32("data-offset")
			pos, ok3 := img.u32("data-position")
			switch {
			case ok1 && ok2:
				off = ext + int64(o)
			case ok1 && ok3:
				off = int64(pos)
			default:
				return fmt.Errorf("unpack fit: image %q has no data", img.Name)
			}
			if off < 0 || off+int64(n) > size {
				return fmt.Errorf("unpack fit: image %q: %d bytes at %d, past the end of the file", img.Name, n, off)
			}
			r = io.NewSectionReader(sr, off, int64(n))
		}
		if err := u.payload(r, img.str("compression"), dest, safeName(img.Name, "image"), depth, l.Source, off); err != nil {
			return err
		}
	}
	return nil
}
