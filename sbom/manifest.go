package sbom

import (
	"context"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/anchore/syft/syft/artifact"
	"github.com/anchore/syft/syft/file"
	"github.com/anchore/syft/syft/pkg"
	syftsbom "github.com/anchore/syft/syft/sbom"

	"github.com/wardgate/wardgate/firmware"
)

// FileManifest lists the files of a firmware image (unpacked as Generate
// does) or a directory, with the package owning each file as syft's SBOM
// of the same tree says (by the package databases' file lists). It
// returns the generated SBOM too. The cache is not used: the tree must be
// unpacked to be listed. A file in no firmware format is listed as itself.
func FileManifest(ctx context.Context, source string, opts ...GenerateOption) (*firmware.Manifest, *Generated, error) {
	var m *firmware.Manifest
	hook := func(c *generateConfig) error {
		c.onTree = func(dir, scanRoot string, s *syftsbom.SBOM) error {
			var err error
			m, err = firmware.BuildManifest(dir, owners(s, scanRoot))
			return err
		}
		c.cacheDir, c.noCache = "", true
		return nil
	}
	g, err := Generate(ctx, source, append(opts, hook)...)
	if err != nil {
		return nil, nil, err
	}
	if m == nil {
		// A single file: its manifest is that file.
		_, target, perr := parseSource(source)
		if perr != nil {
			return nil, nil, perr
		}
		if st, serr := os.Stat(target); serr == nil && st.Mode().IsRegular() {
			dir, derr := os.MkdirTemp("", "wardgate-manifest-")
			if derr != nil {
				return nil, nil, derr
			}
			defer os.RemoveAll(dir)
			if lerr := os.Link(target, filepath.Join(dir, filepath.Base(target))); lerr != nil {
				return nil, nil, lerr
			}
			if m, err = firmware.BuildManifest(dir, nil); err != nil {
				return nil, nil, err
			}
		} else {
			return nil, nil, ErrBadSource
		}
	}
	return m, g, nil
}

// owners maps each file a package owns (syft's contains relationships) to
// the package, by tree path.
func owners(s *syftsbom.SBOM, scanRoot string) map[string]firmware.Owner {
	out := map[string]firmware.Owner{}
	for _, r := range s.Relationships {
		if r.Type != artifact.ContainsRelationship {
			continue
		}
		p, ok := r.From.(pkg.Package)
		if !ok {
			continue
		}
		c, ok := r.To.(file.Coordinates)
		if !ok {
			continue
		}
		tp := strings.TrimPrefix(path.Join("/", scanRoot, c.RealPath), "/")
		out[tp] = firmware.Owner{Name: p.Name, Version: p.Version}
	}
	return out
}

// File diff codes, as Changes reports them (see firmware.DiffManifests).
const (
	FileAdded                    Code = firmware.FileAdded
	FileRemoved                  Code = firmware.FileRemoved
	FileChanged                  Code = firmware.FileChanged
	ExecutableAdded              Code = firmware.ExecutableAdded
	ExecutableChangedSameVersion Code = firmware.ExecutableChangedSameVersion
)

// FileCodes lists the file diff codes in report order.
var FileCodes = []Code{ExecutableChangedSameVersion, ExecutableAdded, FileChanged, FileAdded, FileRemoved}

// DiffFiles is the file-level diff of two manifests as Changes: Name is
// the file's path, PURL empty, Version the owning package's version, From
// and To the files' SHA-256. With components (a component diff of the same
// releases, or nil) the result holds both.
func DiffFiles(old, new *firmware.Manifest, components *Changes) *Changes {
	var list []Change
	codes := FileCodes
	if components != nil {
		list = append(list, components.Changes...)
		codes = append(slices.Clone(DiffCodes), FileCodes...)
	}
	for _, fc := range firmware.DiffManifests(old, new) {
		name := fc.Path
		if fc.Package != "" {
			name += " (" + fc.Package + ")"
		}
		list = append(list, Change{Code: Code(fc.Code), Name: name, From: fc.From, To: fc.To, Version: fc.Version, Identity: fc.Path})
	}
	return newChanges(codes, list)
}
