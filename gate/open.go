package gate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/wardgate/wardgate/attest"
	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/policy"
	"github.com/wardgate/wardgate/rollout"
	"github.com/wardgate/wardgate/sbom"
	"github.com/wardgate/wardgate/store"
	_ "github.com/wardgate/wardgate/store/postgres" // postgres:// and postgresql:// locations
	_ "github.com/wardgate/wardgate/store/sqlite"   // the embedded store, for state directories
	"github.com/wardgate/wardgate/trust"
	"github.com/wardgate/wardgate/verify"
)

// Files of the state directory besides the store's own.
const (
	// SigningKeyFile is the service signing key (cosign format), created
	// on first use; SigningKeyFile with .pub is its public key.
	SigningKeyFile = "signing.key"
	// InventoryFile is the fleet inventory (JSON), written by
	// `wardgate egress ingest --inventory`.
	InventoryFile = "inventory.json"
	// FleetConfigFile is the detection configuration (JSON), optional.
	FleetConfigFile = "config.json"
	// SBOMCacheDir caches the SBOMs syft generated, by artifact.
	SBOMCacheDir = "sbom-cache"
)

// DefaultRiskTTL is how long a fleet analysis answers before it is
// refreshed in the background (see RiskCache).
const DefaultRiskTTL = 5 * time.Second

// Config is what Open builds a pipeline from: where the state is kept and
// what to trust.
type Config struct {
	// State is the state directory: the service key, the fleet inventory,
	// syft's cache and, unless Store says otherwise, the embedded store.
	State string
	// Store is where the store is when it is not in the state directory:
	// a DSN of a registered backend (postgres://… once there is one).
	Store string
	// Trust is the trust configuration file. Required.
	Trust string
	// Policy adds policies: a directory of .rego files or an OPA bundle
	// (.tar.gz); PolicyKey is the public key the bundle must be signed
	// with.
	Policy, PolicyKey string
	// SigningKey is the service signing key; empty means
	// STATE/signing.key, created on first use (see KeyCreated).
	SigningKey string
	// Origin names the log in its checkpoints; empty means
	// "wardgate/<key id prefix>".
	Origin string
	// NoLog builds the pipeline without the verdict log: nothing is signed
	// or logged (`wardgate admit --no-log`).
	NoLog bool
	// RiskTTL is how long one fleet analysis answers (DefaultRiskTTL when
	// zero).
	RiskTTL time.Duration
	// RiskOptions configure the risk cache (staleness bound, fresh wait).
	RiskOptions []RiskOption
	// Rollout, when set, makes the rollout controller (docs/rollout.md)
	// over the pipeline's log (nil with NoLog); every Gate then holds
	// devices outside an update's current ring.
	Rollout func(*attest.Log) (*rollout.Controller, error)
	// Logger logs the gate's and the policies' events (default: discard).
	Logger *slog.Logger
	// UnencryptedKey allows the default signing key to be created without
	// a password when $WARDGATE_KEY_PASSWORD is unset (it is refused
	// otherwise, and refused when the variable is set).
	UnencryptedKey bool
	// KeyCreated, when set, is called with the key and public key files
	// Open created, and whether the key is encrypted.
	KeyCreated func(key, pub string, encrypted bool)
	// TrustOptions, when set, gives options that depend on the trust
	// configuration (the vulnerability database it asks for); it is called
	// for every Gate built, on Open and on each Reload.
	TrustOptions func(*trust.Config) ([]Option, error)
	// ReplicaBound is how far behind the other replicas' changes this
	// process may be and still answer from its caches, when the store has
	// a change feed (PostgreSQL; DefaultReplicaBound when zero). See
	// Pipeline.Fresh and docs/postgres.md.
	ReplicaBound time.Duration
	// StoreOptions and LogOptions tune the store and the log (tests set a
	// small reader pool, for one).
	StoreOptions []store.Option
	LogOptions   []attest.LogOption
}

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.State == "" {
		errs = append(errs, errors.New("gate: no state directory"))
	}
	if c.Trust == "" {
		errs = append(errs, errors.New("gate: no trust configuration"))
	}
	if c.ReplicaBound < 0 {
		errs = append(errs, fmt.Errorf("gate: replica bound %s: must be positive", c.ReplicaBound))
	}
	if c.RiskTTL < 0 {
		errs = append(errs, fmt.Errorf("gate: risk cache TTL %s: must be positive", c.RiskTTL))
	}
	return errors.Join(errs...)
}

