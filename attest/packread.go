package attest

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// Reading a pack: only regular files, never a blocking open, never an
// unpacked byte on disk.

// openRegular opens path for reading only if it is a regular file. The
// open itself does not block (O_NONBLOCK: a named pipe with no writer
// would hold an ordinary open forever), and the check is made on what was
// opened, not on a name that may have changed since.
func openRegular(p string) (*os.File, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is a %s, not a regular file", filepath.Base(p), fileKind(st.Mode()))
	}
	return f, nil
}

// fileKind names a file mode's type for messages.
func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "device"
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m.IsDir():
		return "directory"
	case m.IsRegular():
		return "regular file"
	}
	return "special file"
}

// ctxReader ends a read when ctx is done (SIGINT, SIGTERM).
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func readAllCapped(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("larger than %d bytes", max)
	}
	return b, nil
}

// dirPack is a pack in a directory.
type dirPack struct{ dir string }

func (d *dirPack) streamed() bool { return false }

func (d *dirPack) files(ctx context.Context, rep *PackReport) (map[string]bool, error) {
	present := map[string]bool{}
	count := 0
	err := filepath.WalkDir(d.dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(d.dir, p)
		rel = filepath.ToSlash(rel)
		switch t := e.Type(); {
		case t&fs.ModeSymlink != 0:
			rep.add(ProblemFileExtra, rel, -1, "symbolic link in pack")
			return nil
		case e.IsDir():
			return nil
		case !t.IsRegular():
			rep.add(ProblemFileType, rel, -1, "a %s, not a regular file: not read", fileKind(t))
			return nil
		}
		if count++; count > MaxPackFiles {
			return fmt.Errorf("more than %d files", MaxPackFiles)
		}
		present[rel] = true
		return nil
	})
	switch {
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrPackUnreadable, err)
	}
	return present, nil
}

func (d *dirPack) read(name string, max int64) ([]byte, error) {
	f, err := openRegular(filepath.Join(d.dir, filepath.FromSlash(name)))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAllCapped(f, max)
}

func (d *dirPack) digest(ctx context.Context, name string) (string, error) {
	f, err := openRegular(filepath.Join(d.dir, filepath.FromSlash(name)))
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, ctxReader{ctx, f}); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

func (d *dirPack) index(ctx context.Context, rep *PackReport, fn func(io.Reader)) error {
	f, err := openRegular(filepath.Join(d.dir, fileIndex))
	if err != nil {
		if !hasProblem(rep, ProblemFileType, fileIndex) {
			rep.add(ProblemFileMissing, fileIndex, -1, "%v", err)
		}
		return nil
	}
	defer f.Close()
	fn(ctxReader{ctx, f})
	return nil
}

// tarPack is a .tar.gz pack, read as a stream: a first pass keeps the
// small files in memory and the digest of every file; a second reads the
// index.
type tarPack struct {
	f        *os.File
	size     int64
	present  map[string]bool
	digests  map[string]string
	small    map[string][]byte
	smallErr map[string]error
	problems []Problem // the gzip stream's (archive-integrity)
}

// smallFiles are read whole in the first pass, within their limits.
var smallFiles = map[string]int64{fileManifest: maxManifestBytes, fileManifestSig: MaxStatementBytes, fileCheckpoint: maxCheckpointBytes, fileConsistency: maxManifestBytes}

func openTarPack(ctx context.Context, p string) (*tarPack, error) {
	f, err := openRegular(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPackUnreadable, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %v", ErrPackUnreadable, err)
	}
	t := &tarPack{f: f, size: st.Size(), present: map[string]bool{}, digests: map[string]string{}, small: map[string][]byte{}, smallErr: map[string]error{}}
	problems, err := t.stream(ctx, func(name string, r io.Reader) error {
		h := sha256.New()
		var buf *bytes.Buffer
		max, small := smallFiles[name]
		var w io.Writer = h
		if small {
			buf = &bytes.Buffer{}
			w = io.MultiWriter(h, &limitedBuffer{b: buf, max: max + 1})
		}
		if _, err := io.Copy(w, r); err != nil {
			return err
		}
		t.present[name] = true
		t.digests[name] = "sha256:" + hex.EncodeToString(h.Sum(nil))
		if small {
			if int64(buf.Len()) > max {
				t.smallErr[name] = fmt.Errorf("larger than %d bytes", max)
			} else {
				t.small[name] = buf.Bytes()
			}
		}
		return nil
	})
	if err != nil {
		f.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrPackUnreadable, p, err)
	}
	t.problems = problems
	return t, nil
}

// limitedBuffer keeps at most max bytes and swallows the rest.
type limitedBuffer struct {
	b   *bytes.Buffer
	max int64
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - int64(l.b.Len()); room > 0 {
		l.b.Write(p[:min(int64(len(p)), room)])
	}
	return len(p), nil
}

func (t *tarPack) streamed() bool { return true }

func (t *tarPack) files(context.Context, *PackReport) (map[string]bool, error) {
	return t.present, nil
}

func (t *tarPack) read(name string, max int64) ([]byte, error) {
	if err := t.smallErr[name]; err != nil {
		return nil, err
	}
	b, ok := t.small[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("larger than %d bytes", max)
	}
	return b, nil
}

