package firmware

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"debug/elf"
	"debug/pe"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/goccy/go-json"
)

// ManifestSchema identifies version 1 of the file manifest.
const ManifestSchema = "wardgate.dev/manifest/v1"

// File types.
const (
	TypeELF    = "elf"
	TypePE     = "pe"
	TypeScript = "script"
	TypeOther  = "other"
)

// File is one regular file of a firmware tree.
type File struct {
	Path   string `json:"path"` // slash-separated, relative to the tree's root
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	Type   string `json:"type"` // TypeELF, TypePE, TypeScript or TypeOther
	// BuildID is an ELF file's GNU build ID (hex), when it has one.
	BuildID string `json:"buildId,omitempty"`
	// PE describes a PE file.
	PE *PEInfo `json:"pe,omitempty"`
	// Package and Version name the package that owns the file, when the
	// SBOM says.
	Package string `json:"package,omitempty"`
	Version string `json:"version,omitempty"`
}

// PEInfo is what debug/pe reads of a PE file's headers.
type PEInfo struct {
	Machine       string `json:"machine"`
	TimeDateStamp uint32 `json:"timeDateStamp"`
	Subsystem     uint16 `json:"subsystem,omitempty"`
}

// Executable reports ELF and PE files.
func (f File) Executable() bool { return f.Type == TypeELF || f.Type == TypePE }

// Manifest lists the regular files of a tree, sorted by path.
type Manifest struct {
	Schema string `json:"schema"`
	Files  []File `json:"files"`
}

// Owner is the package owning a file.
type Owner struct{ Name, Version string }

// MaxManifestBytes bounds a manifest read with ReadManifest.
const MaxManifestBytes = 256 << 20

