package vuln

import (
	"archive/zip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/osv-scalibr/inventory/osvecosystem"
	"github.com/google/osv-scalibr/semantic"
	osvpb "github.com/ossf/osv-schema/bindings/go/osvschema"
)

// readSource calls fn for every JSON record in src: a zip (by its magic
// bytes), a directory (walked, symbolic links refused) or one JSON file.
// Files in a zip or directory that do not end in .json are skipped.
func readSource(ctx context.Context, src string, fn func(name string, data []byte) error) error {
	st, err := os.Lstat(src)
	if err != nil {
		return fmt.Errorf("vuln: %w", err)
	}
	switch {
	case st.IsDir():
		return readDir(ctx, src, fn)
	case !st.Mode().IsRegular():
		return fmt.Errorf("%w: %s: not a regular file or directory", ErrInvalid, src)
	}
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("vuln: %w", err)
	}
	defer f.Close()
	magic := make([]byte, 4)
	if _, err := io.ReadFull(f, magic); err == nil && string(magic) == "PK\x03\x04" {
		return readZip(ctx, src, f, st.Size(), fn)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("vuln: %w", err)
	}
	data, err := readLimited(f, src)
	if err != nil {
		return err
	}
	return fn(filepath.Base(src), data)
}

func readLimited(r io.Reader, name string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxRecordBytes+1))
	if err != nil {
		return nil, fmt.Errorf("vuln: %s: %w", name, err)
	}
	if len(data) > MaxRecordBytes {
		return nil, fmt.Errorf("%w: %s: larger than %d bytes, the limit for one record", ErrInvalid, name, MaxRecordBytes)
	}
	return data, nil
}

func readZip(ctx context.Context, src string, r io.ReaderAt, size int64, fn func(string, []byte) error) error {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalid, src, err)
	}
	if len(zr.File) > MaxRecords {
		return fmt.Errorf("%w: %s: %d files, more than the %d records a database may hold", ErrInvalid, src, len(zr.File), MaxRecords)
	}
	for _, zf := range zr.File {
		if err := ctx.Err(); err != nil {
			return err
		}
		if zf.FileInfo().IsDir() || !strings.HasSuffix(zf.Name, ".json") {
			continue
		}
		if zf.UncompressedSize64 > MaxRecordBytes {
			return fmt.Errorf("%w: %s: %s: %d bytes, larger than the %d a record may have", ErrInvalid, src, zf.Name, zf.UncompressedSize64, MaxRecordBytes)
		}
		rc, err := zf.Open()
		if err != nil {
			return fmt.Errorf("%w: %s: %s: %w", ErrInvalid, src, zf.Name, err)
		}
		data, err := readLimited(rc, src+": "+zf.Name)
		rc.Close()
		if err != nil {
			return err
		}
		if err := fn(zf.Name, data); err != nil {
			return err
		}
	}
	return nil
}

func readDir(ctx context.Context, src string, fn func(string, []byte) error) error {
	root, err := os.OpenRoot(src)
	if err != nil {
		return fmt.Errorf("vuln: %w", err)
	}
	defer root.Close()
	return fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("vuln: %s: %w", src, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%w: %s: %s is a symbolic link; import the files it points at", ErrInvalid, src, p)
		}
		if d.IsDir() || !strings.HasSuffix(p, ".json") {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%w: %s: %s is not a regular file", ErrInvalid, src, p)
		}
		f, err := root.Open(p)
		if err != nil {
			return fmt.Errorf("vuln: %w", err)
		}
		data, err := readLimited(f, filepath.Join(src, p))
		f.Close()
		if err != nil {
			return err
		}
		return fn(p, data)
	})
}

// checkAffected checks one affected entry: a package needs an ecosystem
// and a name, and the versions of ECOSYSTEM and SEMVER ranges must parse
// in the ecosystem's version ordering when wardgate knows it (the matcher
// would otherwise stop on them).
func checkAffected(a *osvpb.Affected) error {
	p := a.GetPackage()
	if p == nil {
		return nil // a GIT-only entry: never matched against an SBOM component
	}
	if p.GetEcosystem() == "" || p.GetName() == "" {
		return errors.New("package without ecosystem or name")
	}
	eco, err := osvecosystem.Parse(p.GetEcosystem())
	if err != nil {
		return nil // an ecosystem the matcher does not know: it skips the entry
	}
	for i, r := range a.GetRanges() {
		if r.GetType() != osvpb.Range_ECOSYSTEM && r.GetType() != osvpb.Range_SEMVER {
			continue
		}
		for j, e := range r.GetEvents() {
			for _, v := range []string{e.GetIntroduced(), e.GetFixed(), e.GetLastAffected(), e.GetLimit()} {
				if v == "" {
					continue
				}
				if _, err := semantic.Parse(v, string(eco.Ecosystem)); err != nil && !errors.Is(err, semantic.ErrUnsupportedEcosystem) {
					return fmt.Errorf("ranges[%d].events[%d]: version %q is not a %s version: %w", i, j, v, eco.Ecosystem, err)
				}
			}
		}
	}
	return nil
}

// fixedVersions are the fixed events of a record's entries for one package
// in one ecosystem, in record order and without repeats.
func fixedVersions(v *osvpb.Vulnerability, ecosystem, name string) []string {
	var out []string
	for _, a := range v.GetAffected() {
		if a.GetPackage().GetEcosystem() != ecosystem || a.GetPackage().GetName() != name {
			continue
		}
		for _, r := range a.GetRanges() {
			for _, e := range r.GetEvents() {
				if f := e.GetFixed(); f != "" && !slices.Contains(out, f) {
					out = append(out, f)
				}
			}
		}
	}
	return out
}
