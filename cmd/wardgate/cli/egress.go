package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/gate"
	"github.com/wardgate/wardgate/store"
	"github.com/wardgate/wardgate/trust"
	"github.com/wardgate/wardgate/verify"
)

// NewEgressCmd groups the egress subcommands: hunt, ingest and findings.
func NewEgressCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "egress",
		Short: "Hunt device network telemetry and flag updates whose installers behave differently",
	}
	cmd.AddCommand(newEgressHuntCmd(), newEgressIngestCmd(), newEgressFindingsCmd())
	return cmd
}

// egressHuntConfig is the hunt command's configuration.
type egressHuntConfig struct {
	rule      string
	prefix    string
	minBytes  int64
	format    string
	output    string
	maxLine   int
	inventory string
}

func (c egressHuntConfig) validate() error {
	var errs []error
	if c.rule != "exfil-volume" {
		errs = append(errs, fmt.Errorf("--rule %s: want exfil-volume", c.rule))
	}
	if _, err := egress.ParseFormat(c.format); err != nil {
		errs = append(errs, fmt.Errorf("--format: %w", err))
	}
	if c.output != "table" && c.output != "json" {
		errs = append(errs, fmt.Errorf("-o %s: want table or json", c.output))
	}
	if c.minBytes < 0 {
		errs = append(errs, fmt.Errorf("--min-bytes %d: negative", c.minBytes))
	}
	return errors.Join(errs...)
}