// BuildManifest lists every regular file under dir (links are not
// followed; they are not files of their own). owners maps a tree path to
// the package owning it.
func BuildManifest(dir string, owners map[string]Owner) (*Manifest, error) {
	m := &Manifest{Schema: ManifestSchema, Files: []File{}}
	buf := make([]byte, 256<<10)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		f, err := describe(p, buf)
		if err != nil {
			return fmt.Errorf("manifest %s: %w", rel, err)
		}
		f.Path = filepath.ToSlash(rel)
		if o, ok := owners[f.Path]; ok {
			f.Package, f.Version = o.Name, o.Version
		}
		m.Files = append(m.Files, f)
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(m.Files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	return m, nil
}

// describe hashes a file and tells its type.
func describe(p string, buf []byte) (File, error) {
	fh, err := os.Open(p)
	if err != nil {
		return File{}, err
	}
	defer fh.Close()
	head := make([]byte, 4)
	n, _ := io.ReadFull(fh, head)
	head = head[:n]
	if _, err := fh.Seek(0, io.SeekStart); err != nil {
		return File{}, err
	}
	h := sha256.New()
	size, err := io.CopyBuffer(h, fh, buf)
	if err != nil {
		return File{}, err
	}
	f := File{Size: size, SHA256: hex.EncodeToString(h.Sum(nil)), Type: TypeOther}
	switch {
	case bytes.HasPrefix(head, []byte("\x7fELF")):
		f.Type = TypeELF
		if ef, err := elf.NewFile(fh); err == nil {
			f.BuildID = buildID(ef)
			ef.Close()
		}
	case bytes.HasPrefix(head, []byte("MZ")):
		if pf, err := pe.NewFile(fh); err == nil {
			f.Type = TypePE
			f.PE = &PEInfo{Machine: fmt.Sprintf("%#x", pf.Machine), TimeDateStamp: pf.TimeDateStamp}
			switch oh := pf.OptionalHeader.(type) {
			case *pe.OptionalHeader32:
				f.PE.Subsystem = oh.Subsystem
			case *pe.OptionalHeader64:
				f.PE.Subsystem = oh.Subsystem
			}
			pf.Close()
		}
	case bytes.HasPrefix(head, []byte("#!")):
		f.Type = TypeScript
	}
	return f, nil
}

// buildID reads the GNU build ID note (NT_GNU_BUILD_ID, type 3).
func buildID(ef *elf.File) string {
	for _, s := range ef.Sections {
		if s.Type != elf.SHT_NOTE {
			continue
		}
		data, err := s.Data()
		if err != nil {
			continue
		}
		for len(data) >= 12 {
			namesz, descsz, typ := ef.ByteOrder.Uint32(data), ef.ByteOrder.Uint32(data[4:]), ef.ByteOrder.Uint32(data[8:])
			nameEnd := 12 + (uint64(namesz)+3)&^3
			descEnd := nameEnd + (uint64(descsz)+3)&^3
			if descEnd > uint64(len(data)) || nameEnd > uint64(len(data)) {
				break
			}
			if typ == 3 && namesz == 4 && string(data[12:15]) == "GNU" {
				return hex.EncodeToString(data[nameEnd : nameEnd+uint64(descsz)])
			}
			data = data[descEnd:]
		}
	}
	return ""
}

// ErrNotManifest is returned by ReadManifest for JSON that is not a
// manifest.
var ErrNotManifest = errors.New("not a wardgate file manifest")

// ReadManifest decodes a manifest written by Manifest's JSON encoding.
// goccy/go-json (in syft's graph) decodes it about three times faster than
// encoding/json, which is most of a release diff's time.
func ReadManifest(r io.Reader) (*Manifest, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxManifestBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxManifestBytes {
		return nil, fmt.Errorf("manifest larger than %s", HumanBytes(MaxManifestBytes))
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil || m.Schema != ManifestSchema {
		return nil, ErrNotManifest
	}
	if !slices.IsSortedFunc(m.Files, func(a, b File) int { return strings.Compare(a.Path, b.Path) }) {
		slices.SortFunc(m.Files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	}
	return &m, nil
}

// File diff codes.
const (
	FileAdded                    = "file-added"
	FileRemoved                  = "file-removed"
	FileChanged                  = "file-changed"
	ExecutableAdded              = "executable-added"
	ExecutableChangedSameVersion = "executable-changed-same-version"
)

// FileCodes lists the file diff codes in report order.
var FileCodes = []string{ExecutableChangedSameVersion, ExecutableAdded, FileChanged, FileAdded, FileRemoved}

// FileChange is one file-level difference between two releases.
type FileChange struct {
	Code string `json:"code"`
	Path string `json:"path"`
	// Package and Version are the owning package (for
	// executable-changed-same-version, the version both sides share).
	Package string `json:"package,omitempty"`
	Version string `json:"version,omitempty"`
	// From and To are the SHA-256 of the old and new file.
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
}

// DiffManifests compares two manifests file by file. An executable (ELF
// or PE) whose bytes changed while the package owning it kept its version
// is executable-changed-same-version: the 3CX and CCleaner pattern, a
// rebuilt or trojaned binary shipped as the same release of its package.
// Changes come sorted by code (FileCodes order), then path.
func DiffManifests(old, new *Manifest) []FileChange {
	out := []FileChange{}
	i, j := 0, 0
	for i < len(old.Files) || j < len(new.Files) {
		var c int
		switch {
		case i == len(old.Files):
			c = 1
		case j == len(new.Files):
			c = -1
		default:
			c = strings.Compare(old.Files[i].Path, new.Files[j].Path)
		}
		switch {
		case c < 0:
			o := old.Files[i]
			out = append(out, FileChange{Code: FileRemoved, Path: o.Path, Package: o.Package, Version: o.Version, From: o.SHA256})
			i++
		case c > 0:
			n := new.Files[j]
			code := FileAdded
			if n.Executable() {
				code = ExecutableAdded
			}
			out = append(out, FileChange{Code: code, Path: n.Path, Package: n.Package, Version: n.Version, To: n.SHA256})
			j++
		default:
			o, n := old.Files[i], new.Files[j]
			if o.SHA256 != n.SHA256 {
				fc := FileChange{Code: FileChanged, Path: n.Path, Package: n.Package, Version: n.Version, From: o.SHA256, To: n.SHA256}
				if n.Executable() && n.Package != "" && n.Package == o.Package && n.Version == o.Version {
					fc.Code = ExecutableChangedSameVersion
				}
				out = append(out, fc)
			}
			i++
			j++
		}
	}
	slices.SortStableFunc(out, func(a, b FileChange) int {
		return cmp.Or(cmp.Compare(slices.Index(FileCodes, a.Code), slices.Index(FileCodes, b.Code)), strings.Compare(a.Path, b.Path))
	})
	return out
}
