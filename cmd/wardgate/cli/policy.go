package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/wardgate/wardgate/evidence"
	"github.com/wardgate/wardgate/policy"
	"github.com/wardgate/wardgate/trust"
)

// NewPolicyCmd groups the policy subcommands.
func NewPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Test Rego policies and evaluate evidence documents",
	}
	cmd.AddCommand(newPolicyTestCmd(), newPolicyEvalCmd())
	return cmd
}

func newPolicyTestCmd() *cobra.Command {
	var output, run string
	var verbose bool
	cmd := &cobra.Command{
		Use:   "test PATH...",
		Short: "Run Rego unit tests (directories, .rego files, OPA bundles) with OPA's tester",
		Long: `Run every test_* rule in the .rego files of each PATH (a directory, a
.rego file, or an OPA bundle .tar.gz) with OPA's tester, as opa test does.
The default policies are loaded too (without their own tests), so user
tests can use data.wardgate.lib and test overrides. Without PATH, the
default policies' own tests run.

--run REGEX runs only the tests whose data.PACKAGE.RULE matches (opa test
--run). -v lists every test with PASS or FAIL, as opa test -v does.

Prints "N passed, N failed"; failing tests are listed on stderr. With
-o json, prints {"passed", "failed", "results": [...]} instead.
Exit codes: 0 all passed, 1 a test failed, 2 the tests could not run.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return noVerdict(err)
			}
			rep, err := policy.RunTestsMatching(cmd.Context(), run, args...)
			if err != nil {
				return noVerdict(err)
			}
			if output == "json" {
				if rep.Results == nil {
					rep.Results = []policy.TestResult{}
				}
				if err := json.NewEncoder(cmd.OutOrStdout()).Encode(rep); err != nil {
					return noVerdict(err)
				}
				if rep.Failed > 0 {
					return verdict(ExitFail)
				}
				return nil
			}
			for _, r := range rep.Results {
				name := "data." + r.Package + "." + r.Name
				switch {
				case verbose && !r.Failed():
					fmt.Fprintf(cmd.OutOrStdout(), "%s:%d: %s: PASS\n", r.File, r.Line, name)
				case r.Failed():
					msg := "FAIL"
					if r.Error != "" {
						msg = "ERROR " + r.Error
					}
					w := cmd.ErrOrStderr()
					if verbose {
						w = cmd.OutOrStdout()
					}
					fmt.Fprintf(w, "%s:%d: %s: %s\n", r.File, r.Line, name, msg)
				}
			}
			fmt.Fprintln(cmd.OutOrStdout(), rep.String())
			if rep.Failed > 0 {
				return verdict(ExitFail)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "list every test with PASS or FAIL")
	cmd.Flags().StringVarP(&run, "run", "r", "", "run only the tests whose data.PACKAGE.RULE matches this regular expression")
	addOutputFlag(cmd, &output)
	return cmd
}

// policyEvalConfig is filled by the flags of `policy eval`.
type policyEvalConfig struct {
	input    string
	policies []string
	key      string
	config   string
	output   string
	query    string
	timeout  time.Duration
}

// Validate checks the flags.
func (c policyEvalConfig) Validate() error {
	if c.input == "" {
		return errors.New("--input (-i) is required: the evidence document")
	}
	if c.timeout <= 0 {
		return fmt.Errorf("--timeout must be positive, got %s", c.timeout)
	}
	return checkOutput(c.output)
}

func newPolicyEvalCmd() *cobra.Command {
	var cfg policyEvalConfig
	cmd := &cobra.Command{
		Use:   "eval -i evidence.json [-d PATH]... [QUERY]",
		Short: "Show the policy decision for an evidence document, or evaluate a query",
		Long: `Evaluate an evidence document (docs/evidence.schema.json) against the
default policies and any --policy (or -d, as opa eval names it): a
directory of .rego files, a .rego file or an OPA bundle (.tar.gz), with the
trust configuration given by --config as data. With --policy-key every
bundle must be signed with that key; without it a signed bundle is refused.

Without QUERY the result is the gate's decision. With QUERY (as opa eval
'data.wardgate.lib...'), the query is evaluated with the evidence as input
and OPA's result set is printed ({"result": [...]}, as opa eval -f json).

Without --config no product is trusted and every update is denied.
Exit codes: 0 allowed (or a query evaluated), 1 denied, 2 could not
evaluate (the decision is then a deny with the reason could-not-evaluate).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cfg.Validate(); err != nil {
				return noVerdict(err)
			}
			if len(args) == 1 {
				cfg.query = args[0]
				return runPolicyQuery(cmd, cfg)
			}
			d, err := runPolicyEval(cmd.Context(), cfg)
			if err != nil {
				d = policy.CouldNotEvaluate(err)
			}
			if perr := printDecision(cmd.OutOrStdout(), cfg.output, d); perr != nil {
				return noVerdict(perr)
			}
			switch {
			case err != nil:
				return noVerdict(err)
			case !d.Allow:
				return verdict(ExitFail)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&cfg.input, "input", "i", "", "evidence document (JSON)")
	fs.StringArrayVar(&cfg.policies, "policy", nil, "extra policies: a directory of .rego files, a .rego file or an OPA bundle (.tar.gz); repeatable")
	fs.StringArrayVarP(&cfg.policies, "data", "d", nil, "same as --policy (opa eval's -d)")
	fs.StringVar(&cfg.key, "policy-key", "", "public key (PEM) every bundle must be signed with (opa build --signing-key); without it a signed bundle is refused")
	fs.StringVar(&cfg.config, "config", "", "trust configuration (YAML)")
	fs.DurationVar(&cfg.timeout, "timeout", policy.DefaultTimeout, "evaluation timeout; a policy that runs longer gives could-not-evaluate")
	addOutputFlag(cmd, &cfg.output)
	return cmd
}

