package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/wardgate/wardgate/firmware"
	"github.com/wardgate/wardgate/sbom"
)

// NewSbomCmd groups the sbom subcommands: generate, diff and drift.
func NewSbomCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sbom",
		Short: "Generate SBOMs, diff two releases' SBOMs, and check a vendor's SBOM against the artifact",
	}
	cmd.AddCommand(newSbomGenerateCmd(), newSbomDiffCmd(), newSbomDriftCmd(), newSbomFilesCmd())
	return cmd
}

type sbomGenerateConfig struct {
	outputs  []string
	file     string
	noCache  bool
	cacheDir string
}

// sbomOutput is one -o FORMAT[=FILE]: where one encoding goes ("" is
// standard output).
type sbomOutput struct {
	format sbom.OutputFormat
	file   string
}

// parseOutputs reads syft's -o FORMAT[=FILE] flags: at most one goes to
// standard output, and --file (wardgate's older flag) names the file of a
// single output.
func (c sbomGenerateConfig) parseOutputs() ([]sbomOutput, error) {
	specs := c.outputs
	if len(specs) == 0 {
		specs = []string{string(sbom.FormatCycloneDXJSON)}
	}
	var outs []sbomOutput
	stdout := 0
	for _, spec := range specs {
		name, file, _ := strings.Cut(spec, "=")
		f, err := sbom.ParseOutputFormat(name)
		if err != nil {
			return nil, fmt.Errorf("-o %s: %w", spec, err)
		}
		if file == "" {
			stdout++
		}
		outs = append(outs, sbomOutput{format: f, file: file})
	}
	if c.file != "" {
		if len(outs) != 1 || outs[0].file != "" {
			return nil, errors.New("--file goes with one -o FORMAT; with several, write -o FORMAT=FILE")
		}
		outs[0].file, stdout = c.file, 0
	}
	if stdout > 1 {
		return nil, errors.New("more than one -o writes to standard output: give each but one a file, -o FORMAT=FILE")
	}
	return outs, nil
}

// defaultCacheDir is $XDG_CACHE_HOME/wardgate/sbom, or "" when there is no
// user cache directory (then nothing is cached).
func defaultCacheDir() string {
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "wardgate", "sbom")
}

func (c sbomGenerateConfig) options(outs []sbomOutput) []sbom.GenerateOption {
	var fs []sbom.OutputFormat
	for _, o := range outs {
		fs = append(fs, o.format)
	}
	opts := []sbom.GenerateOption{sbom.WithOutputs(fs...), sbom.WithTool("wardgate", Version)}
	switch {
	case c.noCache:
		opts = append(opts, sbom.WithoutCache())
	case c.cacheDir != "":
		opts = append(opts, sbom.WithCacheDir(c.cacheDir))
	}
	return opts
}

