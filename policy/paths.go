package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/wardgate/wardgate/evidence"
)

// IsBundle reports whether path names an OPA bundle: a gzipped tar, as
// opa build writes it (.tar.gz or .tgz).
func IsBundle(path string) bool {
	return strings.HasSuffix(path, ".tar.gz") || strings.HasSuffix(path, ".tgz")
}

// WithPolicy adds user policies from path, whatever it is: an OPA bundle
// (WithBundle), or a directory of .rego files or one .rego file
// (WithPolicyDir). It is what every --policy flag means. Repeatable.
func WithPolicy(path string) Option {
	if IsBundle(path) {
		return WithBundle(path)
	}
	return WithPolicyDir(path)
}

// RunTestsMatching is RunTests for the tests whose names match run, a
// regular expression (opa test --run): it is matched, as OPA matches it,
// against data.PACKAGE.RULE. Paths may be directories, .rego files or OPA
// bundles (their _test.rego modules included).
func RunTestsMatching(ctx context.Context, run string, paths ...string) (TestReport, error) {
	if run != "" {
		if _, err := regexp.Compile(run); err != nil {
			return TestReport{}, fmt.Errorf("policy test: --run %q: %w", run, err)
		}
	}
	return runTests(ctx, run, paths)
}

// EvalQuery evaluates any Rego query (opa eval's QUERY) with the evidence
// document as input, against the same policies and data New would load
// from opts, and returns OPA's result set as JSON: {"result": [...]} with
// each result's expressions and bindings, as opa eval -f json prints it.
// An empty result (the query is undefined) is {"result": []}.
func EvalQuery(ctx context.Context, query string, ev evidence.Evidence, opts ...Option) ([]byte, error) {
	if strings.TrimSpace(query) == "" {
		return nil, errors.New("policy: empty query")
	}
	cfg := config{timeout: DefaultTimeout}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if err := ev.Validate(); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	modules, data, err := cfg.load()
	if err != nil {
		return nil, err
	}
	q, err := prepareQuery(ctx, query, modules, data)
	if err != nil {
		return nil, err
	}
	input, err := toValue(reflect.ValueOf(ev))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	at := ev.EvaluatedAt
	if at.IsZero() {
		at = time.Now()
	}
	rs, err := q.Eval(ctx, rego.EvalParsedInput(input.Value), rego.EvalTime(at))
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w after %s", ErrTimeout, cfg.timeout)
		}
		return nil, fmt.Errorf("policy: query %s: %w", query, err)
	}
	if rs == nil {
		rs = rego.ResultSet{}
	}
	return json.Marshal(map[string]any{"result": rs})
}
