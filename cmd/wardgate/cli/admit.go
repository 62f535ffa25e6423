package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"

	"github.com/wardgate/wardgate/attest"
	"github.com/wardgate/wardgate/evidence"
	"github.com/wardgate/wardgate/firmware"
	"github.com/wardgate/wardgate/gate"
	"github.com/wardgate/wardgate/policy"
	"github.com/wardgate/wardgate/sbom"
	"github.com/wardgate/wardgate/trust"
	"github.com/wardgate/wardgate/tuf"
	"github.com/wardgate/wardgate/verify"
)

// tufDir is where the vendors' trusted TUF metadata is kept in the state
// directory.
const tufDir = "tuf"

type admitConfig struct {
	config           string
	signatures       []string
	bundles          []string
	sbomPath         string
	vendor, product  string
	version          string
	deviceClass      string
	deviceID         string
	installedVersion string
	segment          string
	policyDir        string
	policyKey        string
	logFlags         logFlags
	noLog            bool
	noScan           bool
	scanUnsigned     bool
	unpack           firmware.Limits
	attach           bool
	at               string
	output           string
	tufRepo          string
}

// NewAdmitCmd is `wardgate admit`: the gate decision for one update.
func NewAdmitCmd() *cobra.Command {
	var cfg admitConfig
	cmd := &cobra.Command{
		Use:   "admit SOURCE --config trust.yaml --vendor V --product P [--version X] [--tuf-repo DIR]",
		Short: "Decide whether an update may be admitted: verify, SBOM, diff, drift, policy; record and sign the verdict",
		Long: `Evaluate one update: verify its signatures against the trust configuration,
read the vendor's SBOM and scan the artifact with syft, diff against the
previous admitted release of the product, check the vendor's SBOM against
what is inside, evaluate policy, record the release in the ledger and sign
the verdict into the log (STATE/wardgate.db, key STATE/signing.key, created on
first use with the password in $` + attest.PasswordEnv + `).

SOURCE is a firmware file, or an image (oci-dir:PATH, oci-archive:PATH, or
a registry reference). With --device-class (and --device-id,
--installed-version) the decision is for one device.

A vendor that pins a TUF root in the trust configuration (vendors.V.tuf)
says in its signed TUF metadata which file is which version: --tuf-repo DIR
is a local copy of its repository (DIR/metadata/), read offline, else the
mirror the trust configuration names. The target is PRODUCT/FILENAME, the
version is the target's (a --version that disagrees is denied), and the
metadata trusted so far is kept in STATE/tuf/, so a repository rolled back
or frozen is refused in later runs too.

Exit codes: 0 allow, 1 deny, 2 could not decide (a deny with reason
could-not-evaluate), 3 rollout-hold: the update is allowed but the device
(--device) is outside its current rollout ring; -o json gives hold and
retryAfter, the earliest time to ask again (absent once the rollout is
stopped).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(cfg.output); err != nil {
				return noVerdict(err)
			}
			out, err := runAdmit(cmd.Context(), args[0], cfg, cmd.ErrOrStderr())
			return printAdmit(cmd.OutOrStdout(), cmd.ErrOrStderr(), cfg.output, out, err, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.config, "config", "", "trust configuration (YAML)")
	f.StringArrayVar(&cfg.signatures, "signature", nil, "signature, bundle or attestation file; repeatable")
	f.StringArrayVar(&cfg.bundles, "bundle", nil, "same as --signature")
	f.StringVar(&cfg.sbomPath, "sbom", "", "the vendor's SBOM (CycloneDX or SPDX)")
	f.StringVar(&cfg.vendor, "vendor", "", "vendor, as in the trust configuration")
	f.StringVar(&cfg.product, "product", "", "product, as in the trust configuration")
	f.StringVar(&cfg.version, "version", "", "the release's version (optional with TUF metadata: the target's)")
	f.StringVar(&cfg.tufRepo, "tuf-repo", "", "the vendor's TUF repository, a local directory (DIR/metadata/...)")
	f.StringVar(&cfg.deviceClass, "device-class", "", "the device asking: its class")
	f.StringVar(&cfg.deviceID, "device", "", "the device asking: its ID")
	f.StringVar(&cfg.installedVersion, "installed-version", "", "the device asking: the version it runs now")
	f.StringVar(&cfg.segment, "segment", "", "the device asking: its network segment")
	f.StringVar(&cfg.policyDir, "policy", "", "extra policies: a directory of .rego files or an OPA bundle (.tar.gz)")
	f.StringVar(&cfg.policyKey, "policy-key", "", "public key (PEM) the --policy bundle must be signed with (opa build --signing-key); without it a signed bundle is refused")
	f.BoolVar(&cfg.noLog, "no-log", false, "do not sign and log the verdict (nothing is recorded for auditors)")
	f.BoolVar(&cfg.attach, "attach", false, "for a registry image: store the signed verdict next to it (as cosign stores attestations)")
	f.BoolVar(&cfg.noScan, "no-scan", false, "do not scan the artifact with syft (use the vendor SBOM as is; no drift check)")
	f.BoolVar(&cfg.scanUnsigned, "scan-unsigned", false, "also unpack and scan an artifact whose signatures did not verify (under the same limits)")
	f.Int64Var(&cfg.unpack.MaxBytes, "max-unpack-bytes", firmware.DefaultMaxBytes, "firmware unpacking: most bytes written (in STATE/tmp)")
	f.IntVar(&cfg.unpack.MaxFiles, "max-unpack-files", firmware.DefaultMaxFiles, "firmware unpacking: most files, directories and links")
	f.IntVar(&cfg.unpack.MaxDepth, "max-unpack-depth", firmware.DefaultMaxDepth, "firmware unpacking: most formats nested (a tar.gz is 2)")
	f.IntVar(&cfg.unpack.MaxRatio, "max-unpack-ratio", firmware.DefaultMaxRatio, "firmware unpacking: most bytes written per byte of input (past 16 MiB)")
	f.StringVar(&cfg.at, "evaluation-time", "", "evaluate as of this time (RFC 3339), to replay a past decision")
	cfg.logFlags.register(cmd)
	cfg.logFlags.registerKeyCreation(cmd)
	addOutputFlag(cmd, &cfg.output)
	return cmd
}

// admitOutput is the JSON form of a decision.
type admitOutput struct {
	Allow     bool              `json:"allow"`
	Evaluated bool              `json:"evaluated"`
	Artifact  evidence.Artifact `json:"artifact"`
	Decision  policy.Decision   `json:"decision"`
	LogEntry  *gate.LogRef      `json:"logEntry,omitempty"`
	// Hold and RetryAfter: a rollout-hold (docs/rollout.md).
	Hold       *gate.RolloutHold  `json:"hold,omitempty"`
	RetryAfter *time.Time         `json:"retryAfter,omitempty"`
	Evidence   *evidence.Evidence `json:"evidence,omitempty"`
	Error      string             `json:"error,omitempty"`
}

func runAdmit(ctx context.Context, source string, cfg admitConfig, stderr io.Writer) (*gate.Outcome, error) {
	fail := func(err error) (*gate.Outcome, error) {
		return &gate.Outcome{Decision: policy.CouldNotEvaluate(err)}, err
	}
	if cfg.config == "" {
		return fail(errors.New("--config is required: the trust configuration"))
	}
	// A decision for one device needs the device: checked before anything
	// is loaded, scanned or logged.
	if (cfg.deviceClass != "" || cfg.installedVersion != "" || cfg.segment != "") && cfg.deviceID == "" {
		return fail(errors.New("--device-class, --installed-version and --segment describe one device: give its ID with --device"))
	}
	// A trust configuration that cannot be read is reported before the
	// state directory is made (gate.Open reads it again, with the policies).
	if _, err := trust.Load(cfg.config); err != nil {
		return fail(err)
	}
	if err := os.MkdirAll(cfg.logFlags.state, 0o700); err != nil {
		return fail(fmt.Errorf("state directory: %w", err))
	}
	// Firmware is unpacked in STATE/tmp, never in os.TempDir.
	work := filepath.Join(cfg.logFlags.state, "tmp")
	if err := os.MkdirAll(work, 0o700); err != nil {
		return fail(fmt.Errorf("state directory: %w", err))
	}
	gopts := []gate.Option{gate.WithVersion(Version),
		gate.WithGenerateOptions(sbom.WithTempDir(work), sbom.WithUnpackLimits(cfg.unpack)),
		gate.WithTUFState(tuf.NewDirState(filepath.Join(cfg.logFlags.state, tufDir)))}
	if cfg.scanUnsigned {
		gopts = append(gopts, gate.WithUnsignedScanUnsafe())
	}
	manifests, err := gate.NewSBOMStore(filepath.Join(cfg.logFlags.state, "manifests"))
	if err != nil {
		return fail(err)
	}
	gopts = append(gopts, gate.WithManifestStore(manifests))
	if cfg.noScan {
		gopts = append(gopts, gate.WithoutSBOMGeneration())
	}
	if cfg.at != "" {
		t, err := parseTimeFlag("evaluation-time", cfg.at)
		if err != nil {
			return fail(err)
		}
		gopts = append(gopts, gate.WithClock(func() time.Time { return t }))
	}
	p, err := gate.Open(ctx, gate.Config{State: cfg.logFlags.state, Store: cfg.logFlags.store, Trust: cfg.config, Policy: cfg.policyDir, PolicyKey: cfg.policyKey,
		SigningKey: cfg.logFlags.key, Origin: cfg.logFlags.origin, NoLog: cfg.noLog, UnencryptedKey: cfg.logFlags.unencryptedKey,
		KeyCreated: keyCreated(stderr), Rollout: admitRollout(cfg), TrustOptions: func(tc *trust.Config) ([]gate.Option, error) { return vulnerabilityOptions(tc, cfg.logFlags.state) }}, gopts...)
	if err != nil {
		return fail(err)
	}
	defer p.Close()
	u := gate.Update{Source: source, Kind: evidence.KindBlob, Vendor: cfg.vendor, Product: cfg.product, Version: cfg.version}
	if isImageRef(source) {
		u.Kind = evidence.KindImage
	}
	if cfg.tufRepo != "" {
		if st, err := os.Stat(filepath.Join(cfg.tufRepo, "metadata")); err != nil || !st.IsDir() {
			return fail(fmt.Errorf("--tuf-repo %s: want a TUF repository directory with a metadata/ directory in it", cfg.tufRepo))
		}
		u.TUF = tuf.Dir(cfg.tufRepo)
	}
	for _, p := range append(cfg.signatures, cfg.bundles...) {
		s, err := verify.LoadSignature(p)
		if err != nil {
			return fail(err)
		}
		u.Signatures = append(u.Signatures, s)
	}
	if cfg.sbomPath != "" {
		b, err := verify.ReadFileLimited(cfg.sbomPath, sbom.MaxDocumentSize)
		if err != nil {
			return fail(fmt.Errorf("vendor SBOM: %w", err))
		}
		u.VendorSBOM = b
	}
	if cfg.deviceClass != "" || cfg.deviceID != "" || cfg.installedVersion != "" || cfg.segment != "" {
		u.Device = &evidence.Device{ID: cfg.deviceID, Class: cfg.deviceClass, InstalledVersion: cfg.installedVersion, Segment: cfg.segment}
	}
	out, err := p.Gate().Evaluate(ctx, u)
	if err == nil && cfg.attach {
		err = attachVerdict(ctx, u, out)
	}
	return out, err
}

// attachVerdict stores the signed verdict in the registry next to the image.
func attachVerdict(ctx context.Context, u gate.Update, out *gate.Outcome) error {
	if u.Kind != evidence.KindImage || strings.HasPrefix(u.Source, verify.OCIDirPrefix) || strings.HasPrefix(u.Source, verify.OCIArchivePrefix) {
		return errors.New("--attach needs a registry image reference")
	}
	if out.Envelope == nil {
		return errors.New("--attach needs the signed verdict: drop --no-log")
	}
	ref := strings.TrimPrefix(u.Source, "registry:")
	repo, _, _ := strings.Cut(ref, "@")
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i] // drop a tag
	}
	d, err := name.NewDigest(repo + "@" + out.Evidence.Artifact.Digest)
	if err != nil {
		return fmt.Errorf("--attach: %w", err)
	}
	return attest.Attach(ctx, d, out.Envelope)
}

// isImageRef tells an image reference from a file path.
func isImageRef(s string) bool {
	if strings.HasPrefix(s, verify.OCIDirPrefix) || strings.HasPrefix(s, verify.OCIArchivePrefix) || strings.HasPrefix(s, "registry:") {
		return true
	}
	if _, err := os.Lstat(s); err == nil {
		return false
	}
	return strings.Contains(s, "/") && (strings.Contains(s, "@sha256:") || strings.Contains(s, ":"))
}

// keyCreated tells the user the service key was created on first use.
func keyCreated(stderr io.Writer) func(key, pub string, encrypted bool) {
	return func(key, pub string, encrypted bool) {
		if encrypted {
			fmt.Fprintf(stderr, "wardgate: created the service signing key %s, encrypted with $%s (public key %s)\n", key, attest.PasswordEnv, pub)
		} else {
			fmt.Fprintf(stderr, "wardgate: created the service signing key %s WITHOUT a password (--unencrypted-key): anyone who can read it can sign verdicts (public key %s)\n", key, pub)
		}
	}
}

func printAdmit(w, stderr io.Writer, output string, out *gate.Outcome, err error, cfg admitConfig) error {
	ao := admitOutput{Allow: out.Decision.Allow && out.Evaluated && err == nil, Evaluated: out.Evaluated, Artifact: out.Evidence.Artifact, Decision: out.Decision, LogEntry: out.LogEntry, Hold: out.Hold, RetryAfter: out.RetryAfter}
	if out.Evidence.Schema != "" {
		ev := out.Evidence
		ao.Evidence = &ev
	}
	if err != nil {
		ao.Error = err.Error()
	}
	if output == "json" {
		b, merr := json.Marshal(ao)
		if merr != nil {
			return noVerdict(merr)
		}
		fmt.Fprintln(w, string(b))
	} else {
		// Before the pipeline ran (a bad configuration) there is no
		// evidence: the release is named as the flags name it.
		a := out.Evidence.Artifact
		if a.Vendor == "" && a.Product == "" {
			a.Vendor, a.Product, a.Version = cfg.vendor, cfg.product, cfg.version
		}
		name := strings.TrimSpace(a.Vendor + "/" + a.Product + " " + a.Version)
		if a.Vendor == "" && a.Product == "" {
			name = "the update"
		}
		if a.Digest != "" {
			name += " (" + a.Digest + ")"
		}
		switch {
		case ao.Allow:
			fmt.Fprintf(w, "ALLOW  %s\n", name)
		case err != nil || !out.Evaluated:
			fmt.Fprintf(w, "DENY   %s: could not evaluate\n", name)
		default:
			fmt.Fprintf(w, "DENY   %s\n", name)
		}
		for _, v := range out.Decision.Violations {
			fmt.Fprintf(w, "  [%s] %s\n", v.Code, v.Message)
		}
		for _, v := range out.Decision.Warnings {
			fmt.Fprintf(w, "  warning [%s] %s\n", v.Code, v.Message)
		}
		if v := out.Evidence.Vulnerabilities; v != nil {
			fmt.Fprintf(w, "  %s\n", vulnerabilityLine(v))
		}
		if out.LogEntry != nil {
			fmt.Fprintf(w, "  verdict signed into log %s at index %d\n", out.LogEntry.Origin, out.LogEntry.Index)
		}
	}
	switch {
	case err != nil || !out.Evaluated || slices.Contains(out.Decision.Codes(), policy.CodeCouldNotEvaluate):
		return verdict(ExitNoVerdict)
	case isHold(out):
		return verdict(ExitHold)
	case !out.Decision.Allow:
		return verdict(ExitFail)
	}
	return nil
}

// isHold reports a rollout-hold: the only violation is rollout-hold (the
// gate holds only an update every rule allowed).
func isHold(out *gate.Outcome) bool {
	return out.Hold != nil && slices.Equal(out.Decision.Codes(), []policy.Code{policy.CodeRolloutHold})
}