func newSbomGenerateCmd() *cobra.Command {
	var cfg sbomGenerateConfig
	cmd := &cobra.Command{
		Use:   "generate SOURCE",
		Short: "Generate an SBOM with syft (no syft binary needed)",
		Long: `Generate an SBOM of SOURCE:

  dir:PATH  file:PATH  oci-dir:PATH  oci-archive:PATH  docker-archive:PATH
  registry:REF  archive:PATH (firmware tar, tar.gz or zip, unpacked safely)

or a bare path (a directory, a firmware archive, or a file). Nothing reaches
the network except the registry of a registry: source. Unchanged content is
served from a content-addressed cache unless --no-cache.

On a terminal, a progress line on standard error counts the files read and
the packages found so far; nothing is drawn when standard error is a pipe or
a file, or when CI is set (to anything but "false" or "0").

Exit codes: 0 written, 2 could not scan.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			outs, err := cfg.parseOutputs()
			if err != nil {
				return noVerdict(err)
			}
			opts := cfg.options(outs)
			stop := func() {}
			if tty, ok := progressTerminal(cmd.ErrOrStderr(), os.Getenv); ok {
				var p sbom.Progress
				opts = append(opts, sbom.WithProgress(&p))
				stop = drawProgress(tty, &p, 150*time.Millisecond, !cfg.noCache && cfg.cacheDir != "")
			}
			g, err := sbom.Generate(cmd.Context(), args[0], opts...)
			stop() // the line is gone before anything else is written
			if err != nil {
				return noVerdict(err)
			}
			for i, o := range outs {
				data := g.Outputs[i].Data
				if o.file == "" {
					if _, err := cmd.OutOrStdout().Write(data); err != nil {
						return noVerdict(err)
					}
					continue
				}
				if err := writeFileAtomic(o.file, data); err != nil {
					return noVerdict(err)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&cfg.outputs, "output", "o", nil, "output as syft names it, FORMAT[@VERSION][=FILE], repeatable: "+strings.Join(sbom.OutputFormatNames(), ", ")+" (default cyclonedx-json)")
	cmd.Flags().StringVar(&cfg.file, "file", "", "write the SBOM to this file instead of standard output (one -o only)")
	cmd.Flags().BoolVar(&cfg.noCache, "no-cache", false, "scan even if a cached SBOM of the same content exists")
	cmd.Flags().StringVar(&cfg.cacheDir, "cache-dir", defaultCacheDir(), "content-addressed SBOM cache")
	return cmd
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory: a reader never sees half an SBOM, and a failed write leaves
// nothing behind.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
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
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// progressTerminal returns w as a terminal to draw progress on: w is a
// character device (a terminal; /dev/null too, where drawing is harmless)
// and CI is unset, empty, "false" or "0".
func progressTerminal(w io.Writer, getenv func(string) string) (io.Writer, bool) {
	switch getenv("CI") {
	case "", "false", "0":
	default:
		return nil, false
	}
	f, ok := w.(*os.File)
	if !ok {
		return nil, false
	}
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return nil, false
	}
	return f, true
}

// drawProgress redraws one status line on w now and every interval until
// stop is called, which erases it.
// hashing says whether files are read for the cache key (not with
// --no-cache): only then is there a count of files to show.
func drawProgress(w io.Writer, p *sbom.Progress, every time.Duration, hashing bool) (stop func()) {
	const erase = "\r\x1b[K"
	fmt.Fprint(w, erase+progressLine(p.Files(), p.Packages(), p.Indexing(), hashing))
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprint(w, erase)
				return
			case <-t.C:
				fmt.Fprint(w, erase+progressLine(p.Files(), p.Packages(), p.Indexing(), hashing))
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// progressLine is the status line: files read for the cache key (when
// there is one: with --no-cache nothing counts them), packages found, and
// the path syft is indexing (its last 40 bytes).
func progressLine(files, packages int64, indexing string, hashing bool) string {
	line := fmt.Sprintf("scanning: %s packages found", thousands(packages))
	if hashing {
		line = fmt.Sprintf("scanning: %s files read, %s packages found", thousands(files), thousands(packages))
	}
	if indexing != "" {
		if len(indexing) > 40 {
			indexing = "..." + indexing[len(indexing)-37:]
		}
		line += ", indexing " + indexing
	}
	return line
}

// thousands writes n with comma separators.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	if n < 0 {
		return "-" + thousands(-n)
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

type reportConfig struct {
	output string
	failOn []string
}

func (c *reportConfig) register(cmd *cobra.Command, codes []sbom.Code) {
	names := make([]string, len(codes))
	for i, code := range codes {
		names[i] = string(code)
	}
	cmd.Flags().StringVarP(&c.output, "output", "o", "table", "output format: table, json or markdown")
	cmd.Flags().StringSliceVar(&c.failOn, "fail-on", nil, "exit 1 if any change has one of these codes: "+strings.Join(names, ","))
}

func (c *reportConfig) validate(codes []sbom.Code) error {
	switch c.output {
	case "table", "json", "markdown":
	default:
		return fmt.Errorf("-o %s: want table, json or markdown", c.output)
	}
	for _, f := range c.failOn {
		if !slices.Contains(codes, sbom.Code(f)) {
			return fmt.Errorf("--fail-on %s: unknown code", f)
		}
	}
	return nil
}

// report prints changes and returns the exit --fail-on calls for.
func (c *reportConfig) report(w io.Writer, codes []sbom.Code, ch *sbom.Changes) error {
	switch c.output {
	case "json":
		b, err := json.Marshal(ch)
		if err != nil {
			return noVerdict(err)
		}
		fmt.Fprintln(w, string(b))
	case "markdown":
		printMarkdown(w, codes, ch)
	default:
		printTable(w, codes, ch)
	}
	for _, f := range c.failOn {
		if ch.Summary[sbom.Code(f)] > 0 {
			return verdict(ExitFail)
		}
	}
	return nil
}

func summaryLine(codes []sbom.Code, ch *sbom.Changes) string {
	var parts []string
	for _, code := range codes {
		if n := ch.Summary[code]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, code))
		}
	}
	if len(parts) == 0 {
		return "no changes"
	}
	return strings.Join(parts, ", ")
}

// changeNames names each change's component: its name, and its bom-ref
// or SPDX id where another change reads the same (two components of the
// same name and version).
func changeNames(ch *sbom.Changes) []string {
	key := func(c sbom.Change) string { return string(c.Code) + "\x00" + c.Name + "\x00" + c.From + "\x00" + c.To }
	n := map[string]int{}
	for _, c := range ch.Changes {
		n[key(c)]++
	}
	names := make([]string, len(ch.Changes))
	for i, c := range ch.Changes {
		names[i] = c.Name
		if n[key(c)] > 1 && c.Ref != "" {
			names[i] = c.Name + " [" + c.Ref + "]"
		}
	}
	return names
}

func printTable(w io.Writer, codes []sbom.Code, ch *sbom.Changes) {
	if len(ch.Changes) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CODE\tNAME\tFROM\tTO")
		names := changeNames(ch)
		for i, c := range ch.Changes {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Code, names[i], dash(c.From), dash(c.To))
		}
		tw.Flush()
	}
	fmt.Fprintln(w, "summary:", summaryLine(codes, ch))
}

func printMarkdown(w io.Writer, codes []sbom.Code, ch *sbom.Changes) {
	if len(ch.Changes) > 0 {
		fmt.Fprintln(w, "| Change | Component | From | To |")
		fmt.Fprintln(w, "|---|---|---|---|")
		names := changeNames(ch)
		for i, c := range ch.Changes {
			fmt.Fprintf(w, "| %s | `%s` | %s | %s |\n", c.Code, mdEscape(names[i]), mdEscape(dash(c.From)), mdEscape(dash(c.To)))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "**Summary:** %s\n", summaryLine(codes, ch))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// readSBOM decodes an SBOM file; any failure is "could not decide".
func readSBOM(path string) (*sbom.Document, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	d, err := sbom.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return d, nil
}

// readSBOMs decodes the files concurrently: reading is most of a diff's
// time. Every file's error is reported.
func readSBOMs(paths ...string) ([]*sbom.Document, error) {
	docs := make([]*sbom.Document, len(paths))
	errs := make([]error, len(paths))
	var wg sync.WaitGroup
	for i, p := range paths {
		wg.Go(func() { docs[i], errs[i] = readSBOM(p) })
	}
	wg.Wait()
	return docs, errors.Join(errs...)
}

func newSbomDiffCmd() *cobra.Command {
	var cfg reportConfig
	codes := append(slices.Clone(sbom.DiffCodes), sbom.FileCodes...)
	cmd := &cobra.Command{
		Use:   "diff OLD NEW",
		Short: "Show what changed between two SBOMs, or two firmware releases file by file",
		Long: `Diff two SBOMs. Each change has a stable code:

  added removed upgraded downgraded hash-changed license-changed
  supplier-changed dependency-added dependency-removed

hash-changed is the same version with a different hash: a rebuilt or
tampered release.

When OLD and NEW are firmware images, directories, or file manifests
(written by "wardgate sbom files -o json"), the diff is also file by file:

  executable-changed-same-version executable-added file-changed
  file-added file-removed

executable-changed-same-version is an ELF or PE file whose bytes changed
while the package owning it kept its version: the 3CX and CCleaner pattern.

Exit codes: 0 done, 1 a --fail-on code was found, 2 unreadable input.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cfg.validate(codes); err != nil {
				return noVerdict(err)
			}
			docs, err := readSBOMs(args[0], args[1])
			if err == nil {
				return cfg.report(cmd.OutOrStdout(), sbom.DiffCodes, sbom.Diff(docs[0], docs[1]))
			}
			if !errors.Is(err, sbom.ErrUnknownFormat) && !isNotSBOM(args[0]) && !isNotSBOM(args[1]) {
				return noVerdict(err)
			}
			ch, err := diffReleases(cmd, args[0], args[1])
			if err != nil {
				return noVerdict(err)
			}
			return cfg.report(cmd.OutOrStdout(), codes, ch)
		},
	}
	cfg.register(cmd, codes)
	return cmd
}

