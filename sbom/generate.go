package sbom

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/anchore/syft/syft"
	"github.com/anchore/syft/syft/cataloging"
	"github.com/anchore/syft/syft/cataloging/pkgcataloging"
	"github.com/anchore/syft/syft/format/syftjson"
	syftsbom "github.com/anchore/syft/syft/sbom"
	"github.com/anchore/syft/syft/source"
	"github.com/anchore/syft/syft/source/filesource"

	// syft's RPM cataloger reads rpmdb.sqlite through database/sql and
	// needs a driver registered; modernc's is pure Go.
	_ "modernc.org/sqlite"

	"github.com/wardgate/wardgate/firmware"
	"github.com/wardgate/wardgate/internal/buildinfo"
)

// ErrBadSource is wrapped by errors about a source Generate cannot scan.
var ErrBadSource = errors.New("sbom: bad source")

// Source schemes accepted by Generate. A source without a scheme is a
// directory, a firmware archive (by its magic bytes) or a file.
var sourceSchemes = []string{"dir", "file", "oci-dir", "oci-archive", "docker-archive", "registry", "archive", "firmware"}

// GenerateOption changes how Generate scans and encodes.
type GenerateOption func(*generateConfig) error

type generateConfig struct {
	outputs  []OutputFormat
	tool     string
	version  string
	cacheDir string
	noCache  bool
	limits   firmware.Limits
	tempDir  string
	logger   *slog.Logger
	progress *Progress
	// onTree, when set, is called with the scanned tree (the unpacked
	// firmware, or the directory), the path in it syft scanned, and syft's
	// SBOM, before the tree is removed (see FileManifest).
	onTree func(dir, scanRoot string, s *syftsbom.SBOM) error
}

// WithFormat sets the output format, as syft's -o names it:
// cyclonedx-json (the default, CycloneDX 1.6), cyclonedx-xml, spdx-json
// (2.3), spdx-tag-value, syft-json (or json), with an optional @VERSION
// (cyclonedx-json@1.5, spdx-json@2.2).
func WithFormat(f Format) GenerateOption {
	return func(c *generateConfig) error {
		of, err := ParseOutputFormat(string(f))
		if err != nil {
			return err
		}
		c.outputs = []OutputFormat{of}
		return nil
	}
}

// WithOutputs makes Generate encode one scan in every format given, in
// order (Generated.Outputs). It replaces WithFormat.
func WithOutputs(fs ...OutputFormat) GenerateOption {
	return func(c *generateConfig) error {
		if len(fs) == 0 {
			return errors.New("sbom: no output format")
		}
		c.outputs = slices.Clone(fs)
		return nil
	}
}

// WithTool names the tool the SBOM records as its author (default wardgate
// at this build's version).
func WithTool(name, version string) GenerateOption {
	return func(c *generateConfig) error {
		if name == "" || version == "" {
			return errors.New("sbom: tool name and version must not be empty")
		}
		c.tool, c.version = name, version
		return nil
	}
}

// WithCacheDir serves repeated scans of unchanged content from dir, keyed
// by the SHA-256 of the input (a file's bytes, or a directory's file names,
// modes and contents). Without it Generate caches nothing.
func WithCacheDir(dir string) GenerateOption {
	return func(c *generateConfig) error {
		if dir == "" {
			return errors.New("sbom: empty cache dir")
		}
		if c.noCache {
			return errors.New("sbom: WithCacheDir and WithoutCache conflict")
		}
		c.cacheDir = dir
		return nil
	}
}

// WithoutCache scans even when a cached SBOM exists, and stores nothing.
func WithoutCache() GenerateOption {
	return func(c *generateConfig) error {
		if c.cacheDir != "" {
			return errors.New("sbom: WithCacheDir and WithoutCache conflict")
		}
		c.noCache = true
		return nil
	}
}

