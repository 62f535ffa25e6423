package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/wardgate/wardgate/attest"
	"github.com/wardgate/wardgate/console"
	"github.com/wardgate/wardgate/console/adapter"
	"github.com/wardgate/wardgate/egress/bus"
	"github.com/wardgate/wardgate/firmware"
	"github.com/wardgate/wardgate/gate"
	"github.com/wardgate/wardgate/kube"
	"github.com/wardgate/wardgate/rollout"
	"github.com/wardgate/wardgate/sbom"
	"github.com/wardgate/wardgate/server"
	"github.com/wardgate/wardgate/store"
	"github.com/wardgate/wardgate/trust"
	"github.com/wardgate/wardgate/tuf"
)

// Environment variables read by `wardgate serve` (a flag given on the
// command line wins over its variable, which wins over the file).
const (
	ServeConfigEnv = "WARDGATE_SERVE_CONFIG"
	ListenEnv      = "WARDGATE_LISTEN"
	TLSCertEnv     = "WARDGATE_TLS_CERT"
	TLSKeyEnv      = "WARDGATE_TLS_KEY"
	ClientCAEnv    = "WARDGATE_CLIENT_CA"
	RegistriesEnv  = "WARDGATE_REGISTRIES"
	LogLevelEnv    = "WARDGATE_LOG_LEVEL"
)

// KubernetesListenEnv is --kubernetes-listen (docs/kubernetes.md).
const KubernetesListenEnv = "WARDGATE_KUBERNETES_LISTEN"

// DefaultListen is loopback only: exposing the gate is a decision.
const DefaultListen = "127.0.0.1:8080"

// ServeFile is the server configuration file (YAML), every field optional.
type ServeFile struct {
	Listen     string   `yaml:"listen"`
	TLSCert    string   `yaml:"tls_cert"`
	TLSKey     string   `yaml:"tls_key"`
	ClientCA   string   `yaml:"client_ca"`
	Registries []string `yaml:"registries"`
	LogLevel   string   `yaml:"log_level"`
	Scan       *bool    `yaml:"scan"`
	RiskTTL    string   `yaml:"risk_cache_ttl"`
	Telemetry  struct {
		NATS            string `yaml:"nats"`
		MaxMessageBytes int    `yaml:"max_message_bytes"`
		// Settings of the stream when wardgate creates it (absent).
		Replicas *int   `yaml:"replicas"`
		MaxBytes string `yaml:"max_bytes"`
		MaxAge   string `yaml:"max_age"`
	} `yaml:"telemetry"`
	Limits struct {
		MaxUploadBytes    int64  `yaml:"max_upload_bytes"`
		MaxTelemetryBytes int64  `yaml:"max_telemetry_bytes"`
		MaxJSONBytes      int64  `yaml:"max_json_bytes"`
		MaxSignatureParts int    `yaml:"max_signature_parts"`
		MaxSignatureBytes int64  `yaml:"max_signature_bytes"`
		MaxSBOMBytes      int64  `yaml:"max_sbom_bytes"`
		MaxPartsBytes     int64  `yaml:"max_parts_bytes"`
		Uploads           int    `yaml:"uploads"`
		Evaluations       int    `yaml:"evaluations"`
		EvaluateWait      string `yaml:"evaluate_wait"`
		Exports           int    `yaml:"exports"`
		ExportWait        string `yaml:"export_wait"`
		EvaluateTimeout   string `yaml:"evaluate_timeout"`
		AdmitTimeout      string `yaml:"admit_timeout"`
		TelemetryTimeout  string `yaml:"telemetry_timeout"`
		ExportTimeout     string `yaml:"export_timeout"`
		UploadTimeout     string `yaml:"upload_timeout"`
		ReadTimeout       string `yaml:"read_timeout"`
		MinBodyRate       int64  `yaml:"min_body_rate"`
		BodyRateGrace     string `yaml:"body_rate_grace"`
		ReadHeaderTimeout string `yaml:"read_header_timeout"`
		IdleTimeout       string `yaml:"idle_timeout"`
		MaxConnsPerClient int    `yaml:"max_conns_per_client"`
		MaxConns          int    `yaml:"max_conns"`
		MinFreeBytes      int64  `yaml:"min_free_bytes"`
		MaxJSONDepth      int    `yaml:"max_json_depth"`
		MaxHeaderBytes    int    `yaml:"max_header_bytes"`
		MaxUnpackBytes    int64  `yaml:"max_unpack_bytes"`
		MaxUnpackFiles    int    `yaml:"max_unpack_files"`
		MaxUnpackDepth    int    `yaml:"max_unpack_depth"`
		MaxUnpackRatio    int    `yaml:"max_unpack_ratio"`
	} `yaml:"limits"`
	RateLimits map[string]server.RateLimit `yaml:"rate_limits"`

	// ScanUnsigned also unpacks and scans artifacts whose signatures did
	// not verify (under the same limits); off by default.
	ScanUnsigned *bool `yaml:"scan_unsigned"`

	// RiskMaxStaleness and RiskFreshWait: see gate.WithMaxStaleness and
	// gate.WithFreshWait.
	RiskMaxStaleness string `yaml:"risk_max_staleness"`
	RiskFreshWait    string `yaml:"risk_fresh_wait"`

	Kubernetes struct {
		Listen   string `yaml:"listen"`
		ClientCA string `yaml:"client_ca"`
		Deadline string `yaml:"deadline"`
		TagTTL   string `yaml:"tag_ttl"`
	} `yaml:"kubernetes"`
}