// isNotSBOM reports a directory: a firmware tree, not an SBOM file.
func isNotSBOM(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// release is one side of a file-level diff.
type release struct {
	manifest *firmware.Manifest
	doc      *sbom.Document // the SBOM generated with it, nil for a manifest file
}

// readRelease reads a manifest file, or unpacks and lists a firmware or
// directory (scanning it with syft for the files' owners).
func readRelease(cmd *cobra.Command, p string) (release, error) {
	if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
		f, err := os.Open(p)
		if err != nil {
			return release{}, err
		}
		m, err := firmware.ReadManifest(f)
		f.Close()
		if err == nil {
			return release{manifest: m}, nil
		}
	}
	m, g, err := sbom.FileManifest(cmd.Context(), p)
	if err != nil {
		return release{}, fmt.Errorf("%s: %w", p, err)
	}
	d, err := sbom.Decode(strings.NewReader(string(g.Data)))
	if err != nil {
		return release{}, fmt.Errorf("%s: generated SBOM: %w", p, err)
	}
	return release{manifest: m, doc: d}, nil
}

// diffReleases diffs two releases file by file, and by component when
// both were scanned.
func diffReleases(cmd *cobra.Command, oldPath, newPath string) (*sbom.Changes, error) {
	var rel [2]release
	var errs [2]error
	var wg sync.WaitGroup
	for i, p := range []string{oldPath, newPath} {
		wg.Go(func() { rel[i], errs[i] = readRelease(cmd, p) })
	}
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		return nil, err
	}
	var comp *sbom.Changes
	if rel[0].doc != nil && rel[1].doc != nil {
		comp = sbom.Diff(rel[0].doc, rel[1].doc)
	}
	return sbom.DiffFiles(rel[0].manifest, rel[1].manifest, comp), nil
}