// Pipeline is the whole gate over one state: the store, the verdict log
// and its signer, the kept evaluations, the fleet risk, and the current
// Gate (the trust configuration and policy engine), which Reload replaces.
// It is safe for concurrent use.
type Pipeline struct {
	cfg     Config
	opts    []Option
	logger  *slog.Logger
	st      store.Store
	log     *attest.Log
	records *Records
	risk    *RiskCache
	fleet   atomic.Pointer[fleetState]
	gate    atomic.Pointer[Gate]
	ctl     *rollout.Controller // nil without Config.Rollout

	// The change feed (replicas on one store; nil without one).
	rep        *replicas
	started    time.Time
	stopFollow context.CancelFunc
}

// fleetState is the fleet inventory (nil when none is known) and the
// detection configuration, reloaded together.
type fleetState struct {
	inv *egress.Inventory
	cfg egress.Config
}

// Open opens the state and builds the pipeline from it: the store (created
// and migrated as needed), the log and its signing key (created on first
// use when it is the default one), the kept evaluations, the fleet risk
// (the inventory and detection configuration of the state directory, if
// any) and a Gate from the trust configuration and policies. opts apply to
// every Gate it builds. Close releases it all.
func Open(ctx context.Context, cfg Config, opts ...Option) (p *Pipeline, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.RiskTTL == 0 {
		cfg.RiskTTL = DefaultRiskTTL
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ReplicaBound == 0 {
		cfg.ReplicaBound = DefaultReplicaBound
	}
	p = &Pipeline{cfg: cfg, logger: logger, started: time.Now()}
	// The trust configuration and policies first: a mistake in them is
	// reported before anything in the state directory is touched.
	tc, eng, err := p.load(ctx)
	if err != nil {
		return nil, err
	}
	loc := cfg.Store
	if loc == "" {
		loc = cfg.State
	}
	st, err := store.Open(ctx, loc, cfg.StoreOptions...)
	if err != nil {
		return nil, err
	}
	p.st = st
	opened := p // p is nil when Open fails
	defer func() {
		if err != nil {
			opened.Close()
		}
	}()
	// Other replicas' changes are followed from before anything is read
	// into a cache (the feed's first reset drops it all again anyway).
	var changes <-chan store.Change
	if feed, ok := st.(store.ChangeFeed); ok {
		p.rep = &replicas{feed: feed, bound: cfg.ReplicaBound, logger: logger, now: time.Now}
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		p.stopFollow = cancel
		changes = feed.Subscribe(fctx)
	}
	if !cfg.NoLog {
		signer, err := p.signer(ctx)
		if err != nil {
			return nil, err
		}
		if p.log, err = attest.OpenLog(ctx, p.st, signer, cfg.Origin, cfg.LogOptions...); err != nil {
			return nil, err
		}
	}
	if p.records, err = OpenRecords(ctx, p.st); err != nil {
		return nil, err
	}
	if p.rep != nil {
		p.records.fresh = p.Fresh
	}
	if err := p.loadFleet(ctx, tc); err != nil {
		return nil, err
	}
	if p.risk, err = NewRiskCache(p.analyze, cfg.RiskTTL, nil, cfg.RiskOptions...); err != nil {
		return nil, err
	}
	if p.rep != nil {
		p.risk.lagging = func() bool { return !p.Fresh() }
		p.risk.lagBound = cfg.ReplicaBound
		p.risk.changed = p.publishRisks
	}
	base := []Option{WithFleet(p.risk), WithInstallations(p.st), WithBlobs(p.st), WithLogger(logger),
		WithGenerateOptions(sbom.WithCacheDir(filepath.Join(cfg.State, SBOMCacheDir)))}
	if p.log != nil {
		base = append(base, WithLog(p.log))
	}
	if cfg.Rollout != nil {
		ctl, err := cfg.Rollout(p.log)
		if err != nil {
			return nil, fmt.Errorf("rollout: %w", err)
		}
		p.ctl = ctl
		r := Rollout{Controller: ctl, Inventory: p.Inventory, Installations: p.st.Installations, Report: p.risk.Report}
		if p.rep != nil {
			r.Fresh = p.Fresh
		}
		base = append(base, WithRollout(r))
	}
	p.opts = append(base, opts...)
	g, err := p.build(tc, eng)
	if err != nil {
		return nil, err
	}
	p.gate.Store(g)
	if changes != nil {
		go p.follow(changes)
	}
	return p, nil
}

// build makes a Gate over the pipeline's state.
func (p *Pipeline) build(tc *trust.Config, eng *policy.Engine) (*Gate, error) {
	opts := p.opts
	if p.cfg.TrustOptions != nil {
		more, err := p.cfg.TrustOptions(tc)
		if err != nil {
			return nil, err
		}
		opts = append(slices.Clip(opts), more...)
	}
	return New(tc, eng, p.st, opts...)
}

// signer loads the service key, creating the default one on first use (an
// admit in CI must not need a separate set-up step): encrypted with
// $WARDGATE_KEY_PASSWORD, or, only with Config.UnencryptedKey, without a
// password.
func (p *Pipeline) signer(ctx context.Context) (*attest.Signer, error) {
	key := p.cfg.SigningKey
	if key == "" {
		key = filepath.Join(p.cfg.State, SigningKeyFile)
		if _, err := os.Stat(key); errors.Is(err, fs.ErrNotExist) {
			pw := os.Getenv(attest.PasswordEnv)
			switch {
			case pw == "" && !p.cfg.UnencryptedKey:
				return nil, fmt.Errorf("the service signing key %s does not exist, and $%s is not set: set it to create the key encrypted with that password, or pass --unencrypted-key to create it without one", key, attest.PasswordEnv)
			case pw != "" && p.cfg.UnencryptedKey:
				return nil, fmt.Errorf("--unencrypted-key, but $%s is set: unset it to create %s without a password, or drop --unencrypted-key to encrypt it", attest.PasswordEnv, key)
			}
			k, pub, err := attest.Keygen(strings.TrimSuffix(key, ".key"))
			if err != nil {
				return nil, err
			}
			if p.cfg.KeyCreated != nil {
				p.cfg.KeyCreated(k, pub, pw != "")
			}
		}
	}
	return attest.LoadSigner(ctx, key)
}

// load reads the trust configuration and prepares the policy engine, as
// they are on disk now.
func (p *Pipeline) load(ctx context.Context) (*trust.Config, *policy.Engine, error) {
	tc, err := trust.Load(p.cfg.Trust)
	if err != nil {
		return nil, nil, err
	}
	popts := []policy.Option{policy.WithTrust(tc), policy.WithLogger(p.logger)}
	if pol := p.cfg.Policy; pol != "" {
		if strings.HasSuffix(pol, ".tar.gz") {
			popts = append(popts, policy.WithBundle(pol))
		} else {
			popts = append(popts, policy.WithPolicyDir(pol))
		}
	}
	if p.cfg.PolicyKey != "" {
		popts = append(popts, policy.WithBundleKey(p.cfg.PolicyKey))
	}
	eng, err := policy.New(ctx, popts...)
	if err != nil {
		return nil, nil, err
	}
	return tc, eng, nil
}

// loadFleet reads the inventory and detection configuration of the state
// directory (both optional), and adds the egress manifests of tc's
// products that their authorities signed.
func (p *Pipeline) loadFleet(ctx context.Context, tc *trust.Config) error {
	inv, err := egress.ReadInventoryFile(filepath.Join(p.cfg.State, InventoryFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		inv = nil
	case err != nil:
		return fmt.Errorf("fleet inventory: %w", err)
	}
	ecfg, err := egress.ReadConfigFile(filepath.Join(p.cfg.State, FleetConfigFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("detection configuration: %w", err)
	}
	ms, err := p.egressManifests(ctx, tc)
	if err != nil {
		return err
	}
	ecfg.Manifests = append(ecfg.Manifests, ms...)
	p.fleet.Store(&fleetState{inv: inv, cfg: ecfg})
	return nil
}

// egressManifests are the egress manifests the trust configuration lists
// (egress_manifests of a product) that an authority of that product
// signed. A manifest silences findings, so one that is unsigned, signed by
// anyone else or unreadable is not used (and logged): the findings it
// would silence stand.
func (p *Pipeline) egressManifests(ctx context.Context, tc *trust.Config) ([]egress.EgressManifest, error) {
	var out []egress.EgressManifest
	for _, vn := range tc.VendorNames() {
		v := tc.Vendors[vn]
		for _, pn := range slices.Sorted(maps.Keys(v.Products)) {
			for _, path := range v.Products[pn].EgressManifests {
				sig, err := verify.LoadSignature(path)
				var ms []egress.EgressManifest
				if err == nil {
					ms, err = VerifyEgressManifest(ctx, tc, sig, func(string) []string { return []string{pn} })
				}
				if err != nil {
					if ctx.Err() != nil {
						return nil, err
					}
					p.logger.Warn("egress manifest not used", "vendor", vn, "product", pn, "manifest", path, "error", err)
					continue
				}
				out = append(out, ms...)
			}
		}
	}
	return out, nil
}

// analyze runs the fleet detections over the store: nothing to find while
// no fleet is known.
func (p *Pipeline) analyze(ctx context.Context) (egress.Report, error) {
	f := p.fleet.Load()
	if f.inv == nil {
		return egress.Report{Findings: []egress.Finding{}, Updates: []egress.UpdateRisk{}}, nil
	}
	return egress.AnalyzeStore(ctx, p.st, f.inv, f.cfg)
}

// Reload reads the trust configuration, the policies (a bundle is verified
// again), the fleet inventory and the detection configuration again and
// builds a new Gate over the same state, which Gate returns from then on.
// On an error the pipeline keeps what it had.
func (p *Pipeline) Reload(ctx context.Context) (*Gate, error) {
	old := p.fleet.Load()
	tc, eng, err := p.load(ctx)
	if err == nil {
		err = p.loadFleet(ctx, tc)
	}
	var g *Gate
	if err == nil {
		g, err = p.build(tc, eng)
	}
	if err != nil {
		p.fleet.Store(old)
		return nil, err
	}
	prev := p.gate.Swap(g)
	p.risk.Invalidate()
	if prev == nil || prev.trust.Digest() != g.trust.Digest() {
		// The other replicas reload theirs (a configuration they share).
		p.publish(store.Change{Kind: store.ChangeTrust, Key: g.trust.Digest()})
	}
	return g, nil
}

// Gate is the current gate.
func (p *Pipeline) Gate() *Gate { return p.gate.Load() }

// Store is the store everything is kept in.
func (p *Pipeline) Store() store.Store { return p.st }

// Log is the verdict log (nil with Config.NoLog).
func (p *Pipeline) Log() *attest.Log { return p.log }

// Records are the kept evaluations.
func (p *Pipeline) Records() *Records { return p.records }

// Risk is the fleet risk every gate of the pipeline asks.
func (p *Pipeline) Risk() *RiskCache { return p.risk }

// Inventory is the fleet inventory, nil while none is known.
func (p *Pipeline) Inventory() *egress.Inventory { return p.fleet.Load().inv }

// Ping checks the store answers (readiness).
func (p *Pipeline) Ping(ctx context.Context) error { return p.st.Ping(ctx) }

// Close stops following the other replicas' changes, commits what the
// store's group committers hold and closes it.
func (p *Pipeline) Close() error {
	if p.stopFollow != nil {
		p.stopFollow()
	}
	return p.st.Close()
}

// FleetConfig is the detection configuration (the defaults when the state
// directory has none).
func (p *Pipeline) FleetConfig() *egress.Config {
	c := p.fleet.Load().cfg
	return &c
}
