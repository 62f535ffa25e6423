package firmware

import (
	"bufio"
	"context"
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

// Layer is one place in the unpacked tree where a format was unpacked.
type Layer struct {
	// Path is where the layer's content is in the tree, slash-separated:
	// "." for the root, else the directory that replaced the member file
	// (or, for a compressed stream holding no container, the file written).
	Path string `json:"path"`
	// Formats are the formats unpacked to get there, outermost first
	// (gzip then tar for a tar.gz).
	Formats []Format `json:"formats"`
	// Source is the file the layer was found in: the input's name for the
	// top layer, else the member's path in the tree.
	Source string `json:"source"`
	// Offset is where in Source the layer starts: 0 unless it was carved
	// from behind a header, or is one image of a U-Boot or FIT image.
	Offset int64 `json:"offset"`
	// Name is the image's name from a U-Boot or FIT header, if any.
	Name string `json:"name,omitempty"`
}

// Result says what Unpack wrote.
type Result struct {
	// Layers are the layers found, in the order they were unpacked.
	Layers []Layer `json:"layers"`
	// Files counts the entries written (files, directories, links).
	Files int `json:"files"`
	// Bytes counts the bytes written, intermediate files included.
	Bytes int64 `json:"bytes"`
}

// LayerOf returns the innermost layer holding tree path p (slash-separated,
// relative to the root, with or without a leading slash) and p relative to
// that layer's path. ok is false when no layer holds p.
func (r *Result) LayerOf(p string) (l Layer, rel string, ok bool) {
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	best := -1
	for i, c := range r.Layers {
		switch {
		case c.Path == ".":
		case p == c.Path || strings.HasPrefix(p, c.Path+"/"):
		default:
			continue
		}
		if best < 0 || len(c.Path) >= len(r.Layers[best].Path) {
			best = i
		}
	}
	if best < 0 {
		return Layer{}, "", false
	}
	l = r.Layers[best]
	rel = p
	if l.Path != "." {
		rel = strings.TrimPrefix(strings.TrimPrefix(p, l.Path), "/")
	}
	return l, "/" + rel, true
}

// Detect reports the format of the file at p, at its start; ok is false
// when it is in none of the formats Unpack knows there (it may still hold
// one behind a header: Unpack carves for it).
func Detect(p string) (Format, bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", false, err
	}
	if !st.Mode().IsRegular() {
		return "", false, nil
	}
	format, ok := Sniff(readHead(f, 0, st.Size()), st.Size())
	return format, ok, nil
}

// Unpack unpacks the firmware file src into the empty directory dir,
// within lim (zero fields take the defaults). It returns ErrNotFirmware
// when src holds no format it knows, and an error wrapping ErrUnsafe when
// an entry or link would lead out of dir or a limit is crossed; then dir
// holds a partial tree the caller removes.
func Unpack(ctx context.Context, src, dir string, lim Limits) (*Result, error) {
	if err := lim.Validate(); err != nil {
		return nil, err
	}
	f, err := os.Open(src)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("unpack %s: not a regular file", src)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	u := &unpacker{ctx: ctx, root: root, lim: lim.withDefaults(), in: st.Size(), buf: make([]byte, 256<<10)}
	defer u.forgetDirs()
	name := filepath.Base(src)
	if format, ok := Sniff(readHead(f, 0, st.Size()), st.Size()); ok {
		err = u.expand(f, 0, st.Size(), format, ".", Layer{Path: ".", Source: name}, 0, name)
	} else {
		err = u.carve(f, st.Size(), ".", name, 0)
	}
	if err == nil {
		err = u.checkLinks()
	}
	if err != nil {
		return nil, err
	}
	return &Result{Layers: u.layers, Files: u.files, Bytes: u.bytes}, nil
}

// unpacker writes one firmware image's tree under an os.Root, so nothing
// it writes can land outside, even through a link an earlier entry made.
type unpacker struct {
	ctx    context.Context
	root   *os.Root
	lim    Limits
	in     int64 // the input's size, for the ratio limit
	bytes  int64
	files  int
	tmp    int
	layers []Layer
	links  []string // every symlink written, checked at the end
	buf    []byte
	head   []byte              // a large file's first bytes (file)
	dirs   map[string]*os.Root // directories files are written into (dirRoot)
}

