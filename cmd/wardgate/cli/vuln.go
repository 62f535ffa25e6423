package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/wardgate/wardgate/evidence"
	"github.com/wardgate/wardgate/gate"
	"github.com/wardgate/wardgate/sbom"
	"github.com/wardgate/wardgate/trust"
	"github.com/wardgate/wardgate/vuln"
)

// NewVulnCmd groups the vulnerability commands: db import, db status, scan.
func NewVulnCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vuln",
		Short: "Match SBOMs against an offline vulnerability database (OSV records)",
	}
	db := &cobra.Command{Use: "db", Short: "Import and inspect the offline vulnerability database"}
	db.AddCommand(newVulnDBImportCmd(), newVulnDBStatusCmd())
	cmd.AddCommand(db, newVulnScanCmd())
	return cmd
}

type vulnDBConfig struct {
	state  string
	output string
}

func newVulnDBImportCmd() *cobra.Command {
	var cfg vulnDBConfig
	cmd := &cobra.Command{
		Use:   "import FILE_OR_DIR...",
		Short: "Import OSV records into the state directory (replaces the database)",
		Long: `Import OSV vulnerability records into STATE/` + vuln.FileName + `. Each
argument is a zip of OSV JSON files, as osv.dev exports an ecosystem
(https://osv-vulnerabilities.storage.googleapis.com/<ecosystem>/all.zip,
fetched by you: wardgate never downloads one), a directory of OSV JSON
files, or one JSON file. Several exports make one database; the import
replaces the previous database whole.

Every record is checked (an OSV record with an id and a modified time, no
modified time more than a day in the future, affected packages with an
ecosystem and a name, range versions its ecosystem can compare); one bad
record fails the import and nothing is written.

The database's age is the time since its newest record was modified; the
trust configuration's vulnerabilities.max_db_age bounds it.

Exit codes: 0 imported, 2 could not import.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(cfg.output); err != nil {
				return noVerdict(err)
			}
			info, err := vuln.Import(cmd.Context(), cfg.state, args)
			if err != nil {
				return noVerdict(err)
			}
			return printVulnDB(cmd.OutOrStdout(), cfg.output, "imported", info, time.Now())
		},
	}
	addStateFlag(cmd, &cfg.state)
	addOutputFlag(cmd, &cfg.output)
	return cmd
}

func newVulnDBStatusCmd() *cobra.Command {
	var cfg vulnDBConfig
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the imported vulnerability database and its age",
		Long: `Show what STATE/` + vuln.FileName + ` holds: records, ecosystems,
digest, the newest record's time and the database's age.

Exit codes: 0 shown, 2 no database or an unreadable one.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(cfg.output); err != nil {
				return noVerdict(err)
			}
			info, err := vuln.ReadInfo(cfg.state)
			if err != nil {
				return noVerdict(err)
			}
			return printVulnDB(cmd.OutOrStdout(), cfg.output, "database", info, time.Now())
		},
	}
	addStateFlag(cmd, &cfg.state)
	addOutputFlag(cmd, &cfg.output)
	return cmd
}

// vulnDBOutput is the JSON form of a database's description.
type vulnDBOutput struct {
	vuln.Info
	AgeSeconds int64 `json:"ageSeconds"`
}

func printVulnDB(w io.Writer, output, verb string, info vuln.Info, now time.Time) error {
	if output == "json" {
		b, err := json.Marshal(vulnDBOutput{Info: info, AgeSeconds: int64(info.Age(now) / time.Second)})
		if err != nil {
			return noVerdict(err)
		}
		fmt.Fprintln(w, string(b))
		return nil
	}
	fmt.Fprintf(w, "%s %s\n  imported %s\n", verb, dbLine(info, now), info.ImportedAt.Format(time.RFC3339))
	for _, e := range slices.Sorted(maps.Keys(info.Ecosystems)) {
		fmt.Fprintf(w, "  %-24s %d records\n", e, info.Ecosystems[e])
	}
	return nil
}

// dbLine describes a database in one line, with its age at now.
func dbLine(info vuln.Info, now time.Time) string {
	return fmt.Sprintf("vulnerability database: %d %s records from %s, newest record %s (%s old), %s",
		info.Records, info.Format, strings.Join(info.Sources, ", "), info.BuiltAt.Format(time.RFC3339), humanAge(info.Age(now)), info.Digest)
}

// humanAge writes an age in days (and hours under two days).
func humanAge(d time.Duration) string {
	switch {
	case d < 0:
		return "in the future: " + (-d).Round(time.Minute).String()
	case d < 48*time.Hour:
		return d.Round(time.Minute).String()
	}
	return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
}