type sbomFilesConfig struct{ output string }

func newSbomFilesCmd() *cobra.Command {
	var cfg sbomFilesConfig
	cmd := &cobra.Command{
		Use:   "files SOURCE",
		Short: "List the files of a firmware image or directory: size, SHA-256, type, build ID, owning package",
		Long: `Unpack a firmware image (as "wardgate sbom generate" does) or read a
directory, and list every regular file: path, size, SHA-256, type (elf, pe,
script, other), the ELF build ID or PE headers, and the package that owns
the file when the SBOM says (from the package databases' file lists).
Save it with -o json to diff a later release against it:
"wardgate sbom diff OLD.json NEW_FIRMWARE".

Exit codes: 0 listed, 2 could not unpack or read.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfg.output != "table" && cfg.output != "json" {
				return noVerdict(fmt.Errorf("-o %s: want table or json", cfg.output))
			}
			m, _, err := sbom.FileManifest(cmd.Context(), args[0])
			if err != nil {
				return noVerdict(err)
			}
			w := cmd.OutOrStdout()
			if cfg.output == "json" {
				b, err := json.Marshal(m)
				if err != nil {
					return noVerdict(err)
				}
				fmt.Fprintln(w, string(b))
				return nil
			}
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PATH\tSIZE\tSHA256\tTYPE\tID\tPACKAGE")
			for _, f := range m.Files {
				id := f.BuildID
				if f.PE != nil {
					id = fmt.Sprintf("pe %s %d", f.PE.Machine, f.PE.TimeDateStamp)
				}
				pkg := ""
				if f.Package != "" {
					pkg = f.Package + " " + f.Version
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", f.Path, f.Size, f.SHA256[:12], f.Type, dash(id), dash(pkg))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&cfg.output, "output", "o", "table", "output format: table or json")
	return cmd
}

type sbomDriftConfig struct {
	report   reportConfig
	claimed  string
	observed string
	gen      sbomGenerateConfig
}

func newSbomDriftCmd() *cobra.Command {
	var cfg sbomDriftConfig
	cmd := &cobra.Command{
		Use:   "drift --claimed VENDOR_SBOM --observed SOURCE_OR_SBOM",
		Short: "Check a vendor's SBOM against what is really in the artifact",
		Long: `Compare the vendor's SBOM with an SBOM of the artifact, generated with
syft when --observed is a source (see "wardgate sbom generate"). Codes:

  undeclared        found in the artifact, not in the vendor's SBOM
  missing           in the vendor's SBOM, not found
  version-mismatch  both, different versions
  hash-mismatch     both, same version, different hash

"missing" means syft did not find it, not that it is absent: see
docs/sbom.md for what syft cannot see in a raw firmware blob.

Exit codes: 0 done, 1 a --fail-on code was found, 2 unreadable input.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.claimed == "" || cfg.observed == "" {
				return noVerdict(errors.New("--claimed and --observed are required"))
			}
			if err := cfg.report.validate(sbom.DriftCodes); err != nil {
				return noVerdict(err)
			}
			claimed, err := readSBOM(cfg.claimed)
			if err != nil {
				return noVerdict(err)
			}
			observed, err := observe(cmd, cfg)
			if err != nil {
				return noVerdict(err)
			}
			return cfg.report.report(cmd.OutOrStdout(), sbom.DriftCodes, sbom.Drift(claimed, observed))
		},
	}
	cfg.report.register(cmd, sbom.DriftCodes)
	cmd.Flags().StringVar(&cfg.claimed, "claimed", "", "the vendor's SBOM")
	cmd.Flags().StringVar(&cfg.observed, "observed", "", "an SBOM of the artifact, or a source to generate one from")
	cmd.Flags().BoolVar(&cfg.gen.noCache, "no-cache", false, "scan even if a cached SBOM of the same content exists")
	cmd.Flags().StringVar(&cfg.gen.cacheDir, "cache-dir", defaultCacheDir(), "content-addressed SBOM cache")
	return cmd
}

// observe reads --observed as an SBOM when it is a file in an SBOM format,
// and otherwise scans it.
func observe(cmd *cobra.Command, cfg sbomDriftConfig) (*sbom.Document, error) {
	if st, err := os.Stat(cfg.observed); err == nil && st.Mode().IsRegular() {
		d, err := readSBOM(cfg.observed)
		if err == nil {
			return d, nil
		}
		if !errors.Is(err, sbom.ErrUnknownFormat) {
			return nil, err
		}
	}
	outs, err := cfg.gen.parseOutputs()
	if err != nil {
		return nil, err
	}
	g, err := sbom.Generate(cmd.Context(), cfg.observed, cfg.gen.options(outs)...)
	if err != nil {
		return nil, err
	}
	d, err := sbom.Decode(strings.NewReader(string(g.Data)))
	if err != nil {
		return nil, fmt.Errorf("read generated SBOM: %w", err)
	}
	return d, nil
}