func (u *unpacker) record(l Layer) {
	l.Formats = slices.Clone(l.Formats)
	u.layers = append(u.layers, l)
}

// expand unpacks the payload of format f at ra[off:off+size] into dest.
func (u *unpacker) expand(ra io.ReaderAt, off, size int64, f Format, dest string, l Layer, depth int, name string) error {
	if err := u.ctx.Err(); err != nil {
		return err
	}
	depth++
	if depth > u.lim.MaxDepth {
		return &LimitError{Limit: LimitDepth, Max: int64(u.lim.MaxDepth)}
	}
	l.Formats = append(l.Formats, f)
	sr := io.NewSectionReader(ra, off, size)
	switch f {
	case Gzip, XZ, Bzip2, Zstd, LZ4:
		return u.stream(sr, f, dest, l, depth, name)
	case Tar:
		u.record(l)
		_, err := u.tar(sr, dest, depth)
		return err
	case CPIONewc, CPIOOdc:
		u.record(l)
		_, err := u.cpio(sr, f, dest, depth)
		return err
	case Zip:
		u.record(l)
		return u.zip(sr, size, dest, depth)
	case Squashfs, Ext, FAT, ISO9660:
		u.record(l)
		return u.filesystem(sr, size, f, dest, depth)
	case UImage:
		return u.uimage(sr, size, dest, l, depth)
	case FIT:
		return u.fit(sr, size, dest, l, depth)
	}
	return fmt.Errorf("unpack %s: format %s not handled", name, f)
}

// fromReader unpacks a payload read sequentially: tar, cpio and streams are
// read as they come, anything else is first written to a temporary file in
// the tree (counted like any other bytes) and read from there.
func (u *unpacker) fromReader(r io.Reader, f Format, dest string, l Layer, depth int, name string) error {
	switch f {
	case Gzip, XZ, Bzip2, Zstd, LZ4, Tar, CPIONewc, CPIOOdc:
		depth++
		if depth > u.lim.MaxDepth {
			return &LimitError{Limit: LimitDepth, Max: int64(u.lim.MaxDepth)}
		}
		l.Formats = append(l.Formats, f)
		switch f {
		case Tar:
			u.record(l)
			_, err := u.tar(r, dest, depth)
			return err
		case CPIONewc, CPIOOdc:
			u.record(l)
			_, err := u.cpio(r, f, dest, depth)
			return err
		}
		return u.stream(r, f, dest, l, depth, name)
	}
	tmp, n, err := u.spill(r)
	if err != nil {
		return err
	}
	defer u.root.Remove(tmp)
	tf, err := u.root.Open(tmp)
	if err != nil {
		return err
	}
	defer tf.Close()
	return u.expand(tf, 0, n, f, dest, l, depth, name)
}

// spill writes r to a new temporary file at the tree's root.
func (u *unpacker) spill(r io.Reader) (string, int64, error) {
	u.tmp++
	name := fmt.Sprintf(".wardgate-unpack-%d", u.tmp)
	f, err := u.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", 0, err
	}
	n, err := u.copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		u.root.Remove(name)
		return "", 0, err
	}
	return name, n, nil
}

// stream decompresses r and unpacks what it holds: another container, or
// a plain payload written as one file.
func (u *unpacker) stream(r io.Reader, f Format, dest string, l Layer, depth int, name string) error {
	zr, err := decompress(f, r)
	if err != nil {
		return fmt.Errorf("unpack %s: %w", name, err)
	}
	defer zr.Close()
	br := bufio.NewReaderSize(zr, sniffLen)
	head, err := br.Peek(sniffLen)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("unpack %s: %s: %w", name, f, err)
	}
	inner := stripExt(name)
	if g, ok := Sniff(head, -1); ok {
		if err := u.fromReader(br, g, dest, l, depth, inner); err != nil {
			return err
		}
		// Read the rest of the stream, so its checksum is checked; it is
		// counted like written bytes, so trailing data is no way around
		// the limits.
		if _, err := u.copy(io.Discard, br); err != nil {
			return fmt.Errorf("unpack %s: %s: %w", name, f, err)
		}
		return nil
	}
	out := inner
	if dest != "." {
		out = path.Join(dest, inner)
	}
	l.Path = out
	u.record(l)
	if _, err := u.file(out, br, 0o644); err != nil {
		return fmt.Errorf("unpack %s: %s: %w", name, f, err)
	}
	return nil
}

