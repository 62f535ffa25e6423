package policy

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
)

// TestTimeout bounds one Rego unit test.
const TestTimeout = 10 * time.Second

// TestResult is the outcome of one Rego test rule.
type TestResult struct {
	Package string `json:"package"`
	Name    string `json:"name"`
	File    string `json:"file"`
	Line    int    `json:"line"`
	// Fail is true when the test was undefined or false; Error is set when
	// it could not be evaluated. Either counts as failed.
	Fail  bool   `json:"fail,omitempty"`
	Error string `json:"error,omitempty"`
}

// Failed reports whether the test failed or errored.
func (r TestResult) Failed() bool { return r.Fail || r.Error != "" }

// TestReport is the outcome of RunTests.
type TestReport struct {
	Passed  int          `json:"passed"`
	Failed  int          `json:"failed"`
	Results []TestResult `json:"results"`
}

// String is the summary line "N passed, N failed".
func (r TestReport) String() string { return fmt.Sprintf("%d passed, %d failed", r.Passed, r.Failed) }

// RunTests runs Rego unit tests (rules named test_* in any module) with
// OPA's tester. With no directories it runs the default policies' own
// tests. With directories, it loads the default policies without their
// tests, then every .rego file (tests included) under each directory, with
// the same override rules as New (a file identical to a default is a copy
// and is skipped), and runs the directories' tests. An error means the
// tests could not run (unreadable directory, compile error with file and
// line); failing tests are counted in the report.
func RunTests(ctx context.Context, dirs ...string) (TestReport, error) {
	return runTests(ctx, "", dirs)
}

func runTests(ctx context.Context, run string, paths []string) (TestReport, error) {
	defaults, err := defaultModules(len(paths) == 0)
	if err != nil {
		return TestReport{}, err
	}
	var user []module
	for _, p := range paths {
		var ms []module
		if IsBundle(p) {
			// A bundle's tests run against its modules; a signed bundle
			// is checked when it is used (policy eval, admit), not here.
			ms, _, err = bundleModules(p, true, nil)
		} else {
			ms, err = dirModules(p, true)
		}
		if err != nil {
			return TestReport{}, err
		}
		user = append(user, ms...)
	}
	modules, err := merge(defaults, user, false)
	if err != nil {
		return TestReport{}, err
	}
	byName := make(map[string]*ast.Module, len(modules))
	for _, m := range modules {
		byName[m.path] = m.mod
	}
	// The same capabilities as evaluation: a policy that reaches for the
	// network fails its tests with the error it would fail New with.
	compiler := ast.NewCompiler().WithCapabilities(capabilities()).WithEnablePrintStatements(false)
	runner := tester.NewRunner().
		SetCompiler(compiler).
		SetModules(byName).
		SetStore(inmem.New()).
		SetTimeout(TestTimeout).
		SetDefaultRegoVersion(ast.RegoV1).
		CapturePrintOutput(false)
	if run != "" {
		runner = runner.Filter(run)
	}
	ch, err := runner.RunTests(ctx, nil)
	if err != nil {
		return TestReport{}, fmt.Errorf("policy test: %w", compileErrors(err))
	}
	var rep TestReport
	for r := range ch {
		tr := TestResult{Package: strings.TrimPrefix(r.Package, "data."), Name: r.Name, Fail: r.Fail}
		if r.Location != nil {
			tr.File, tr.Line = r.Location.File, r.Location.Row
		}
		if r.Error != nil {
			tr.Error = r.Error.Error()
		}
		if r.Skip {
			continue
		}
		if tr.Failed() {
			rep.Failed++
		} else {
			rep.Passed++
		}
		rep.Results = append(rep.Results, tr)
	}
	slices.SortFunc(rep.Results, func(a, b TestResult) int {
		if c := strings.Compare(a.File, b.File); c != 0 {
			return c
		}
		return a.Line - b.Line
	})
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("policy test: %w", err)
	}
	return rep, nil
}