type vulnScanConfig struct {
	state    string
	output   string
	failOn   string
	maxAge   string
	at       string
	cacheDir string
	noCache  bool
}

// scanSeverities are the values --fail-on accepts, least severe first.
var scanSeverities = []string{vuln.SeverityLow, vuln.SeverityMedium, vuln.SeverityHigh, vuln.SeverityCritical}

func newVulnScanCmd() *cobra.Command {
	var cfg vulnScanConfig
	cmd := &cobra.Command{
		Use:   "scan SBOM_OR_SOURCE",
		Short: "Match an SBOM (or an artifact, scanned with syft) against the imported database",
		Long: `Match the components of an SBOM (CycloneDX or SPDX) against the database
imported with "wardgate vuln db import". A firmware file, directory or image
(see "wardgate sbom generate") is scanned with syft first.

Components are matched by package URL: OS packages by distribution release
and source package (syft's distro= and upstream= qualifiers), language
packages by ecosystem and name. Components without a package URL that
names an OSV ecosystem (pkg:generic) cannot be matched and are listed as
unchecked. Every result shows the database's age.

--fail-on SEVERITY makes a match at or above SEVERITY (low, medium, high,
critical) exit 1; a match the database rates nowhere (unknown) counts at
every level. With --fail-on, components the database cannot speak for (an
ecosystem it has no records for, a version that cannot be compared) and a
database older than --max-db-age make the scan undecided (exit 2).

Exit codes: 0 no failing match, 1 a match at or above --fail-on, 2 could
not decide (no database, unreadable input, uncovered components, a stale
database).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(cfg.output); err != nil {
				return noVerdict(err)
			}
			if cfg.failOn != "" && !slices.Contains(scanSeverities, cfg.failOn) {
				return noVerdict(fmt.Errorf("--fail-on %s: want one of %s", cfg.failOn, strings.Join(scanSeverities, ", ")))
			}
			var maxAge time.Duration
			if cfg.maxAge != "" {
				d, err := parseAge(cfg.maxAge)
				if err != nil {
					return noVerdict(fmt.Errorf("--max-db-age: %w", err))
				}
				maxAge = d
			}
			now := time.Now()
			if cfg.at != "" {
				t, err := parseTimeFlag("evaluation-time", cfg.at)
				if err != nil {
					return noVerdict(err)
				}
				now = t
			}
			db, err := vuln.Open(cfg.state)
			if err != nil {
				return noVerdict(err)
			}
			doc, err := observe(cmd, sbomDriftConfig{observed: args[0], gen: sbomGenerateConfig{
				outputs: []string{string(sbom.FormatCycloneDXJSON)}, cacheDir: cfg.cacheDir, noCache: cfg.noCache}})
			if err != nil {
				return noVerdict(err)
			}
			comps := make([]vuln.Component, 0, len(doc.Components))
			for _, c := range doc.Components {
				comps = append(comps, vuln.Component{Name: c.Name, Version: c.Version, PURL: c.PURL})
			}
			res, err := db.Match(cmd.Context(), comps)
			if err != nil {
				return noVerdict(err)
			}
			rep := newScanReport(res, cfg.failOn, maxAge, now)
			if err := rep.print(cmd.OutOrStdout(), cfg.output); err != nil {
				return noVerdict(err)
			}
			switch {
			case rep.Failed:
				return verdict(ExitFail)
			case len(rep.Undecided) > 0:
				return verdict(ExitNoVerdict)
			}
			return nil
		},
	}
	addStateFlag(cmd, &cfg.state)
	addOutputFlag(cmd, &cfg.output)
	f := cmd.Flags()
	f.StringVar(&cfg.failOn, "fail-on", "", "exit 1 on a match at or above this severity: low, medium, high or critical")
	f.StringVar(&cfg.maxAge, "max-db-age", "", "with --fail-on: a database older than this (720h, 30d) cannot decide")
	f.StringVar(&cfg.at, "evaluation-time", "", "judge the database's age as of this time (RFC 3339)")
	f.BoolVar(&cfg.noCache, "no-cache", false, "scan a source even if a cached SBOM of the same content exists")
	f.StringVar(&cfg.cacheDir, "cache-dir", defaultCacheDir(), "content-addressed SBOM cache")
	return cmd
}

// parseAge reads a duration in Go's syntax or whole days ("30d").
func parseAge(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		if _, err := fmt.Sscanf(days, "%d", &n); err != nil || n <= 0 || fmt.Sprint(n) != days {
			return 0, fmt.Errorf("want a duration such as 720h or 30d, got %q", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("want a duration such as 720h or 30d, got %q", s)
	}
	return d, nil
}

// scanReport is the JSON form of a scan.
type scanReport struct {
	*vuln.Result
	// AgeSeconds is the database's age at the evaluation time.
	AgeSeconds int64 `json:"ageSeconds"`
	// FailOn is --fail-on ("" when not given); Failed is true when a match
	// is at or above it.
	FailOn string `json:"failOn,omitempty"`
	Failed bool   `json:"failed"`
	// Undecided says why the scan cannot decide (with --fail-on only).
	Undecided []string `json:"undecided"`
	now       time.Time
}

func newScanReport(res *vuln.Result, failOn string, maxAge time.Duration, now time.Time) *scanReport {
	r := &scanReport{Result: res, AgeSeconds: int64(res.Database.Age(now) / time.Second), FailOn: failOn, Undecided: []string{}, now: now}
	if failOn == "" {
		return r
	}
	for _, m := range res.Matches {
		if m.Severity == vuln.SeverityUnknown || vuln.Rank(m.Severity) >= vuln.Rank(failOn) {
			r.Failed = true
		}
	}
	if maxAge > 0 && res.Database.Age(now) > maxAge {
		r.Undecided = append(r.Undecided, fmt.Sprintf("the database is %s old, older than --max-db-age %s", humanAge(res.Database.Age(now)), maxAge))
	}
	for _, e := range res.Ecosystems {
		if e.Records == 0 {
			r.Undecided = append(r.Undecided, fmt.Sprintf("the database has no records for %s (%d components)", e.Name, e.Components))
		}
	}
	for _, u := range res.Unchecked {
		if u.Reason != vuln.ReasonNoEcosystem {
			r.Undecided = append(r.Undecided, fmt.Sprintf("%s %s cannot be checked: %s", u.Component.Name, u.Component.Version, u.Reason))
		}
	}
	return r
}

func (r *scanReport) print(w io.Writer, output string) error {
	if output == "json" {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		fmt.Fprintln(w, string(b))
		return nil
	}
	fmt.Fprintln(w, dbLine(r.Database, r.now))
	if len(r.Matches) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "COMPONENT\tVERSION\tID\tSEVERITY\tCVSS\tFIXED IN")
		for _, m := range r.Matches {
			score := "-"
			if m.CVSS != nil {
				score = fmt.Sprintf("%.1f", m.CVSS.Score)
			}
			fixed := strings.Join(m.FixedIn, ", ")
			if fixed == "" {
				fixed = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.Component.Name, dash(m.Component.Version), m.ID, m.Severity, score, fixed)
		}
		tw.Flush()
	}
	counts := map[string]int{}
	for _, m := range r.Matches {
		counts[m.Severity]++
	}
	var parts []string
	for _, s := range vuln.Severities {
		parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
	}
	fmt.Fprintf(w, "%d matches (%s) in %d components; %d unchecked\n", len(r.Matches), strings.Join(parts, ", "), r.Components, len(r.Unchecked))
	for _, u := range r.Unchecked {
		fmt.Fprintf(w, "  unchecked %s %s: %s\n", u.Component.Name, u.Component.Version, u.Reason)
	}
	for _, u := range r.Undecided {
		fmt.Fprintf(w, "  cannot decide: %s\n", u)
	}
	if r.Failed {
		fmt.Fprintf(w, "FAIL: a match at or above %s\n", r.FailOn)
	}
	return nil
}

// vulnerabilityOptions opens the database in the state directory when the
// trust configuration checks known vulnerabilities, and gives the gate its
// matcher. Without a database there is no option, and the policy denies
// with could-not-evaluate; a damaged database is an error.
func vulnerabilityOptions(tc *trust.Config, state string) ([]gate.Option, error) {
	if tc.Vulnerabilities == nil {
		return nil, nil
	}
	db, err := vuln.Open(state)
	if errors.Is(err, vuln.ErrNoDatabase) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return []gate.Option{gate.WithVulnerabilities(db)}, nil
}

// vulnerabilityLine summarises the evidence's vulnerabilities section for
// text output: the database and its age, and the matches by severity.
func vulnerabilityLine(v *evidence.Vulnerabilities) string {
	counts := map[string]int{}
	for _, m := range v.Matches {
		counts[m.Severity]++
	}
	var parts []string
	for _, s := range vuln.Severities {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
		}
	}
	if len(parts) == 0 {
		parts = []string{"none"}
	}
	return fmt.Sprintf("known vulnerabilities: %s in %d components (vulnerability database %s, newest record %s, %s old)",
		strings.Join(parts, ", "), v.Components, v.Database.Digest, v.Database.BuiltAt.Format(time.RFC3339), humanAge(time.Duration(v.Database.AgeSeconds)*time.Second))
}