// WithArchiveLimits bounds the bytes and files a firmware image may unpack
// to (see WithUnpackLimits for every limit).
func WithArchiveLimits(maxBytes int64, maxFiles int) GenerateOption {
	return func(c *generateConfig) error {
		if maxBytes <= 0 || maxFiles <= 0 {
			return fmt.Errorf("sbom: archive limits %d bytes, %d files: want > 0", maxBytes, maxFiles)
		}
		c.limits.MaxBytes, c.limits.MaxFiles = maxBytes, maxFiles
		return nil
	}
}

// WithUnpackLimits bounds what a firmware image may unpack to: bytes,
// files, nesting depth and compression ratio (zero fields keep their
// defaults, firmware.DefaultLimits).
func WithUnpackLimits(l firmware.Limits) GenerateOption {
	return func(c *generateConfig) error {
		if err := l.Validate(); err != nil {
			return err
		}
		if l.MaxBytes != 0 {
			c.limits.MaxBytes = l.MaxBytes
		}
		if l.MaxFiles != 0 {
			c.limits.MaxFiles = l.MaxFiles
		}
		if l.MaxDepth != 0 {
			c.limits.MaxDepth = l.MaxDepth
		}
		if l.MaxRatio != 0 {
			c.limits.MaxRatio = l.MaxRatio
		}
		return nil
	}
}

// WithTempDir sets where firmware images are unpacked (default
// os.TempDir). The gate passes STATE/tmp.
func WithTempDir(dir string) GenerateOption {
	return func(c *generateConfig) error { c.tempDir = dir; return nil }
}

// WithLogger logs cache hits and misses and archive unpacking.
func WithLogger(l *slog.Logger) GenerateOption {
	return func(c *generateConfig) error {
		if l == nil {
			return errors.New("sbom: nil logger")
		}
		c.logger = l
		return nil
	}
}

// WithProgress makes Generate report how far it has got into p, which
// another goroutine may read while Generate runs (the CLI draws a progress
// line from it). syft publishes its progress on a process-wide event bus:
// Generate installs a bus of its own for the scan, so two Generate calls
// with progress at once report only into the later one's Progress.
func WithProgress(p *Progress) GenerateOption {
	return func(c *generateConfig) error {
		if p == nil {
			return errors.New("sbom: nil progress")
		}
		c.progress = p
		return nil
	}
}

// Generated is an SBOM produced by Generate.
type Generated struct {
	Format Format
	Data   []byte // the encoded SBOM (the first output)
	Cached bool   // served from the cache
	Key    string // cache key, when the source has one
	// Outputs are the encodings asked for, in order.
	Outputs []Output
	// Firmware lists the layers unpacked from a firmware or archive
	// source (nil for other sources, and when served from the cache).
	Firmware *firmware.Result
}

// Output is the scan encoded in one format.
type Output struct {
	Format OutputFormat
	Data   []byte
}