// ServeConfig configures `wardgate serve`.
type ServeConfig struct {
	Trust      string // trust configuration (required)
	Policy     string // extra policies: a directory or an OPA bundle
	PolicyKey  string // public key (PEM) the Policy bundle must be signed with
	State      string
	Store      string // a store outside State (a PostgreSQL DSN); empty: State's SQLite
	SigningKey string
	Origin     string
	File       string // server configuration file
	Listen     string
	TLSCert    string
	TLSKey     string
	ClientCA   string
	Registries []string
	LogLevel   string
	// Output is how the server writes its log lines: json (the default:
	// one JSON object a line, for machines) or text (slog's key=value).
	Output     string
	NoScan     bool
	RiskTTL    time.Duration
	Limits     server.Limits
	RateLimits map[server.Role]server.RateLimit
	// ScanUnsigned scans artifacts whose signatures did not verify.
	ScanUnsigned bool
	// Unpack bounds firmware unpacking (zero fields take the defaults).
	Unpack firmware.Limits
	// KubernetesListen is the address of the admission webhook's TLS
	// listener (empty: none); KubernetesClientCA the CA of the API
	// server's client certificate; KubernetesDeadline the time a review is
	// answered within (0: 8 s).
	KubernetesListen   string
	KubernetesClientCA string
	KubernetesDeadline time.Duration
	// KubernetesTagTTL keeps each tag's resolution this long (0: the
	// registry is asked on every review).
	KubernetesTagTTL time.Duration
	// KubernetesReady, when set, is called with the webhook listener's
	// address once it listens.
	KubernetesReady func(addr string)
	// Ready, when set, is called with the address once the server listens
	// (tests and scripts use port 0).
	Ready func(addr string)

	// RiskMaxStaleness and RiskFreshWait tune the fleet risk cache (zero:
	// the defaults).
	RiskMaxStaleness time.Duration
	RiskFreshWait    time.Duration

	// UnencryptedKey lets serve create the service key without a
	// password (--unencrypted-key).
	UnencryptedKey bool
	// Telemetry is the NATS server telemetry is consumed from
	// (nats://HOST:PORT; empty: none, POST /v1/telemetry only);
	// TelemetryMaxBytes the largest message ingested (0: 1 MiB).
	Telemetry         string
	TelemetryMaxBytes int
	// TelemetryStream holds the settings of the streams serve creates when
	// they are absent (nil: 1 replica, no limits); an existing stream is
	// used as it is.
	TelemetryStream *bus.StreamSettings
}

