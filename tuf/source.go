package tuf

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/fetcher"
)

// remoteBase is the metadata URL go-tuf is given; the sources read the
// file name after it. Nothing is ever fetched from it.
const remoteBase = "wardgate-tuf://repository/metadata/"

// MaxFileBytes bounds one metadata file in a source (go-tuf asks for less:
// the lengths the trusted metadata states, or its own per-role maxima).
const MaxFileBytes = 8 << 20

// Source is a vendor repository's metadata as go-tuf fetches it: a local
// mirror or an uploaded archive, never the network. A file the source does
// not have is a 404 (metadata.ErrDownloadHTTP) to go-tuf, which is how it
// learns that no newer root exists.
type Source interface {
	fetcher.Fetcher
	// String names the source in messages.
	String() string
}

// fileName is the metadata file name in a URL go-tuf built from
// remoteBase: "timestamp.json", "3.snapshot.json", "2.root.json", or a
// delegated role's name (path-escaped by go-tuf) with ".json".
func fileName(urlPath string) (string, error) {
	rest, ok := strings.CutPrefix(urlPath, remoteBase)
	if !ok {
		return "", &sourceError{file: urlPath, msg: "not a metadata URL of this source"}
	}
	name, err := url.PathUnescape(rest)
	if err != nil || !validName(name) {
		return "", &sourceError{file: rest, msg: "not a metadata file name wardgate reads (a role name with a path separator, a leading dot, or a control character)"}
	}
	return name, nil
}

