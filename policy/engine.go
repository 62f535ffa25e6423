package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/wardgate/wardgate/evidence"
	"github.com/wardgate/wardgate/trust"
)

// Query is the Rego query the engine prepares.
const Query = "data.wardgate.decision"

// DefaultTimeout bounds one evaluation unless WithTimeout says otherwise.
const DefaultTimeout = time.Second

// ErrTimeout is wrapped when an evaluation runs past its timeout (a policy
// that loops or is too slow). The caller denies with CodeCouldNotEvaluate.
var ErrTimeout = errors.New("policy: evaluation timed out")

// ErrMalformedDecision is wrapped when the policy's result is not a valid
// decision (for example a user rule whose violation has no code).
var ErrMalformedDecision = errors.New("policy: malformed decision")

// Engine evaluates evidence against the prepared policy. It is safe for
// concurrent use.
type Engine struct {
	query        rego.PreparedEvalQuery
	timeout      time.Duration
	policyDigest string
	dataDigest   string
	modules      []string
	log          *slog.Logger
}

type config struct {
	trust     *trust.Config
	dirs      []string
	bundles   []string
	bundleKey string
	timeout   time.Duration
	log       *slog.Logger
}

// Option configures New.
type Option func(*config) error

// WithTrust sets the trust configuration (data.trust). Without it the data
// is empty: no product is trusted and every update is denied.
func WithTrust(c *trust.Config) Option {
	return func(cfg *config) error {
		if c == nil {
			return errors.New("policy: nil trust configuration")
		}
		if cfg.trust != nil {
			return errors.New("policy: WithTrust given twice")
		}
		cfg.trust = c
		return nil
	}
}

// WithPolicyDir adds every .rego file under dir (tests excluded) to the
// default policies. Repeatable.
func WithPolicyDir(dir string) Option {
	return func(cfg *config) error {
		if dir == "" {
			return errors.New("policy: empty policy directory")
		}
		cfg.dirs = append(cfg.dirs, dir)
		return nil
	}
}

// WithBundle adds the modules and data of an OPA bundle (.tar.gz), read
// with OPA's bundle reader. Repeatable.
func WithBundle(path string) Option {
	return func(cfg *config) error {
		if path == "" {
			return errors.New("policy: empty bundle path")
		}
		cfg.bundles = append(cfg.bundles, path)
		return nil
	}
}

// WithBundleKey makes every bundle (WithBundle) need a signature by the
// public key in the PEM file at path: OPA's .signatures.json, as
// `opa build --signing-key` writes it, whose signature verifies with the key
// and lists every file of the bundle with its hash. ECDSA keys (P-256,
// P-384, P-521) verify ES256, ES384 or ES512 signatures, RSA keys RS256.
// Without a key, a signed bundle is refused. The key needs a bundle to
// verify: .rego directories (WithPolicyDir) are not signed.
func WithBundleKey(path string) Option {
	return func(cfg *config) error {
		if path == "" {
			return errors.New("policy: empty bundle key path")
		}
		if cfg.bundleKey != "" {
			return errors.New("policy: WithBundleKey given twice")
		}
		cfg.bundleKey = path
		return nil
	}
}

// WithTimeout bounds each evaluation.
func WithTimeout(d time.Duration) Option {
	return func(cfg *config) error {
		if d <= 0 {
			return fmt.Errorf("policy: timeout must be positive, got %s", d)
		}
		cfg.timeout = d
		return nil
	}
}

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option {
	return func(cfg *config) error {
		if l == nil {
			return errors.New("policy: nil logger")
		}
		cfg.log = l
		return nil
	}
}

// loadBundleKey loads the WithBundleKey key; nil without one.
func (cfg *config) loadBundleKey() (*bundleKey, error) {
	switch {
	case cfg.bundleKey == "":
		return nil, nil
	case len(cfg.bundles) == 0:
		return nil, fmt.Errorf("policy: bundle key %s given without a bundle to verify (it verifies OPA bundles only; .rego directories are not signed)", cfg.bundleKey)
	}
	return loadBundleKey(cfg.bundleKey)
}

// New loads the default policies and any user policies, checks overrides,
// compiles everything, and prepares the decision query once. Compile errors
// name file and line (*CompileError); an unpermitted override of a default
// is an *OverrideError. A code in the trust configuration's rules: that no
// loaded rule produces (see checkRuleCodes) is a *trust.ConfigError naming
// file, line and field.
func New(ctx context.Context, opts ...Option) (*Engine, error) {
	cfg := config{timeout: DefaultTimeout, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	modules, data, err := cfg.load()
	if err != nil {
		return nil, err
	}
	dataJSON, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("policy: data: %w", err)
	}
	sum := sha256.Sum256(dataJSON)
	e := &Engine{
		timeout:      cfg.timeout,
		policyDigest: digestModules(modules),
		dataDigest:   "sha256:" + hex.EncodeToString(sum[:]),
		log:          cfg.log.WithGroup("policy"),
	}
	for _, m := range modules {
		e.modules = append(e.modules, m.path)
	}
	if e.query, err = prepare(ctx, modules, data); err != nil {
		return nil, err
	}
	if err := checkRuleCodes(cfg.trust, modules, e.log); err != nil {
		return nil, err
	}
	e.log.Debug("prepared", "modules", len(modules), "policy_digest", e.policyDigest, "data_digest", e.dataDigest)
	return e, nil
}