// Generate scans source with syft and returns the encoded SBOM. source is
// SCHEME:PATH with SCHEME one of dir, file, oci-dir, oci-archive,
// docker-archive, registry, archive (a firmware image or archive in any
// format firmware.Unpack knows, unpacked safely and scanned as a
// directory), firmware (the same, or one file when in no such format), or
// a bare path (a directory, or a file read as firmware:). syft never
// unpacks an archive on its own: see scan.
//
// syft is configured offline: no remote license lookups (Go, npm, PyPI),
// no Maven Central; only a registry: source reaches the network.
func Generate(ctx context.Context, source string, opts ...GenerateOption) (*Generated, error) {
	cfg := generateConfig{
		limits:  firmware.DefaultLimits(),
		logger:  slog.New(slog.DiscardHandler),
		tool:    "wardgate",
		version: buildinfo.Version(),
	}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if len(cfg.outputs) == 0 {
		of, err := ParseOutputFormat(string(FormatCycloneDXJSON))
		if err != nil {
			return nil, err
		}
		cfg.outputs = []OutputFormat{of}
	}
	scheme, target, err := parseSource(source)
	if err != nil {
		return nil, err
	}
	out := &Generated{Format: cfg.outputs[0].Name}
	// The cache keeps syft's own JSON of the scan and each encoding asked
	// for: an encoding asked for again is served as it was, another format
	// is encoded from the scan, not scanned again.
	var s *syftsbom.SBOM
	cached := make([][]byte, len(cfg.outputs))
	if cfg.cacheDir != "" && !cfg.noCache {
		key, err := cacheKey(scheme, target, cfg.tool+" "+cfg.version, cfg.progress)
		if err != nil {
			return nil, err
		}
		out.Key = key
		// A registry tag has no key (what it names can change): not cached.
		if key != "" {
			all := true
			for i, f := range cfg.outputs {
				cached[i], _ = os.ReadFile(cachePath(cfg.cacheDir, key, Format(f.String())))
				all = all && cached[i] != nil
			}
			if !all {
				if data, err := os.ReadFile(cachePath(cfg.cacheDir, key, FormatSyftJSON)); err == nil {
					if cs, _, _, err := syftjson.NewFormatDecoder().Decode(bytes.NewReader(data)); err == nil && cs != nil {
						s = cs
					}
				}
			}
			out.Cached = all || s != nil
			cfg.logger.Debug("sbom cache", "source", source, "key", key, "hit", out.Cached)
		}
	}
	scanRoot := "."
	if !out.Cached {
		if s, out.Firmware, scanRoot, err = scanSource(ctx, scheme, target, cfg); err != nil {
			return nil, err
		}
		if out.Key != "" {
			data, err := encode(s, OutputFormat{Name: FormatSyftJSON}, nil)
			if err == nil {
				err = cacheStore(cfg.cacheDir, out.Key, FormatSyftJSON, data)
			}
			if err != nil {
				cfg.logger.Warn("sbom cache store", "err", err)
			}
		}
	}
	for i, f := range cfg.outputs {
		data := cached[i]
		if data == nil {
			var amend func(*cdx.BOM, cdx.BOMFileFormat)
			if out.Firmware != nil {
				amend = annotateLayers(out.Firmware, scanRoot)
			}
			var err error
			data, err = encode(s, f, amend)
			if err != nil {
				return nil, err
			}
			if out.Key != "" {
				if err := cacheStore(cfg.cacheDir, out.Key, Format(f.String()), data); err != nil {
					cfg.logger.Warn("sbom cache store", "err", err)
				}
			}
		}
		out.Outputs = append(out.Outputs, Output{Format: f, Data: data})
	}
	out.Data = out.Outputs[0].Data
	return out, nil
}

// scanSource scans one source, unpacking a firmware image first (see
// firmware.Unpack); it returns the layers unpacked (nil for other
// sources) and the path in the unpacked tree that syft scanned.
func scanSource(ctx context.Context, scheme, target string, cfg generateConfig) (*syftsbom.SBOM, *firmware.Result, string, error) {
	var res *firmware.Result
	archiveName, scanRoot := "", "."
	if scheme == "archive" || scheme == "firmware" {
		// syft's license scanner (licenseContext: about a second of CPU
		// on a first scan) does not depend on the tree: it is built on the
		// other core while the image is unpacked.
		go licenseContext()
		dir, r, cleanup, err := unpackSource(ctx, scheme, target, cfg)
		if err != nil {
			return nil, nil, "", err
		}
		defer cleanup()
		if r == nil {
			scheme = "file"
		} else {
			// syft finds the distribution from the scanned root's
			// os-release: a root filesystem below the top (a ramdisk in a
			// U-Boot image) is scanned as the root.
			archiveName, res = filepath.Base(target), r
			scanRoot = r.RootFS(dir)
			scheme, target = "dir", filepath.Join(dir, filepath.FromSlash(scanRoot))
		}
	}
	s, err := scan(ctx, scheme, target, cfg.tool, cfg.version, cfg.progress)
	if err != nil {
		return nil, nil, "", err
	}
	if archiveName != "" {
		// An unpacked archive is named after the archive, not the temp dir.
		s.Source.Name = archiveName
	}
	if cfg.onTree != nil && scheme == "dir" {
		treeDir := target
		if res != nil {
			treeDir = strings.TrimSuffix(target, string(filepath.Separator)+filepath.FromSlash(scanRoot))
		}
		if err := cfg.onTree(treeDir, scanRoot, s); err != nil {
			return nil, nil, "", err
		}
	}
	return s, res, scanRoot, nil
}