// Validate checks the configuration.
func (c *ServeConfig) Validate() error {
	var errs []error
	if c.Trust == "" {
		errs = append(errs, errors.New("--config is required: the trust configuration"))
	}
	if c.State == "" {
		errs = append(errs, errors.New("--state is required"))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key go together"))
	}
	if c.ClientCA != "" && c.TLSCert == "" {
		errs = append(errs, errors.New("--client-ca needs --tls-cert and --tls-key (mutual TLS)"))
	}
	if c.KubernetesListen != "" && c.TLSCert == "" {
		errs = append(errs, errors.New("--kubernetes-listen needs --tls-cert and --tls-key: the API server calls webhooks over TLS only"))
	}
	if c.KubernetesClientCA != "" && c.KubernetesListen == "" {
		errs = append(errs, errors.New("--kubernetes-client-ca needs --kubernetes-listen"))
	}
	if c.KubernetesDeadline < 0 || c.KubernetesDeadline > 30*time.Second {
		errs = append(errs, fmt.Errorf("--kubernetes-deadline %s: want at most 30s, below the webhook's timeoutSeconds", c.KubernetesDeadline))
	}
	if c.KubernetesTagTTL < 0 || c.KubernetesTagTTL > kube.MaxTagTTL {
		errs = append(errs, fmt.Errorf("--kubernetes-tag-ttl %s: want from 0 to %s (a moved tag is seen at most this late)", c.KubernetesTagTTL, kube.MaxTagTTL))
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	if err := c.Unpack.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Output != "" && c.Output != "json" && c.Output != "text" {
		errs = append(errs, fmt.Errorf("-o %s: want json or text", c.Output))
	}
	if c.RiskTTL <= 0 {
		errs = append(errs, fmt.Errorf("risk cache TTL %s: must be positive", c.RiskTTL))
	}
	errs = append(errs, c.validateTelemetry())
	return errors.Join(errs...)
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// NewServeCmd is `wardgate serve`.
func NewServeCmd() *cobra.Command {
	cfg := ServeConfig{}
	var lf logFlags
	var demo bool
	var demoFixtures string
	cmd := &cobra.Command{
		Use:   "serve --config trust.yaml [--state DIR]",
		Short: "Run the admission gate's HTTP API (docs/serve.md)",
		Long: `Serve the HTTP API update servers, CI, sensors and auditors call
(docs/openapi.yaml): evaluate updates once (POST /v1/updates), admit
devices many times (POST /v1/admissions), ingest telemetry (POST
/v1/telemetry), and read decisions, findings, the log and evidence packs.

Everything lives in the state directory: the store (the release ledger,
the evaluated updates, the verdict log, telemetry and installations, the
API tokens and audit trail; create tokens with wardgate token create), the
log's key and the fleet inventory. Further settings come from a
YAML file (--server-config or $` + ServeConfigEnv + `) and environment variables
($` + ListenEnv + `, $` + TLSCertEnv + `, $` + TLSKeyEnv + `, $` + ClientCAEnv + `, $` + RegistriesEnv + `,
$` + LogLevelEnv + `); flags win over variables, variables over the file.

The web console (docs/console.md) is served under /ui on the same
listener: auditor and admin tokens sign in there. --demo loads the demo
story into a temporary state directory and serves it (make console).

SIGHUP reloads the trust configuration, the policies (a --policy bundle
is verified again with --policy-key), the fleet inventory and the
detection configuration without dropping requests; SIGTERM or SIGINT shut
down gracefully.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.State, cfg.SigningKey, cfg.Origin, cfg.UnencryptedKey, cfg.Store = lf.state, lf.key, lf.origin, lf.unencryptedKey, lf.store
			if err := cfg.resolve(cmd); err != nil {
				return noVerdict(err)
			}
			if demo {
				if cmd.Flags().Changed("config") || cmd.Flags().Changed("state") || cmd.Flags().Changed("signing-key") {
					return noVerdict(errors.New("--demo makes its own trust configuration, state directory and key; drop --config, --state and --signing-key"))
				}
				cfg.Trust, cfg.State, cfg.SigningKey = "demo", "demo", ""
				if err := cfg.Validate(); err != nil {
					return noVerdict(err)
				}
				if err := RunServeDemo(cmd.Context(), DemoConfig{Fixtures: demoFixtures, Serve: cfg}, cmd.OutOrStdout(), cmd.ErrOrStderr()); err != nil {
					return noVerdict(err)
				}
				return nil
			}
			if err := cfg.Validate(); err != nil {
				return noVerdict(err)
			}
			if err := RunServe(cmd.Context(), cfg, cmd.ErrOrStderr()); err != nil {
				return noVerdict(err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Trust, "config", "", "trust configuration (YAML), required")
	f.StringVar(&cfg.Policy, "policy", "", "extra policies: a directory of .rego files or an OPA bundle (.tar.gz)")
	f.StringVar(&cfg.PolicyKey, "policy-key", "", "public key (PEM) the --policy bundle must be signed with (opa build --signing-key); without it a signed bundle is refused")
	f.StringVar(&cfg.File, "server-config", "", "server configuration file (YAML); $"+ServeConfigEnv)
	f.StringVar(&cfg.Listen, "listen", DefaultListen, "address to listen on; $"+ListenEnv)
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "TLS certificate (PEM); $"+TLSCertEnv)
	f.StringVar(&cfg.TLSKey, "tls-key", "", "TLS private key (PEM); $"+TLSKeyEnv)
	f.StringVar(&cfg.ClientCA, "client-ca", "", "require client certificates signed by this CA (mutual TLS); $"+ClientCAEnv)
	f.StringSliceVar(&cfg.Registries, "registry", nil, "registry POST /v1/updates may fetch images from (host[:port]); repeatable; $"+RegistriesEnv)
	f.StringVar(&cfg.KubernetesListen, "kubernetes-listen", "", "serve the Kubernetes admission webhook (docs/kubernetes.md) on this address, over TLS with --tls-cert and --tls-key; $"+KubernetesListenEnv)
	f.StringVar(&cfg.KubernetesClientCA, "kubernetes-client-ca", "", "on the webhook listener, a client certificate signed by this CA (the API server's) stands for the kubernetes role")
	f.DurationVar(&cfg.KubernetesTagTTL, "kubernetes-tag-ttl", 0, "keep each image tag's resolution to a digest this long (at most 5m): reviews within it do not ask the registry, and a moved tag is seen at most this late; 0 asks on every review")
	f.DurationVar(&cfg.KubernetesDeadline, "kubernetes-deadline", 8*time.Second, "answer each admission review within this (below the webhook's timeoutSeconds, 10 s by default); an image not decided by then is refused")
	f.StringVar(&cfg.LogLevel, "log-level", "info", "debug, info, warn or error; $"+LogLevelEnv)
	f.StringVarP(&cfg.Output, "output", "o", "json", "log lines on standard error: json (one object a line) or text")
	f.BoolVar(&cfg.NoScan, "no-scan", false, "do not scan artifacts with syft (use the vendor SBOM as is; no drift check)")
	f.BoolVar(&cfg.ScanUnsigned, "scan-unsigned", false, "also unpack and scan an artifact whose signatures did not verify (under the same limits)")
	f.Int64Var(&cfg.Unpack.MaxBytes, "max-unpack-bytes", firmware.DefaultMaxBytes, "firmware unpacking: most bytes written (in STATE/tmp)")
	f.IntVar(&cfg.Unpack.MaxFiles, "max-unpack-files", firmware.DefaultMaxFiles, "firmware unpacking: most files, directories and links")
	f.IntVar(&cfg.Unpack.MaxDepth, "max-unpack-depth", firmware.DefaultMaxDepth, "firmware unpacking: most formats nested (a tar.gz is 2)")
	f.IntVar(&cfg.Unpack.MaxRatio, "max-unpack-ratio", firmware.DefaultMaxRatio, "firmware unpacking: most bytes written per byte of input (past 16 MiB)")
	f.DurationVar(&cfg.RiskTTL, "risk-cache-ttl", 5*time.Second, "age after which a fleet analysis is refreshed in the background (answers use it for at most twice this; telemetry posted to the API invalidates it at once)")
	f.StringVar(&cfg.Telemetry, "telemetry", "", "also consume telemetry from NATS JetStream at nats://HOST:PORT (docs/serve.md, Telemetry bus); $"+TelemetryEnv)
	registerTelemetryStreamFlags(cmd)
	f.BoolVar(&demo, "demo", false, "load the demo story (scripts/demo.sh) into a temporary state directory and serve it, with the web console, until interrupted; run from a wardgate checkout")
	f.StringVar(&demoFixtures, "demo-fixtures", "fixtures", "the repository's fixtures directory, for --demo")
	lf.register(cmd)
	lf.registerKeyCreation(cmd)
	return cmd
}

// resolve fills unset fields from the environment and the file.
func (c *ServeConfig) resolve(cmd *cobra.Command) error {
	set := func(flag, env string, dst *string, file string) {
		if cmd.Flags().Changed(flag) {
			return
		}
		if v := os.Getenv(env); v != "" {
			*dst = v
		} else if file != "" {
			*dst = file
		}
	}
	if c.File == "" {
		c.File = os.Getenv(ServeConfigEnv)
	}
	var sf ServeFile
	if c.File != "" {
		b, err := readSmall(c.File)
		if err != nil {
			return err
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&sf); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: %w", c.File, err)
		}
	}
	set("listen", ListenEnv, &c.Listen, sf.Listen)
	set("tls-cert", TLSCertEnv, &c.TLSCert, sf.TLSCert)
	set("tls-key", TLSKeyEnv, &c.TLSKey, sf.TLSKey)
	set("client-ca", ClientCAEnv, &c.ClientCA, sf.ClientCA)
	set("log-level", LogLevelEnv, &c.LogLevel, sf.LogLevel)
	set("kubernetes-listen", KubernetesListenEnv, &c.KubernetesListen, sf.Kubernetes.Listen)
	set("telemetry", TelemetryEnv, &c.Telemetry, sf.Telemetry.NATS)
	c.TelemetryMaxBytes = sf.Telemetry.MaxMessageBytes
	if err := c.resolveTelemetryStream(cmd, sf); err != nil {
		return err
	}
	if !cmd.Flags().Changed("kubernetes-client-ca") && sf.Kubernetes.ClientCA != "" {
		c.KubernetesClientCA = sf.Kubernetes.ClientCA
	}
	if !cmd.Flags().Changed("registry") {
		if v := os.Getenv(RegistriesEnv); v != "" {
			c.Registries = strings.Split(v, ",")
		} else {
			c.Registries = sf.Registries
		}
	}
	if !cmd.Flags().Changed("no-scan") && sf.Scan != nil {
		c.NoScan = !*sf.Scan
	}
	if !cmd.Flags().Changed("scan-unsigned") && sf.ScanUnsigned != nil {
		c.ScanUnsigned = *sf.ScanUnsigned
	}
	for _, u := range []struct {
		flag string
		file int64
		set  func(int64)
	}{
		{"max-unpack-bytes", sf.Limits.MaxUnpackBytes, func(v int64) { c.Unpack.MaxBytes = v }},
		{"max-unpack-files", int64(sf.Limits.MaxUnpackFiles), func(v int64) { c.Unpack.MaxFiles = int(v) }},
		{"max-unpack-depth", int64(sf.Limits.MaxUnpackDepth), func(v int64) { c.Unpack.MaxDepth = int(v) }},
		{"max-unpack-ratio", int64(sf.Limits.MaxUnpackRatio), func(v int64) { c.Unpack.MaxRatio = int(v) }},
	} {
		if u.file != 0 && !cmd.Flags().Changed(u.flag) {
			u.set(u.file)
		}
	}
	var errs []error
	dur := func(name, v string, dst *time.Duration) {
		if v == "" {
			return
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s: %s %q: want a positive duration such as 5s", c.File, name, v))
			return
		}
		*dst = d
	}
	if !cmd.Flags().Changed("kubernetes-deadline") {
		dur("kubernetes.deadline", sf.Kubernetes.Deadline, &c.KubernetesDeadline)
	}
	if !cmd.Flags().Changed("kubernetes-tag-ttl") {
		dur("kubernetes.tag_ttl", sf.Kubernetes.TagTTL, &c.KubernetesTagTTL)
	}
	if !cmd.Flags().Changed("risk-cache-ttl") {
		dur("risk_cache_ttl", sf.RiskTTL, &c.RiskTTL)
	}
	dur("risk_max_staleness", sf.RiskMaxStaleness, &c.RiskMaxStaleness)
	dur("risk_fresh_wait", sf.RiskFreshWait, &c.RiskFreshWait)
	l := sf.Limits
	c.Limits = server.Limits{MaxUploadBytes: l.MaxUploadBytes, MaxTelemetryBytes: l.MaxTelemetryBytes, MaxJSONBytes: l.MaxJSONBytes,
		MaxSignatureParts: l.MaxSignatureParts, MaxSignatureBytes: l.MaxSignatureBytes, MaxSBOMBytes: l.MaxSBOMBytes, MaxPartsBytes: l.MaxPartsBytes,
		Uploads: l.Uploads, Evaluations: l.Evaluations, Exports: l.Exports, MinBodyRate: l.MinBodyRate,
		MaxConnsPerClient: l.MaxConnsPerClient, MaxConns: l.MaxConns, MinFreeBytes: l.MinFreeBytes,
		MaxJSONDepth: l.MaxJSONDepth, MaxHeaderBytes: l.MaxHeaderBytes}
	for _, d := range []struct {
		name, v string
		dst     *time.Duration
	}{{"evaluate_wait", l.EvaluateWait, &c.Limits.EvaluateWait}, {"export_wait", l.ExportWait, &c.Limits.ExportWait},
		{"evaluate_timeout", l.EvaluateTimeout, &c.Limits.EvaluateTimeout}, {"admit_timeout", l.AdmitTimeout, &c.Limits.AdmitTimeout},
		{"telemetry_timeout", l.TelemetryTimeout, &c.Limits.TelemetryTimeout}, {"export_timeout", l.ExportTimeout, &c.Limits.ExportTimeout},
		{"upload_timeout", l.UploadTimeout, &c.Limits.UploadTimeout}, {"read_timeout", l.ReadTimeout, &c.Limits.ReadTimeout},
		{"body_rate_grace", l.BodyRateGrace, &c.Limits.BodyRateGrace}, {"read_header_timeout", l.ReadHeaderTimeout, &c.Limits.ReadHeaderTimeout},
		{"idle_timeout", l.IdleTimeout, &c.Limits.IdleTimeout}} {
		dur("limits."+d.name, d.v, d.dst)
	}
	if len(sf.RateLimits) > 0 {
		c.RateLimits = map[server.Role]server.RateLimit{}
		for k, v := range sf.RateLimits {
			r, err := server.ParseRole(k)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: rate_limits: %w", c.File, err))
				continue
			}
			c.RateLimits[r] = v
		}
	}
	return errors.Join(errs...)
}

// RunServe runs the server until ctx is done (graceful shutdown).
func RunServe(ctx context.Context, cfg ServeConfig, stderr io.Writer) error {
	level, err := parseLevel(cfg.LogLevel)
	if err != nil {
		return err
	}
	var handler slog.Handler = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})
	if cfg.Output == "text" {
		handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})
	}
	logger := slog.New(handler)
	if err := os.MkdirAll(cfg.State, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	gopts := []gate.Option{gate.WithVersion(Version), gate.WithGenerateOptions(sbom.WithTempDir(filepath.Join(cfg.State, "tmp")), sbom.WithUnpackLimits(cfg.Unpack)),
		gate.WithTUFState(tuf.NewDirState(filepath.Join(cfg.State, tufDir)))}
	if cfg.NoScan {
		gopts = append(gopts, gate.WithoutSBOMGeneration())
	}
	if cfg.ScanUnsigned {
		gopts = append(gopts, gate.WithUnsignedScanUnsafe())
	}
	// Each scanned firmware's file manifest, for the file-level diff
	// against the previous admitted release.
	manifests, err := gate.NewSBOMStore(filepath.Join(cfg.State, "manifests"))
	if err != nil {
		return err
	}
	var ropts []gate.RiskOption
	if cfg.RiskMaxStaleness > 0 {
		ropts = append(ropts, gate.WithMaxStaleness(cfg.RiskMaxStaleness))
	}
	if cfg.RiskFreshWait > 0 {
		ropts = append(ropts, gate.WithFreshWait(cfg.RiskFreshWait))
	}
	// syft and stereoscope make their temporary directories under
	// os.TempDir: keep them in the state directory, where the server
	// removes what they leave.
	work := filepath.Join(cfg.State, "tmp")
	if err := os.MkdirAll(work, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	if old, had := os.LookupEnv("TMPDIR"); had {
		defer os.Setenv("TMPDIR", old)
	} else {
		defer os.Unsetenv("TMPDIR")
	}
	os.Setenv("TMPDIR", work)
	gopts = append(gopts, gate.WithManifestStore(manifests))
	p, err := gate.Open(ctx, gate.Config{State: cfg.State, Store: cfg.Store, Trust: cfg.Trust, Policy: cfg.Policy, PolicyKey: cfg.PolicyKey,
		SigningKey: cfg.SigningKey, Origin: cfg.Origin, UnencryptedKey: cfg.UnencryptedKey, RiskTTL: cfg.RiskTTL, RiskOptions: ropts, Logger: logger, KeyCreated: keyCreated(stderr),
		Rollout: func(l *attest.Log) (*rollout.Controller, error) {
			return newRolloutController(cfg.State, rollout.LogJournal{Log: l}, nil)
		},
		TrustOptions: func(tc *trust.Config) ([]gate.Option, error) { return vulnerabilityOptions(tc, cfg.State) }}, gopts...)
	if err != nil {
		return err
	}
	defer p.Close()
	opts := []server.Option{server.WithLogger(logger), server.WithLimits(cfg.Limits), server.WithRegistries(cfg.Registries...)}
	// The web console (docs/console.md) reads the same stores.
	tokens := server.NewTokens(p.Store())
	tokens.Follow(p.Fresh)
	// Replicas on one store: another replica's token change drops the
	// token cache; its trust reload (or a lost change feed) reloads this
	// one's trust configuration, as SIGHUP does (below).
	reload := make(chan string, 1)
	first := true
	p.OnChange(func(c store.Change) {
		switch c.Kind {
		case store.ChangeToken:
			tokens.Forget()
		case store.ChangeReset:
			tokens.Forget()
			if first {
				first = false // the feed's first connection: nothing missed yet
				return
			}
			select {
			case reload <- "":
			default:
			}
		case store.ChangeTrust:
			select {
			case reload <- c.Key:
			default:
			}
		}
	})
	data, err := adapter.New(adapter.Deps{Records: p.Records(), Risk: p.Risk(), Fleet: p.Store(), Inventory: p.Inventory, Config: p.FleetConfig, Log: p.Log(),
		Tokens: tokens, WorkDir: filepath.Join(cfg.State, "tmp")})
	if err != nil {
		return err
	}
	con, err := console.New(data, console.WithLogger(logger.WithGroup("console")))
	if err != nil {
		return err
	}
	opts = append(opts, server.WithConsole(con.Handler()))
	if cfg.RateLimits != nil {
		opts = append(opts, server.WithRateLimits(cfg.RateLimits))
	}
	opts = append(opts, server.WithKubernetes(server.KubernetesConfig{Deadline: cfg.KubernetesDeadline, TagTTL: cfg.KubernetesTagTTL}))
	srv, err := server.New(server.Deps{Gate: p.Gate(), Records: p.Records(), Risk: p.Risk(), Log: p.Log(), Telemetry: p.Store(), Inventory: p.Inventory,
		Tokens: tokens, WorkDir: work, Ready: p.Ping, Replicas: p.ReplicaStats, Commits: commitStats(p.Store())}, opts...)
	if err != nil {
		return err
	}
	defer srv.Close()
	var tlsCfg *tls.Config
	if cfg.TLSCert != "" {
		if tlsCfg, err = server.TLSConfig(cfg.TLSCert, cfg.TLSKey, cfg.ClientCA); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	ln = srv.Listener(ln)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	hs := srv.HTTPServer(ln.Addr().String(), tlsCfg)
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
	}
	logger.Info("serving", "addr", ln.Addr().String(), "url", scheme+"://"+ln.Addr().String(), "console", scheme+"://"+ln.Addr().String()+"/ui", "state", cfg.State, "mtls", cfg.ClientCA != "")
	if cfg.Ready != nil {
		cfg.Ready(ln.Addr().String())
	}
	errc := make(chan error, 3)
	go func() {
		if tlsCfg != nil {
			errc <- hs.ServeTLS(ln, "", "")
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	kubeHS, err := serveKubernetes(cfg, srv, logger, errc)
	if err != nil {
		_ = hs.Close()
		return err
	}
	tb, err := startTelemetryBus(ctx, cfg, srv, logger, errc)
	if err != nil {
		_ = hs.Close()
		return err
	}
	defer tb.Close()
	for {
		select {
		case err := <-errc:
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			return err
		case digest := <-reload:
			if digest != "" && digest == p.Gate().Trust().Digest() {
				continue // another replica reloaded the configuration this one runs
			}
			logger.Info("another replica reloaded its trust configuration: reloading", "their_trust", digest)
			ng, err := p.Reload(ctx)
			if err != nil {
				logger.Error("reload: kept the previous configuration", "err", err)
				continue
			}
			srv.SwapGate(ng)
			if digest != "" && ng.Trust().Digest() != digest {
				logger.Warn("this replica's trust configuration differs from the one another replica reloaded: admissions of updates it evaluated are refused here (stale-evaluation) until they agree",
					"trust", ng.Trust().Digest(), "their_trust", digest)
			}
		case <-hup:
			// Build the new gate beside the old one, then swap: requests
			// in flight finish on the old gate, none is dropped.
			ng, err := p.Reload(ctx)
			if err != nil {
				logger.Error("reload: kept the previous configuration", "err", err)
				continue
			}
			srv.SwapGate(ng)
			logger.Info("reloaded", "trust", cfg.Trust, "policy", cfg.Policy)
		case <-ctx.Done():
			logger.Info("shutting down")
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := hs.Shutdown(sctx)
			if kubeHS != nil {
				err = errors.Join(err, kubeHS.Shutdown(sctx))
			}
			cancel()
			return err
		}
	}
}

// serveKubernetes starts the admission webhook's TLS listener when
// configured (docs/kubernetes.md); its serve error goes to errc.
func serveKubernetes(cfg ServeConfig, srv *server.Server, logger *slog.Logger, errc chan<- error) (*http.Server, error) {
	if cfg.KubernetesListen == "" {
		return nil, nil
	}
	tlsCfg, err := server.KubernetesTLSConfig(cfg.TLSCert, cfg.TLSKey, cfg.KubernetesClientCA)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.KubernetesListen)
	if err != nil {
		return nil, err
	}
	hs := srv.KubernetesHTTPServer(ln.Addr().String(), tlsCfg)
	logger.Info("serving the Kubernetes admission webhook", "addr", ln.Addr().String(), "validate", "https://"+ln.Addr().String()+"/v1/kubernetes/validate",
		"mutate", "https://"+ln.Addr().String()+"/v1/kubernetes/mutate", "client_certificates", cfg.KubernetesClientCA != "")
	if cfg.KubernetesReady != nil {
		cfg.KubernetesReady(ln.Addr().String())
	}
	go func() { errc <- hs.ServeTLS(ln, "", "") }()
	return hs, nil
}

// commitStats is the store's report of its group commits for the metrics,
// or nil when the store keeps none.
func commitStats(st store.Store) func() []store.CommitStats {
	if r, ok := st.(store.CommitReporter); ok {
		return r.CommitStats
	}
	return nil
}