// stripExt drops a compression extension: the name of the payload.
func stripExt(name string) string {
	for _, e := range [][2]string{{".tgz", ".tar"}, {".txz", ".tar"}, {".tbz2", ".tar"}, {".tzst", ".tar"},
		{".gz", ""}, {".xz", ""}, {".bz2", ""}, {".zst", ""}, {".lz4", ""}, {".lzma", ""}} {
		if s, ok := strings.CutSuffix(name, e[0]); ok && s != "" {
			return s + e[1]
		}
	}
	return name + ".payload"
}

// count charges n written bytes against the byte and ratio limits.
func (u *unpacker) count(n int64) error {
	u.bytes += n
	if u.bytes > u.lim.MaxBytes {
		return &LimitError{Limit: LimitBytes, Max: u.lim.MaxBytes}
	}
	if u.bytes > RatioFloor && u.bytes/int64(u.lim.MaxRatio) > u.in {
		return &LimitError{Limit: LimitRatio, Max: int64(u.lim.MaxRatio), Input: u.in}
	}
	return nil
}

// fits reports the limit n more bytes would cross, without charging them.
func (u *unpacker) fits(n int64) error {
	total := u.bytes + n
	if n < 0 || total > u.lim.MaxBytes || total < u.bytes {
		return &LimitError{Limit: LimitBytes, Max: u.lim.MaxBytes}
	}
	if total > RatioFloor && total/int64(u.lim.MaxRatio) > u.in {
		return &LimitError{Limit: LimitRatio, Max: int64(u.lim.MaxRatio), Input: u.in}
	}
	return nil
}

// entry charges one entry against the file limit.
func (u *unpacker) entry() error {
	u.files++
	if u.files > u.lim.MaxFiles {
		return &LimitError{Limit: LimitFiles, Max: int64(u.lim.MaxFiles)}
	}
	return nil
}