func parseSource(source string) (scheme, target string, err error) {
	if s, t, ok := strings.Cut(source, ":"); ok && slices.Contains(sourceSchemes, s) {
		if t == "" {
			return "", "", fmt.Errorf("%w: %q names no path or reference", ErrBadSource, source)
		}
		if s == "registry" && !explicitRegistry(t) {
			return "", "", fmt.Errorf("%w: %q names no registry; write the registry host (index.docker.io/%s for Docker Hub): wardgate reaches no registry it was not named", ErrBadSource, source, t)
		}
		return s, t, nil
	}
	st, err := os.Stat(source)
	if err != nil {
		return "", "", fmt.Errorf("%w: %q: want SCHEME:PATH (%s) or an existing path: %v", ErrBadSource, source, strings.Join(sourceSchemes, ", "), err)
	}
	if st.IsDir() {
		return "dir", source, nil
	}
	return "firmware", source, nil
}

// syftArchiveMemory bounds the archive content (Java archives and the
// archives nested in them) syft holds while cataloging; with no disk
// allowed, an archive that does not fit is cataloged only in part, and
// syft says so in its unknowns.
const syftArchiveMemory = 512 << 20

// scan runs syft on one source with only that source's provider, so a
// local path is never tried as a registry reference.
//
// syft never unpacks an archive to disk on its own here: a file: source
// is opened with archive extraction off (syft would otherwise unpack any
// file it can name an archive format for into TMPDIR, with no limits), and
// archives inside the scanned tree (jar, war, zip...) are read by syft's
// archive cataloger task in memory only (MaxDiskBytes 0, MaxMemoryBytes
// syftArchiveMemory, nesting as deep as firmware.DefaultMaxDepth), which
// also keeps the Java cataloger from copying each archive into TMPDIR and
// unpacking the ones nested in it (syft's "nested cataloging"). Tar files
// inside the tree are not opened (IncludeUnindexedArchives false, as in
// syft's defaults); firmware.Unpack already unpacked every container that
// belongs to the firmware.
func scan(ctx context.Context, scheme, target, tool, version string, p *Progress) (*syftsbom.SBOM, error) {
	if p != nil {
		defer p.watch()()
	}
	var (
		src source.Source
		err error
	)
	if scheme == "file" {
		src, err = filesource.New(filesource.Config{Path: target, SkipExtractArchive: true, DigestAlgorithms: []crypto.Hash{crypto.SHA256}})
	} else {
		src, err = syft.GetSource(ctx, target, syft.DefaultGetSourceConfig().WithSources(scheme))
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s:%s: %v", ErrBadSource, scheme, target, err)
	}
	defer src.Close()
	lic, err := licenseContext()
	if err != nil {
		return nil, err
	}
	ctx = withValuesOf(ctx, lic)
	pk := pkgcataloging.DefaultConfig()
	pk.Golang = pk.Golang.WithSearchRemoteLicenses(false)
	pk.JavaArchive = pk.JavaArchive.WithUseNetwork(false)
	pk.JavaScript = pk.JavaScript.WithSearchRemoteLicenses(false)
	pk.Python = pk.Python.WithSearchRemoteLicenses(false)
	archives := cataloging.DefaultArchiveSearchConfig().
		WithIncludeUnindexedArchives(false).
		WithMaxDepth(firmware.DefaultMaxDepth).
		WithMaxMemoryBytes(syftArchiveMemory).
		WithMaxDiskBytes(0)
	cfg := syft.DefaultCreateSBOMConfig().WithTool(tool, version).WithPackagesConfig(pk).WithArchiveConfig(archives)
	s, err := syft.CreateSBOM(ctx, src, cfg)
	if err != nil {
		return nil, fmt.Errorf("scan %s:%s: %w", scheme, target, err)
	}
	return s, nil
}