// policyOptions are the engine options the flags ask for.
func policyOptions(cfg policyEvalConfig) ([]policy.Option, error) {
	opts := []policy.Option{policy.WithTimeout(cfg.timeout)}
	if cfg.config != "" {
		tc, err := trust.Load(cfg.config)
		if err != nil {
			return nil, err
		}
		opts = append(opts, policy.WithTrust(tc))
	}
	for _, p := range cfg.policies {
		opts = append(opts, policy.WithPolicy(p))
	}
	if cfg.key != "" {
		opts = append(opts, policy.WithBundleKey(cfg.key))
	}
	return opts, nil
}

func readEvidence(path string) (evidence.Evidence, error) {
	f, err := os.Open(path)
	if err != nil {
		return evidence.Evidence{}, err
	}
	defer f.Close()
	ev, err := evidence.Decode(f)
	if err != nil {
		return evidence.Evidence{}, fmt.Errorf("%s: %w", path, err)
	}
	return ev, nil
}

// runPolicyQuery evaluates a query and prints OPA's result set.
func runPolicyQuery(cmd *cobra.Command, cfg policyEvalConfig) error {
	ev, err := readEvidence(cfg.input)
	if err != nil {
		return noVerdict(err)
	}
	opts, err := policyOptions(cfg)
	if err != nil {
		return noVerdict(err)
	}
	out, err := policy.EvalQuery(cmd.Context(), cfg.query, ev, opts...)
	if err != nil {
		return noVerdict(err)
	}
	if cfg.output == "json" {
		fmt.Fprintln(cmd.OutOrStdout(), string(out))
		return nil
	}
	var indented bytes.Buffer
	if err := json.Indent(&indented, out, "", "  "); err != nil {
		return noVerdict(err)
	}
	fmt.Fprintln(cmd.OutOrStdout(), indented.String())
	return nil
}

// runPolicyEval loads everything and evaluates; any error means no decision.
func runPolicyEval(ctx context.Context, cfg policyEvalConfig) (policy.Decision, error) {
	ev, err := readEvidence(cfg.input)
	if err != nil {
		return policy.Decision{}, err
	}
	opts, err := policyOptions(cfg)
	if err != nil {
		return policy.Decision{}, err
	}
	e, err := policy.New(ctx, opts...)
	if err != nil {
		return policy.Decision{}, err
	}
	return e.Evaluate(ctx, ev)
}

// printDecision writes the decision as JSON or as a short readable verdict.
func printDecision(w io.Writer, output string, d policy.Decision) error {
	if output == "json" {
		b, err := json.Marshal(d)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(b))
		return err
	}
	verdict := "ALLOWED"
	if !d.Allow {
		verdict = "DENIED"
	}
	fmt.Fprintf(w, "%s  %d violations, %d warnings\n", verdict, len(d.Violations), len(d.Warnings))
	for _, v := range d.Violations {
		fmt.Fprintf(w, "  %-8s %s: %s\n", v.Severity, v.Code, v.Message)
	}
	for _, v := range d.Warnings {
		fmt.Fprintf(w, "  warning  %s: %s\n", v.Code, v.Message)
	}
	return nil
}