// load reads the default policies, the user's directories and bundles,
// and the data (the trust configuration and bundle data), and merges the
// modules under the override rules.
func (cfg *config) load() ([]module, map[string]any, error) {
	defaults, err := defaultModules(false)
	if err != nil {
		return nil, nil, err
	}
	data := map[string]any{"trust": map[string]any{}}
	if cfg.trust != nil {
		data["trust"] = cfg.trust.Data()
	}
	var user []module
	for _, dir := range cfg.dirs {
		ms, err := dirModules(dir, false)
		if err != nil {
			return nil, nil, err
		}
		user = append(user, ms...)
	}
	key, err := cfg.loadBundleKey()
	if err != nil {
		return nil, nil, err
	}
	for _, b := range cfg.bundles {
		ms, bdata, err := bundleModules(b, false, key)
		if err != nil {
			return nil, nil, err
		}
		for _, k := range slices.Sorted(maps.Keys(bdata)) {
			if _, dup := data[k]; dup {
				return nil, nil, fmt.Errorf("bundle %s: data.%s is already set by another bundle", b, k)
			}
			data[k] = bdata[k]
		}
		user = append(user, ms...)
	}
	allowOverride := cfg.trust != nil && cfg.trust.AllowOverride
	modules, err := merge(defaults, user, allowOverride)
	if err != nil {
		return nil, nil, err
	}
	return modules, data, nil
}

// prepare compiles the modules with the data and prepares Query once.
func prepare(ctx context.Context, modules []module, data map[string]any) (rego.PreparedEvalQuery, error) {
	return prepareQuery(ctx, Query, modules, data)
}

func prepareQuery(ctx context.Context, query string, modules []module, data map[string]any) (rego.PreparedEvalQuery, error) {
	ropts := []func(*rego.Rego){
		rego.Query(query),
		// The data is converted to AST once, here, not on every read.
		rego.Store(inmem.NewFromObjectWithOpts(data, inmem.OptRoundTripOnWrite(true), inmem.OptReturnASTValuesOnRead(true))),
		rego.StoreReadAST(true),
		rego.SetRegoVersion(ast.RegoV1),
		rego.Capabilities(capabilities()),
	}
	for _, m := range modules {
		ropts = append(ropts, rego.ParsedModule(m.mod))
	}
	q, err := rego.New(ropts...).PrepareForEval(ctx)
	if err != nil {
		return q, fmt.Errorf("policy: compile: %w", compileErrors(err))
	}
	return q, nil
}

// DeniedBuiltins are the OPA built-in functions a policy may not call: a
// gate decision depends only on the evidence and the data, never on the
// network (a user policy with http.send could leak evidence or be steered
// by a remote server). A module calling one fails to compile.
var DeniedBuiltins = []string{"http.send", "net.lookup_ip_addr", "opa.runtime"}

func capabilities() *ast.Capabilities {
	c := ast.CapabilitiesForThisVersion()
	c.Builtins = slices.DeleteFunc(slices.Clone(c.Builtins), func(b *ast.Builtin) bool {
		return slices.Contains(DeniedBuiltins, b.Name)
	})
	return c
}

// PolicyDigest is the digest of the Rego modules in effect.
func (e *Engine) PolicyDigest() string { return e.policyDigest }

// DataDigest is the digest of the OPA data document.
func (e *Engine) DataDigest() string { return e.dataDigest }

// Modules lists the Rego files in effect, defaults first.
func (e *Engine) Modules() []string { return slices.Clone(e.modules) }