// licenseContext holds syft's license scanner, built once per process.
// syft builds one per CreateSBOM unless the context already carries one,
// and building it (google/licensecheck's automaton over every license
// text it knows) costs about a second of CPU, more than cataloging a small
// root filesystem. The scanner is safe for concurrent use: syft's
// catalogers share one within a scan. The coverage threshold is syft's
// default, the one CreateSBOM would use.
var licenseContext = sync.OnceValues(func() (context.Context, error) {
	ctx, err := syft.SetContextLicenseScanner(context.Background(), cataloging.DefaultLicenseConfig())
	if err != nil {
		return nil, fmt.Errorf("sbom: syft license scanner: %w", err)
	}
	return ctx, nil
})

// withValuesOf returns ctx (its deadline, cancellation and values) that
// also answers the values of extra that ctx does not have.
func withValuesOf(ctx, extra context.Context) context.Context {
	return valuesCtx{Context: ctx, extra: extra}
}

type valuesCtx struct {
	context.Context
	extra context.Context
}

func (c valuesCtx) Value(key any) any {
	if v := c.Context.Value(key); v != nil {
		return v
	}
	return c.extra.Value(key)
}

// cacheKey is the SHA-256 of what decides the scan: the syft version, the
// tool recorded, the scheme, and the content. A registry reference is
// cacheable only when pinned by digest.
func cacheKey(scheme, target, tool string, p *Progress) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "wardgate-sbom-cache v2\nsyft %s\ntool %s\nscheme %s\n", syftVersion(), tool, scheme)
	switch scheme {
	case "registry":
		if !strings.Contains(target, "@sha256:") {
			return "", nil
		}
		fmt.Fprintf(h, "ref %s\n", target)
	case "dir", "oci-dir":
		if err := hashDir(h, target, p); err != nil {
			return "", fmt.Errorf("%w: %v", ErrBadSource, err)
		}
	default:
		if err := hashFile(h, target); err != nil {
			return "", fmt.Errorf("%w: %v", ErrBadSource, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func hashFile(w io.Writer, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// hashDir writes each entry's path, mode, link target and content hash, in
// WalkDir's lexical order.
func hashDir(w io.Writer, dir string, prog *Progress) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "L %q %q\n", filepath.ToSlash(rel), t)
		case d.IsDir():
			fmt.Fprintf(w, "D %q %o\n", filepath.ToSlash(rel), info.Mode().Perm())
		case info.Mode().IsRegular():
			fh := sha256.New()
			if err := hashFile(fh, p); err != nil {
				return err
			}
			fmt.Fprintf(w, "F %q %o %x\n", filepath.ToSlash(rel), info.Mode().Perm(), fh.Sum(nil))
			if prog != nil {
				prog.files.Add(1)
			}
		}
		return nil
	})
}

// explicitRegistry reports whether an image reference names its registry:
// its first path component is a host, by go-containerregistry's own rule
// (localhost, or a name with a '.' or ':'). "oci/pump-agent" names none,
// and would go to Docker Hub.
func explicitRegistry(ref string) bool {
	first, _, ok := strings.Cut(ref, "/")
	return ok && (first == "localhost" || strings.ContainsAny(first, ".:"))
}

func cachePath(dir, key string, f Format) string {
	return filepath.Join(dir, key[:2], key+"."+string(f))
}

// cacheStore writes atomically: a reader never sees half an SBOM.
func cacheStore(dir, key string, f Format, data []byte) error {
	p := cachePath(dir, key, f)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), p)
}