// copy copies r to w, charging every byte as it is written: what an entry
// header claims is never trusted.
func (u *unpacker) copy(w io.Writer, r io.Reader) (int64, error) {
	var total int64
	for {
		if err := u.ctx.Err(); err != nil {
			return total, err
		}
		n, rerr := r.Read(u.buf)
		if n > 0 {
			if err := u.count(int64(n)); err != nil {
				return total, err
			}
			if _, err := w.Write(u.buf[:n]); err != nil {
				return total, err
			}
			total += int64(n)
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// entryName checks an entry name and returns it relative to the root,
// under dest. Any absolute name or ".." element is refused, even one that
// would resolve inside: real firmware archives never need them. "" means
// the entry is the root itself.
func entryName(dest, name string) (string, error) {
	n := strings.ReplaceAll(name, `\`, "/")
	if strings.HasPrefix(n, "/") || (len(n) > 1 && n[1] == ':') || slices.Contains(strings.Split(n, "/"), "..") {
		return "", unsafeError("entry %q escapes the archive", name)
	}
	if strings.ContainsRune(n, 0) {
		return "", unsafeError("entry %q has a NUL in its name", name)
	}
	n = path.Clean(n)
	if n == "." {
		return "", nil
	}
	if dest != "." {
		n = path.Join(dest, n)
	}
	return n, nil
}

func (u *unpacker) mkdirAll(p string) error {
	if p == "." || p == "" {
		return nil
	}
	if err := u.root.MkdirAll(filepath.FromSlash(p), 0o755); err != nil {
		return fmt.Errorf("unpack %s: %w", p, err)
	}
	return nil
}

func (u *unpacker) dir(p string) error {
	if err := u.entry(); err != nil {
		return err
	}
	return u.mkdirAll(p)
}

// file writes one regular file and returns its first bytes (up to
// sniffLen), for the caller to tell whether it is a container to unpack in
// its place. The bytes returned are valid until the next file is written.
//
// The file is created in its directory's cached root with one openat, and
// a file that fits in the copy buffer is written with one write.
func (u *unpacker) file(p string, r io.Reader, mode fs.FileMode) ([]byte, error) {
	if err := u.entry(); err != nil {
		return nil, err
	}
	dr, err := u.dirRoot(path.Dir(p))
	if err != nil {
		return nil, err
	}
	f, err := dr.OpenFile(path.Base(p), os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode.Perm()|0o600)
	if err != nil {
		return nil, fmt.Errorf("unpack %s: %w", p, err)
	}
	var head []byte
	n, err := io.ReadFull(r, u.buf)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = nil
	}
	if err == nil {
		if err = u.count(int64(n)); err == nil {
			if _, err = f.Write(u.buf[:n]); err == nil {
				head = u.buf[:min(n, sniffLen)]
				if n == len(u.buf) {
					// More to come through u.buf: keep the head apart.
					u.head = append(u.head[:0], head...)
					head = u.head
					_, err = u.copy(f, r)
				}
			}
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		var le *LimitError
		if errors.As(err, &le) || errors.Is(err, ErrUnsafe) {
			return nil, err
		}
		return nil, fmt.Errorf("unpack %s: %w", p, err)
	}
	return head, nil
}

// maxDirRoots bounds the directories kept open for writing files into.
const maxDirRoots = 64

// dirRoot returns an os.Root of the tree directory p (made if missing),
// opened through u.root and kept for the next files of p: creating a file
// is then one openat of a plain name, not a walk from the top. Whatever
// renames or removes directories forgets the cache (forgetDirs), so a
// cached root is always the directory at its path.
func (u *unpacker) dirRoot(p string) (*os.Root, error) {
	if p == "." || p == "" {
		return u.root, nil
	}
	if r := u.dirs[p]; r != nil {
		return r, nil
	}
	if err := u.mkdirAll(p); err != nil {
		return nil, err
	}
	r, err := u.root.OpenRoot(filepath.FromSlash(p))
	if err != nil {
		return nil, fmt.Errorf("unpack %s: %w", p, err)
	}
	if len(u.dirs) >= maxDirRoots {
		u.forgetDirs()
	}
	if u.dirs == nil {
		u.dirs = map[string]*os.Root{}
	}
	u.dirs[p] = r
	return r, nil
}

// forgetDirs closes the cached directory roots.
func (u *unpacker) forgetDirs() {
	for k, r := range u.dirs {
		r.Close()
		delete(u.dirs, k)
	}
}

// symlink writes a link at p. An absolute target is read the way the
// firmware's own system reads it, from the root of the layer (layerRoot):
// it is rewritten relative to the link. Whether the link stays inside is
// checked once the whole tree is written (checkLinks), since a later link
// can change where an earlier one leads.
func (u *unpacker) symlink(p, target, layerRoot string) error {
	if err := u.entry(); err != nil {
		return err
	}
	if target == "" || strings.ContainsRune(target, 0) {
		return unsafeError("link %q has an empty or NUL target", p)
	}
	if strings.HasPrefix(target, "/") {
		if layerRoot == "." {
			layerRoot = ""
		}
		rel, err := filepath.Rel(path.Dir("/"+p), path.Join("/"+layerRoot, target))
		if err != nil {
			return unsafeError("link %q to %q: %v", p, target, err)
		}
		target = filepath.ToSlash(rel)
	}
	if err := u.mkdirAll(path.Dir(p)); err != nil {
		return err
	}
	if err := u.root.Symlink(target, filepath.FromSlash(p)); err != nil {
		return fmt.Errorf("unpack %s: %w", p, err)
	}
	u.links = append(u.links, p)
	return nil
}

// hardlink links p to the earlier entry target (both tree paths).
func (u *unpacker) hardlink(p, target string) error {
	if err := u.entry(); err != nil {
		return err
	}
	if err := u.mkdirAll(path.Dir(p)); err != nil {
		return err
	}
	if err := u.root.Link(filepath.FromSlash(target), filepath.FromSlash(p)); err != nil {
		return fmt.Errorf("unpack %s: %w", p, err)
	}
	return nil
}

// maxLinkHops bounds how many links one path may pass through (Linux
// allows 40).
const maxLinkHops = 40

// checkLinks resolves every link written, following links component by
// component as the kernel would, and refuses any that leads out of the
// tree: names alone do not tell (x -> . makes x/x/w the same as w).
func (u *unpacker) checkLinks() error {
	for _, l := range u.links {
		if err := u.resolve(l); err != nil {
			return err
		}
	}
	return nil
}

func (u *unpacker) resolve(link string) error {
	var stack []string
	queue := strings.Split(link, "/")
	hops := 0
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) == 0 {
				return unsafeError("link %q points out of the archive", link)
			}
			stack = stack[:len(stack)-1]
			continue
		}
		cand := path.Join(append(slices.Clone(stack), c)...)
		fi, err := u.root.Lstat(filepath.FromSlash(cand))
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			// A missing component is taken as named (fail closed: a later
			// ".." then counts from it).
			stack = append(stack, c)
			continue
		}
		if hops++; hops > maxLinkHops {
			return unsafeError("link %q passes through more than %d links", link, maxLinkHops)
		}
		t, err := u.root.Readlink(filepath.FromSlash(cand))
		if err != nil {
			return fmt.Errorf("unpack: read link %s: %w", cand, err)
		}
		if strings.HasPrefix(t, "/") {
			return unsafeError("link %q points to absolute path %q", cand, t)
		}
		queue = append(strings.Split(t, "/"), queue...)
	}
	return nil
}

// nested unpacks, in its place, each member just written that is itself a
// firmware container (a root filesystem image inside a tar, a cpio.gz
// initramfs inside a U-Boot image): the file becomes a directory of the
// same name. Zip members are left as they are: inside a firmware tree they
// are Java archives, Python wheels or Android packages, which syft reads as
// files. A compressed member that holds no container is left as it is too.
func (u *unpacker) nested(p string, head []byte, size int64, depth int) error {
	f, ok := Sniff(head, size)
	if !ok || f == Zip {
		return nil
	}
	if f.isStream() && !u.streamHoldsContainer(p, f) {
		return nil
	}
	u.tmp++
	tmp := fmt.Sprintf(".wardgate-unpack-%d", u.tmp)
	u.forgetDirs()
	if err := u.root.Rename(filepath.FromSlash(p), tmp); err != nil {
		return fmt.Errorf("unpack %s: %w", p, err)
	}
	defer u.root.Remove(tmp)
	if err := u.root.Mkdir(filepath.FromSlash(p), 0o755); err != nil {
		return fmt.Errorf("unpack %s: %w", p, err)
	}
	tf, err := u.root.Open(tmp)
	if err != nil {
		return err
	}
	defer tf.Close()
	st, err := tf.Stat()
	if err != nil {
		return err
	}
	return u.expand(tf, 0, st.Size(), f, p, Layer{Path: p, Source: p}, depth, path.Base(p))
}

// streamHoldsContainer peeks into a compressed member.
func (u *unpacker) streamHoldsContainer(p string, f Format) bool {
	mf, err := u.root.Open(filepath.FromSlash(p))
	if err != nil {
		return false
	}
	defer mf.Close()
	zr, err := decompress(f, bufio.NewReader(mf))
	if err != nil {
		return false
	}
	defer zr.Close()
	head := make([]byte, sniffLen)
	n, _ := io.ReadFull(zr, head)
	_, ok := Sniff(head[:n], -1)
	return ok
}

// RootFS returns the layer of the tree unpacked into dir that is the
// firmware's root filesystem, as a tree path: the one layer holding an
// os-release file (etc/os-release or usr/lib/os-release), which names the
// distribution its packages come from. It returns "." when the tree's root
// is that layer, when no layer holds one, or when several do.
func (r *Result) RootFS(dir string) string {
	var found []string
	for _, l := range r.Layers {
		for _, rel := range []string{"etc/os-release", "usr/lib/os-release"} {
			if fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(l.Path), rel)); err == nil && !fi.IsDir() {
				if !slices.Contains(found, l.Path) {
					found = append(found, l.Path)
				}
				break
			}
		}
	}
	if len(found) != 1 {
		return "."
	}
	return found[0]
}