func newEgressHuntCmd() *cobra.Command {
	var cfg egressHuntConfig
	cmd := &cobra.Command{
		Use:   "hunt --rule exfil-volume FILES...",
		Short: "Run a hunting rule over telemetry files; nothing is stored",
		Long: `Run the exfil-volume hunting rule over telemetry files (- is standard
input) and print the rows the KQL query would:

  DeviceNetworkEvents
  | where DeviceName startswith "HOSP-IOT-" and ActionType == "ConnectionSuccess"
  | where RemoteIPType == "Public"     // else: the remote IP is public
  | summarize TotalBytesSent = sum(SentBytes), ConnectionCount = count()
      by DeviceName, RemoteUrl, Timestamp = bin(Timestamp, 1h)
  | where TotalBytesSent > 5000000 | order by TotalBytesSent desc

Ties are ordered by Timestamp, DeviceName and RemoteUrl ascending. With -o
json, one JSON object per line with the query's column names. Malformed
lines are counted on standard error with their first line numbers.

Zeek conn.log and some OCSF events carry addresses, not device names:
--inventory INV (JSON or CSV: name,addresses,class,segment) names such a
record's device by its local address; without it, or for an address no
device has, the address is the name. --prefix "" selects every device.

Exit codes: 0 the hunt ran (rows or not: a hunt is a query, not a
verdict), 2 bad flags or an unreadable or unrecognised file.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cfg.validate(); err != nil {
				return noVerdict(err)
			}
			opts := []egress.ScanOption{egress.WithFormat(egress.Format(cfg.format))}
			if cfg.maxLine > 0 {
				opts = append(opts, egress.WithMaxLineBytes(cfg.maxLine))
			}
			rule := egress.ExfilVolume{DevicePrefix: cfg.prefix, MinBytes: cfg.minBytes}
			if cfg.inventory != "" {
				inv, err := egress.ReadInventoryFile(cfg.inventory)
				if err != nil {
					return noVerdict(fmt.Errorf("--inventory: %w", err))
				}
				rule.Inventory = inv
			}
			res, err := egress.Hunt(cmd.Context(), args, rule, opts...)
			if err != nil {
				return noVerdict(err)
			}
			if res.Stats.Malformed > 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "wardgate: egress hunt:", res.Stats)
			}
			if cfg.output == "json" {
				return egress.WriteHuntJSON(cmd.OutOrStdout(), res.Rows)
			}
			return egress.WriteHuntTable(cmd.OutOrStdout(), res.Rows)
		},
	}
	cmd.Flags().StringVar(&cfg.rule, "rule", "exfil-volume", "hunting rule: exfil-volume")
	cmd.Flags().StringVar(&cfg.prefix, "prefix", egress.DefaultDevicePrefix, `device name prefix (case-insensitive, as KQL startswith); "" selects every device`)
	cmd.Flags().StringVar(&cfg.inventory, "inventory", "", "device inventory (JSON or CSV) naming the devices of records that carry only an address (Zeek, OCSF)")
	cmd.Flags().Int64Var(&cfg.minBytes, "min-bytes", egress.DefaultExfilBytes, "keep groups whose TotalBytesSent is above this")
	cmd.Flags().StringVar(&cfg.format, "format", string(egress.FormatAuto), "input format: "+egress.FormatNames())
	cmd.Flags().StringVarP(&cfg.output, "output", "o", "table", "output: table or json (JSON Lines)")
	cmd.Flags().IntVar(&cfg.maxLine, "max-line", egress.DefaultMaxLineBytes, "longest line accepted, in bytes; longer lines are malformed")
	return cmd
}

// State directory layout.
const (
	egressInventoryFile = gate.InventoryFile
	egressConfigFile    = gate.FleetConfigFile
)

// EgressIngestConfig configures `wardgate egress ingest`.
type EgressIngestConfig struct {
	Files     []string
	Inventory string
	Installs  string
	State     string
	// Store is where the store is when it is not State's SQLite (a
	// PostgreSQL DSN; --store, $WARDGATE_STORE). The inventory stays in
	// State.
	Store  string
	Format string
	// Output is text, or json: one JSON object per line, per input.
	Output string
}

// ingestResult is one JSON line of `egress ingest -o json`.
type ingestResult struct {
	File       string        `json:"file"`
	Kind       string        `json:"kind"` // telemetry or installations
	Added      bool          `json:"added"`
	Stats      *egress.Stats `json:"stats,omitempty"`
	Stored     int64         `json:"stored"`
	Unresolved int64         `json:"unresolved,omitempty"`
}

func (c EgressIngestConfig) report(out io.Writer, r ingestResult, text string) {
	if c.Output == "json" {
		b, _ := json.Marshal(r)
		fmt.Fprintln(out, string(b))
		return
	}
	fmt.Fprintln(out, text)
}

// Validate checks the configuration.
func (c EgressIngestConfig) Validate() error {
	var errs []error
	if c.State == "" {
		errs = append(errs, errors.New("--state is required"))
	}
	if c.Inventory == "" {
		if _, err := os.Stat(filepath.Join(c.State, egressInventoryFile)); err != nil {
			errs = append(errs, errors.New("--inventory is required on the first ingest"))
		}
	}
	if _, err := egress.ParseFormat(c.Format); err != nil {
		errs = append(errs, fmt.Errorf("--format: %w", err))
	}
	if c.Output != "" && c.Output != "text" && c.Output != "json" {
		errs = append(errs, fmt.Errorf("-o %s: want text or json", c.Output))
	}
	return errors.Join(errs...)
}

func newEgressIngestCmd() *cobra.Command {
	var cfg EgressIngestConfig
	cmd := &cobra.Command{
		Use:   "ingest FILES... --inventory INV --state DIR",
		Short: "Store telemetry and installation records for the detections",
		Long: `Parse telemetry files (Defender JSON Lines or CSV, Zeek conn.log TSV or
JSON, OCSF 4001 JSON; detected or --format) and store their events in the
store (DIR's SQLite, or the --store PostgreSQL database), mapping each event to an inventory device by name or
address. Ingestion is incremental: a file whose content was ingested
before is skipped. --installs imports installation records (JSON, JSON
Lines or CSV: device,digest,product,version,time). The inventory (JSON or
CSV: name,addresses,class,segment) is kept in DIR for later runs.

Exit codes: 0 ingested (malformed lines are reported, not fatal),
2 bad flags or an unreadable file.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Files = args
			if err := cfg.Validate(); err != nil {
				return noVerdict(err)
			}
			if err := RunEgressIngest(cmd.Context(), cfg, cmd.OutOrStdout()); err != nil {
				return noVerdict(err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cfg.Inventory, "inventory", "", "device inventory, JSON or CSV (required on the first ingest)")
	cmd.Flags().StringVar(&cfg.Installs, "installs", "", "installation records to import")
	addStateFlag(cmd, &cfg.State)
	addStoreFlag(cmd, &cfg.Store)
	cmd.Flags().StringVar(&cfg.Format, "format", string(egress.FormatAuto), "input format: "+egress.FormatNames())
	addOutputFlag(cmd, &cfg.Output)
	return cmd
}

// RunEgressIngest executes `wardgate egress ingest`.
func RunEgressIngest(ctx context.Context, cfg EgressIngestConfig, out io.Writer) error {
	if err := os.MkdirAll(cfg.State, 0o700); err != nil {
		return err
	}
	if cfg.Inventory != "" {
		inv, err := egress.ReadInventoryFile(cfg.Inventory)
		if err != nil {
			return err
		}
		b, _ := json.MarshalIndent(inv.Devices, "", "  ")
		if err := os.WriteFile(filepath.Join(cfg.State, egressInventoryFile), b, 0o600); err != nil {
			return err
		}
	}
	inv, err := loadInventory(cfg.State)
	if err != nil {
		return err
	}
	db, err := store.Open(ctx, storeLocation(cfg.State, cfg.Store))
	if err != nil {
		return err
	}
	defer db.Close()
	if cfg.Installs != "" {
		f, err := os.Open(cfg.Installs)
		if err != nil {
			return err
		}
		ins, err := egress.ReadInstallations(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", cfg.Installs, err)
		}
		if err := db.RecordInstallations(ctx, ins); err != nil {
			return err
		}
		cfg.report(out, ingestResult{File: cfg.Installs, Kind: "installations", Added: true, Stored: int64(len(ins))},
			fmt.Sprintf("%s: %d installation(s) recorded", cfg.Installs, len(ins)))
	}
	for _, name := range cfg.Files {
		if err := ingestFile(ctx, db, inv, name, egress.Format(cfg.Format), out, cfg); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

func ingestFile(ctx context.Context, db egress.EventStore, inv *egress.Inventory, name string, format egress.Format, out io.Writer, cfg EgressIngestConfig) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	var st egress.Stats
	var unresolved int64
	added, err := db.Ingest(ctx, egress.Source{Name: name, Digest: "sha256:" + hex.EncodeToString(h.Sum(nil))}, func(add func(*egress.Event) error) error {
		var err error
		st, err = egress.Scan(f, func(ev *egress.Event) error {
			d, ok := inv.Resolve(ev)
			if !ok {
				unresolved++
				return nil
			}
			ev.DeviceName = d.Name
			return add(ev)
		}, egress.WithFormat(format))
		return err
	})
	switch {
	case err != nil:
		return err
	case !added:
		cfg.report(out, ingestResult{File: name, Kind: "telemetry"}, fmt.Sprintf("%s: already ingested, skipped", name))
	default:
		cfg.report(out, ingestResult{File: name, Kind: "telemetry", Added: true, Stats: &st, Stored: st.Events - unresolved, Unresolved: unresolved},
			fmt.Sprintf("%s: %s; %d stored, %d not in the inventory", name, st, st.Events-unresolved, unresolved))
	}
	return nil
}

func loadInventory(state string) (*egress.Inventory, error) {
	f, err := os.Open(filepath.Join(state, egressInventoryFile))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return egress.ReadInventory(f)
}

// EgressFindingsConfig configures `wardgate egress findings`.
type EgressFindingsConfig struct {
	State string
	// Store is where the store is when it is not State's SQLite (a
	// PostgreSQL DSN); the inventory and configuration stay in State.
	Store     string
	Config    string
	Manifests []string
	// Trust is the trust configuration whose authorities must have signed
	// each manifest (required with Manifests).
	Trust  string
	Update string
	Output string
}

// Validate checks the configuration.
func (c EgressFindingsConfig) Validate() error {
	var errs []error
	if c.State == "" {
		errs = append(errs, errors.New("--state is required"))
	}
	if c.Output != "table" && c.Output != "json" {
		errs = append(errs, fmt.Errorf("-o %s: want table or json", c.Output))
	}
	if c.Update != "" {
		if h := strings.TrimPrefix(c.Update, "sha256:"); len(h) < 12 || strings.Trim(strings.ToLower(h), "0123456789abcdef") != "" {
			errs = append(errs, fmt.Errorf("--update %s: want sha256:<hex>, or the first 12 or more hex digits of it (as the findings table prints it)", c.Update))
		}
	}
	if len(c.Manifests) > 0 && c.Trust == "" {
		errs = append(errs, errors.New("--manifest needs --trust trust.yaml: a manifest is used only when the vendor's authorities signed it"))
	}
	return errors.Join(errs...)
}

func newEgressFindingsCmd() *cobra.Command {
	var cfg EgressFindingsConfig
	cmd := &cobra.Command{
		Use:   "findings --state DIR [--update DIGEST] [-o json|table]",
		Short: "Run the detections over the store: findings, risk state and blast radius per update",
		Long: `Run the detections (exfil-volume, volume-anomaly, new-destination,
fleet-correlation, beaconing, segmentation-violation, expected-egress,
fleet-change) over everything ingested into the store (DIR's SQLite, or
the --store PostgreSQL database; the inventory is DIR's) and print, per
update, its risk state (clean, suspicious, quarantined) and blast radius (devices
that installed it, which of them show the behaviour), then the findings
with an explanation each.

The configuration (JSON: baseline window, segments, per-class allowed
destinations and segments, thresholds) is --config, else DIR/config.json,
else the defaults. --manifest adds a vendor's egress manifest (a DSSE
envelope of an in-toto statement, predicate
https://wardgate.dev/egress-manifest/v1): it is used only when its
signature verifies against the authorities --trust gives the product the
manifest's update was installed as; an unsigned manifest, or one signed by
anyone else, is refused (exit 2).

A behaviour is attributed to an update only when the class's devices
running it show it and comparable devices of the class without it, over
the same period, do not; what devices with and without an update show
alike is a fleet-change notice about the class, attributed to no update.

Exit codes: 0 no finding but notices (for --update: the update is clean),
1 suspicious or quarantined findings (the update is suspicious or
quarantined), 2 bad input or, for --update, no device recorded installing
that digest.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cfg.Validate(); err != nil {
				return noVerdict(err)
			}
			return RunEgressFindings(cmd.Context(), cfg, cmd.OutOrStdout())
		},
	}
	addStateFlag(cmd, &cfg.State)
	addStoreFlag(cmd, &cfg.Store)
	cmd.Flags().StringVar(&cfg.Config, "config", "", "detection configuration (JSON); default DIR/config.json or built-in defaults")
	cmd.Flags().StringArrayVar(&cfg.Manifests, "manifest", nil, "vendor egress manifest attestation, signed (repeatable; needs --trust)")
	cmd.Flags().StringVar(&cfg.Trust, "trust", "", "trust configuration (YAML) whose authorities must have signed each --manifest")
	cmd.Flags().StringVar(&cfg.Update, "update", "", "only this update (sha256:<hex>): its risk state, blast radius and findings")
	cmd.Flags().StringVarP(&cfg.Output, "output", "o", "table", "output: table or json")
	return cmd
}

// RunEgressFindings executes `wardgate egress findings`; the error carries
// the exit code.
func RunEgressFindings(ctx context.Context, cfg EgressFindingsConfig, out io.Writer) error {
	inv, err := loadInventory(cfg.State)
	if err != nil {
		return noVerdict(err)
	}
	c, err := loadEgressConfig(cfg)
	if err != nil {
		return noVerdict(err)
	}
	db, err := store.Open(ctx, storeLocation(cfg.State, cfg.Store))
	if err != nil {
		return noVerdict(err)
	}
	defer db.Close()
	if len(cfg.Manifests) > 0 {
		ms, err := verifiedManifests(ctx, db, cfg)
		if err != nil {
			return noVerdict(err)
		}
		c.Manifests = append(c.Manifests, ms...)
	}
	rep, err := egress.AnalyzeStore(ctx, db, inv, c)
	if err != nil {
		return noVerdict(err)
	}
	if cfg.Update != "" {
		full, err := resolveUpdate(rep.Updates, cfg.Update)
		if err != nil {
			return noVerdict(err)
		}
		cfg.Update = full
		u, ok := rep.Risk(cfg.Update)
		if !ok {
			return noVerdict(fmt.Errorf("no device is recorded as having installed %s", cfg.Update))
		}
		var fs []egress.Finding
		for _, f := range rep.Findings {
			if f.Update == cfg.Update {
				fs = append(fs, f)
			}
		}
		rep.Updates, rep.Findings = []egress.UpdateRisk{u}, fs
	}
	if rep.Findings == nil {
		rep.Findings = []egress.Finding{}
	}
	if cfg.Output == "json" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return noVerdict(err)
		}
		fmt.Fprintln(out, string(b))
	} else {
		writeFindingsTable(out, rep)
	}
	for _, f := range rep.Findings {
		if f.Severity != egress.SeverityNotice {
			return verdict(ExitFail)
		}
	}
	return nil
}

func loadEgressConfig(cfg EgressFindingsConfig) (egress.Config, error) {
	path := cfg.Config
	if path == "" {
		if p := filepath.Join(cfg.State, egressConfigFile); fileExists(p) {
			path = p
		}
	}
	c := egress.Config{}.WithDefaults()
	if path != "" {
		var err error
		if c, err = egress.ReadConfigFile(path); err != nil {
			return c, err
		}
	}
	return c, nil
}

// verifiedManifests reads each --manifest and keeps it only if the
// authorities the trust configuration gives its product signed it; the
// product is what devices installed the manifest's update as.
func verifiedManifests(ctx context.Context, db store.Installations, cfg EgressFindingsConfig) ([]egress.EgressManifest, error) {
	tc, err := trust.Load(cfg.Trust)
	if err != nil {
		return nil, err
	}
	ins, err := db.Installations(ctx)
	if err != nil {
		return nil, err
	}
	products := map[string][]string{}
	for _, in := range ins {
		if !slices.Contains(products[in.Digest], in.Product) {
			products[in.Digest] = append(products[in.Digest], in.Product)
		}
	}
	var out []egress.EgressManifest
	for _, m := range cfg.Manifests {
		sig, err := verify.LoadSignature(m)
		if err != nil {
			return nil, err
		}
		ms, err := gate.VerifyEgressManifest(ctx, tc, sig, func(d string) []string { return products[d] })
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
	}
	return out, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func writeFindingsTable(w io.Writer, rep egress.Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "UPDATE\tPRODUCT\tVERSION\tSTATE\tINSTALLED\tAFFECTED\tCODES")
	for _, u := range rep.Updates {
		codes := make([]string, len(u.Codes))
		for i, c := range u.Codes {
			codes[i] = string(c)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d %s\t%s\n", shortDigest(u.Digest), u.Product, u.Version, u.State, len(u.Installed), len(u.Affected), strings.Join(u.Affected, ","), strings.Join(codes, ","))
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d finding(s)\n", len(rep.Findings))
	for _, f := range rep.Findings {
		fmt.Fprintf(w, "\n[%s] %s  update %s %s  %s -> %s  first %s\n  %s\n", f.Severity, f.Code, shortDigest(f.Update), f.Version,
			strings.Join(f.Devices, ","), strings.Join(f.Destinations, ","), f.FirstSeen.Format(time.RFC3339), f.Explanation)
	}
}

// resolveUpdate finds the update a --update digest or digest prefix names
// (the table prints sha256: and 12 hex digits).
func resolveUpdate(us []egress.UpdateRisk, arg string) (string, error) {
	want := "sha256:" + strings.ToLower(strings.TrimPrefix(arg, "sha256:"))
	var found []string
	for _, u := range us {
		if strings.HasPrefix(u.Digest, want) {
			found = append(found, u.Digest)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("no device is recorded as having installed %s", arg)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("--update %s names %d updates (%s): give more of the digest", arg, len(found), strings.Join(found, ", "))
}

func shortDigest(d string) string {
	if d == "" {
		return "-"
	}
	if len(d) > 19 {
		return d[:19]
	}
	return d
}