// Evaluate decides on one evidence document. OPA's clock is pinned to
// ev.EvaluatedAt, and the evaluation is bounded by the engine's timeout. A
// deny is a Decision; an error means no decision could be made (invalid
// evidence wrapping evidence.ErrInvalid, ErrTimeout, ErrMalformedDecision,
// or a runtime error in a rule).
func (e *Engine) Evaluate(ctx context.Context, ev evidence.Evidence) (Decision, error) {
	if err := ev.Validate(); err != nil {
		return Decision{}, fmt.Errorf("policy: %w", err)
	}
	input, err := toValue(reflect.ValueOf(ev))
	if err != nil {
		return Decision{}, err
	}
	// Cancel OPA's evaluation on the timeout or when ctx ends. (OPA's own
	// way, a context deadline, starts a goroutine per evaluation to watch
	// it; a timer and context.AfterFunc cost less.)
	cancel := topdown.NewCancel()
	var timedOut atomic.Bool
	timer := time.AfterFunc(e.timeout, func() {
		timedOut.Store(true)
		cancel.Cancel()
	})
	stop := context.AfterFunc(ctx, cancel.Cancel)
	rs, err := e.query.Eval(ctx,
		rego.EvalParsedInput(input.Value),
		rego.EvalTime(ev.EvaluatedAt),
		rego.EvalExternalCancel(cancel),
		// Keep the result as OPA's AST: decode reads it directly, without
		// converting the whole decision to Go maps and slices first.
		rego.EvalGenerateJSON(func(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }),
	)
	timer.Stop()
	stop()
	if err != nil {
		if ctx.Err() != nil {
			return Decision{}, fmt.Errorf("policy: evaluate: %w", ctx.Err())
		}
		if timedOut.Load() {
			return Decision{}, fmt.Errorf("%w after %s", ErrTimeout, e.timeout)
		}
		return Decision{}, fmt.Errorf("policy: evaluate: %w", err)
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return Decision{}, fmt.Errorf("%w: %s is undefined", ErrMalformedDecision, Query)
	}
	t, ok := rs[0].Expressions[0].Value.(*ast.Term)
	if !ok {
		return Decision{}, fmt.Errorf("%w: %s is %T, want an AST term", ErrMalformedDecision, Query, rs[0].Expressions[0].Value)
	}
	d, err := decode(t.Value)
	if err != nil {
		return Decision{}, err
	}
	d.PolicyDigest, d.DataDigest = e.policyDigest, e.dataDigest
	return d, nil
}

// Keys of the decision document, made once.
var (
	keyAllow      = ast.StringTerm("allow")
	keyViolations = ast.StringTerm("violations")
	keyWarnings   = ast.StringTerm("warnings")
	keyCode       = ast.StringTerm("code")
	keyRule       = ast.StringTerm("rule")
	keyMessage    = ast.StringTerm("message")
	keySeverity   = ast.StringTerm("severity")
)

// decode turns the Rego result into a Decision, checking every field.
func decode(v ast.Value) (Decision, error) {
	m, ok := v.(ast.Object)
	if !ok {
		return Decision{}, fmt.Errorf("%w: %s is %s, want an object", ErrMalformedDecision, Query, typeName(v))
	}
	var allow bool
	switch a := valueOf(m.Get(keyAllow)).(type) {
	case ast.Boolean:
		allow = bool(a)
	default:
		return Decision{}, fmt.Errorf("%w: allow is %s, want a boolean", ErrMalformedDecision, typeName(a))
	}
	vs, err := decodeViolations(valueOf(m.Get(keyViolations)), "violations")
	if err != nil {
		return Decision{}, err
	}
	ws, err := decodeViolations(valueOf(m.Get(keyWarnings)), "warnings")
	if err != nil {
		return Decision{}, err
	}
	// Fail closed: a policy that allows with violations does not allow.
	return Decision{Allow: allow && len(vs) == 0, Violations: vs, Warnings: ws}, nil
}

// valueOf is t's value, nil when t is (a missing key).
func valueOf(t *ast.Term) ast.Value {
	if t == nil {
		return nil
	}
	return t.Value
}

// typeName names a value's type for messages: OPA's name, "undefined" for a
// missing one.
func typeName(v ast.Value) string {
	if v == nil {
		return "undefined"
	}
	return ast.ValueName(v)
}

func decodeViolations(v ast.Value, field string) ([]Violation, error) {
	var items []*ast.Term
	switch c := v.(type) {
	case ast.Set:
		items = c.Slice()
	case *ast.Array:
		items = make([]*ast.Term, 0, c.Len())
		c.Foreach(func(t *ast.Term) { items = append(items, t) })
	default:
		return nil, fmt.Errorf("%w: %s is %s, want a set", ErrMalformedDecision, field, typeName(v))
	}
	out := make([]Violation, 0, len(items))
	for _, it := range items {
		m, ok := it.Value.(ast.Object)
		if !ok {
			return nil, fmt.Errorf("%w: a violation in %s is %s, want an object", ErrMalformedDecision, field, typeName(it.Value))
		}
		str := func(k *ast.Term) string {
			s, _ := valueOf(m.Get(k)).(ast.String)
			return string(s)
		}
		viol := Violation{Code: Code(str(keyCode)), Rule: str(keyRule), Message: str(keyMessage), Severity: str(keySeverity)}
		switch {
		case viol.Code == "":
			return nil, fmt.Errorf("%w: rule set %q reported a violation without a code: %v", ErrMalformedDecision, viol.Rule, m)
		case viol.Message == "":
			return nil, fmt.Errorf("%w: rule set %q reported %s without a message", ErrMalformedDecision, viol.Rule, viol.Code)
		case !slices.Contains(severities, viol.Severity):
			return nil, fmt.Errorf("%w: rule set %q reported %s with severity %q; want critical, high, medium or low", ErrMalformedDecision, viol.Rule, viol.Code, viol.Severity)
		}
		out = append(out, viol)
	}
	sortViolations(out)
	return out, nil
}