func (t *tarPack) digest(_ context.Context, name string) (string, error) {
	d, ok := t.digests[name]
	if !ok {
		return "", fmt.Errorf("%s: %w", name, fs.ErrNotExist)
	}
	return d, nil
}

var errStop = errors.New("stop reading")

// index reads the stream again up to index.jsonl and hands it to fn; the
// content must hash as it did in the first pass.
func (t *tarPack) index(ctx context.Context, rep *PackReport, fn func(io.Reader)) error {
	if !t.present[fileIndex] {
		if !hasProblem(rep, ProblemFileMissing, fileIndex) {
			rep.add(ProblemFileMissing, fileIndex, -1, "index.jsonl is not in the pack")
		}
		return nil
	}
	_, err := t.stream(ctx, func(name string, r io.Reader) error {
		if name != fileIndex {
			return nil
		}
		h := sha256.New()
		tr := io.TeeReader(r, h)
		fn(tr)
		if _, err := io.Copy(h, r); err != nil { // what fn left unread
			return err
		}
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != t.digests[fileIndex] {
			return fmt.Errorf("%s changed while it was read (%s, first read %s)", fileIndex, got, t.digests[fileIndex])
		}
		return errStop
	})
	switch {
	case errors.Is(err, errStop):
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		return fmt.Errorf("%w: %v", ErrPackUnreadable, err)
	}
	return nil
}

// gzCounter reads the decompressed stream within its budget (ratio and
// size), ends it when ctx is done, and remembers the gzip layer's error.
type gzCounter struct {
	ctx    context.Context
	r      io.Reader
	n      int64
	budget int64
	gzErr  error
}

var errPackBudget = errors.New("pack expands beyond its limit")

func (c *gzCounter) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.budget {
		return n, fmt.Errorf("%w: more than %d bytes from %d compressed (at most %d times, %d bytes in all)", errPackBudget, c.budget, c.budget/MaxPackRatio, MaxPackRatio, int64(MaxPackBytes))
	}
	if err != nil && err != io.EOF && c.gzErr == nil {
		c.gzErr = err
	}
	return n, err
}

// stream reads the pack's tar stream once and calls fn with each regular
// file. Entries are checked as they come: no absolute or escaping name, no
// name twice, no link or special file, within MaxPackFiles and
// MaxPackFileBytes, and the whole within MaxPackRatio times the
// compressed size (and MaxPackBytes). When the tar stream ends, the gzip
// member is read to its end, which checks its trailer (CRC-32 and length),
// and nothing may follow it: what fails there is returned as problems, not
// as an error, since every entry was read. fn returning errStop ends the
// stream early.
func (t *tarPack) stream(ctx context.Context, fn func(name string, r io.Reader) error) ([]Problem, error) {
	if _, err := t.f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(t.f, 64<<10)
	gz, err := gzip.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("not a gzip file: %w", err)
	}
	gz.Multistream(false)
	budget := min(max(MaxPackRatio*t.size, minPackBudget), int64(MaxPackBytes))
	cr := &gzCounter{ctx: ctx, r: gz, budget: budget}
	tr := tar.NewReader(cr)
	seen := map[string]bool{}
	files := 0
	var problems []Problem
	archive := func(format string, args ...any) {
		problems = append(problems, Problem{Code: ProblemArchive, Message: fmt.Sprintf(format, args...)})
	}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if cr.gzErr != nil && errors.Is(err, cr.gzErr) {
				// Every entry so far was read whole; the stream ends badly
				// between entries or in its trailer.
				archive("the gzip stream does not end well after %d entries: %v", files, cr.gzErr)
				return problems, nil
			}
			return nil, fmt.Errorf("tar: %w", err)
		}
		name := path.Clean(h.Name)
		if path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return nil, fmt.Errorf("tar entry %q escapes the pack", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			continue
		case tar.TypeReg:
		default:
			return nil, fmt.Errorf("tar entry %q is a link or special file; packs hold regular files only", h.Name)
		}
		if seen[name] {
			return nil, fmt.Errorf("tar entry %q appears twice", h.Name)
		}
		seen[name] = true
		if files++; files > MaxPackFiles {
			return nil, fmt.Errorf("more than %d files", MaxPackFiles)
		}
		if h.Size > MaxPackFileBytes {
			return nil, fmt.Errorf("tar entry %q is larger than %d bytes", h.Name, int64(MaxPackFileBytes))
		}
		lr := &io.LimitedReader{R: tr, N: h.Size}
		if err := fn(name, lr); err != nil {
			return nil, err
		}
		if lr.N > 0 {
			if _, err := io.Copy(io.Discard, lr); err != nil {
				return nil, fmt.Errorf("tar entry %q: %w", h.Name, err)
			}
		}
	}
	// The tar stream is complete: read the gzip member to its end (the
	// trailer is checked there), then nothing may follow it.
	if _, err := io.Copy(io.Discard, cr); err != nil {
		if errors.Is(err, errPackBudget) || ctx.Err() != nil {
			return nil, err
		}
		archive("the gzip stream's trailer does not match its content: %v", err)
		return problems, nil
	}
	if _, err := br.Peek(1); err == nil {
		off, err := t.f.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, err
		}
		archive("%d bytes follow the gzip stream", t.size-(off-int64(br.Buffered())))
	}
	return problems, nil
}