// validName accepts a flat file name ending in .json: no path separator,
// no leading dot, no control character, at most 255 bytes.
func validName(n string) bool {
	if len(n) > 255 || !strings.HasSuffix(n, ".json") || strings.HasPrefix(n, ".") || strings.ContainsAny(n, `/\`) || !utf8.ValidString(n) {
		return false
	}
	for _, r := range n {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

func notFound(name string) error {
	return &metadata.ErrDownloadHTTP{StatusCode: 404, URL: remoteBase + name}
}

func tooLarge(name string, max int64) error {
	return &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s is larger than the %d bytes the trusted metadata allows", name, max)}
}

// Dir is a local mirror of a vendor repository: DIR/metadata/ holds
// 1.root.json (and N.root.json for later roots), timestamp.json, and
// N.snapshot.json, N.targets.json (consistent snapshots) or snapshot.json,
// targets.json, plus delegated roles. Symbolic links and other non-regular
// files are refused.
func Dir(dir string) Source { return dirSource(dir) }

type dirSource string

func (d dirSource) String() string { return string(d) }

// DownloadFile implements go-tuf's Fetcher over the directory.
func (d dirSource) DownloadFile(urlPath string, maxLength int64, _ time.Duration) ([]byte, error) {
	name, err := fileName(urlPath)
	if err != nil {
		return nil, err
	}
	p := filepath.Join(string(d), "metadata", name)
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, notFound(name)
	case err != nil:
		return nil, &ioError{err: err}
	case !fi.Mode().IsRegular():
		return nil, &sourceError{file: name, msg: "not a regular file (symbolic links are refused)"}
	case fi.Size() > maxLength:
		return nil, tooLarge(name, maxLength)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, &ioError{err: err}
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxLength+1))
	if err != nil {
		return nil, &ioError{err: err}
	}
	if int64(len(b)) > maxLength {
		return nil, tooLarge(name, maxLength)
	}
	return b, nil
}

// Limits on an uploaded metadata archive.
const (
	MaxArchiveBytes = 16 << 20 // every file, uncompressed
	MaxArchiveFiles = 4096
)

// ErrArchive is wrapped by every error ReadArchive returns.
var ErrArchive = errors.New("tuf: metadata archive")

// ReadArchive reads a vendor repository's metadata from a tar archive
// (gzip-compressed or not), as an update server uploads it with a
// release: regular files named metadata/NAME.json or NAME.json, at most
// MaxArchiveFiles of them and MaxArchiveBytes in all. Anything else in the
// archive (directories aside) is an error naming the entry.
func ReadArchive(r io.Reader) (Source, error) {
	br := bufio.NewReader(r)
	var in io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %w", ErrArchive, err)
		}
		defer zr.Close()
		in = zr
	}
	tr := tar.NewReader(in)
	files := memSource{}
	var total int64
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrArchive, err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		if h.Typeflag == tar.TypeDir {
			if name != "" && strings.TrimSuffix(name, "/") != "metadata" {
				return nil, fmt.Errorf("%w: %s: only metadata/ may be a directory", ErrArchive, h.Name)
			}
			continue
		}
		if h.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("%w: %s: not a regular file", ErrArchive, h.Name)
		}
		name = strings.TrimPrefix(name, "metadata/")
		if !validName(name) {
			return nil, fmt.Errorf("%w: %s: want metadata/NAME.json with a flat NAME", ErrArchive, h.Name)
		}
		if _, dup := files[name]; dup {
			return nil, fmt.Errorf("%w: %s: more than one entry for %s", ErrArchive, h.Name, name)
		}
		if len(files) == MaxArchiveFiles {
			return nil, fmt.Errorf("%w: more than %d files", ErrArchive, MaxArchiveFiles)
		}
		b, err := io.ReadAll(io.LimitReader(tr, MaxArchiveBytes-total+1))
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrArchive, h.Name, err)
		}
		total += int64(len(b))
		if total > MaxArchiveBytes {
			return nil, fmt.Errorf("%w: more than %d bytes of metadata", ErrArchive, MaxArchiveBytes)
		}
		files[name] = b
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%w: no metadata files", ErrArchive)
	}
	return files, nil
}

// memSource is metadata held in memory, by file name.
type memSource map[string][]byte

func (m memSource) String() string { return "uploaded metadata archive" }

// DownloadFile implements go-tuf's Fetcher over the files.
func (m memSource) DownloadFile(urlPath string, maxLength int64, _ time.Duration) ([]byte, error) {
	name, err := fileName(urlPath)
	if err != nil {
		return nil, err
	}
	b, ok := m[name]
	if !ok {
		return nil, notFound(name)
	}
	if int64(len(b)) > maxLength {
		return nil, tooLarge(name, maxLength)
	}
	return bytes.Clone(b), nil
}

// lookupFetcher is what go-tuf fetches through during one lookup: the
// source, within a byte budget, and every file shape-checked first.
type lookupFetcher struct {
	src    Source
	budget int64
}

func (f *lookupFetcher) DownloadFile(urlPath string, maxLength int64, t time.Duration) ([]byte, error) {
	maxLength = min(maxLength, MaxFileBytes)
	b, err := f.src.DownloadFile(urlPath, maxLength, t)
	if err != nil {
		return nil, err
	}
	name := strings.TrimPrefix(urlPath, remoteBase)
	f.budget -= int64(len(b))
	if f.budget < 0 {
		return nil, &sourceError{file: name, msg: "the repository's metadata exceeds the byte budget of one lookup"}
	}
	if err := checkShape(b); err != nil {
		return nil, &sourceError{file: name, msg: err.Error()}
	}
	return b, nil
}

// checkShape refuses what is not TUF metadata of spec version 1 before
// go-tuf parses it: go-tuf v2.3.0 does not check the spec version, and
// panics on a document whose "signed" is not an object with a string
// "_type".
func checkShape(b []byte) error {
	if !utf8.Valid(b) {
		return errors.New("not UTF-8")
	}
	var doc struct {
		Signed     json.RawMessage `json:"signed"`
		Signatures json.RawMessage `json:"signatures"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("not TUF metadata: %v", err)
	}
	if s := bytes.TrimSpace(doc.Signed); len(s) == 0 || s[0] != '{' {
		return errors.New(`not TUF metadata: no "signed" object`)
	}
	if s := bytes.TrimSpace(doc.Signatures); len(s) == 0 || s[0] != '[' {
		return errors.New(`not TUF metadata: no "signatures" list`)
	}
	var signed struct {
		Type        *string `json:"_type"`
		SpecVersion *string `json:"spec_version"`
	}
	if err := json.Unmarshal(doc.Signed, &signed); err != nil {
		return fmt.Errorf("not TUF metadata: %v", err)
	}
	if signed.Type == nil || *signed.Type == "" {
		return errors.New(`not TUF metadata: no "_type"`)
	}
	if signed.SpecVersion == nil {
		return errors.New(`not TUF metadata: no "spec_version"`)
	}
	if major, _, _ := strings.Cut(*signed.SpecVersion, "."); major != "1" {
		return fmt.Errorf("TUF specification version %q; wardgate reads version 1", *signed.SpecVersion)
	}
	return nil
}
