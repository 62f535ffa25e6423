package cli

import (
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
	var output string
	cmd := &cobra.Command{
		Use:   "test DIR",
		Short: "Run the _test.rego unit tests in DIR with OPA's tester",
		Long: `Run every test_* rule in DIR's .rego files with OPA's tester. The default
policies are loaded too (without their own tests), so user tests can use
data.wardgate.lib and test overrides.

Prints "N passed, N failed"; failing tests are listed on stderr. With
-o json, prints {"passed", "failed", "results": [...]} instead.
Exit codes: 0 all passed, 1 a test failed, 2 the tests could not run.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return noVerdict(err)
			}
			rep, err := policy.RunTests(cmd.Context(), args[0])
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
				if !r.Failed() {
					continue
				}
				msg := "FAIL"
				if r.Error != "" {
					msg = "ERROR " + r.Error
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "%s:%d: %s.%s: %s\n", r.File, r.Line, r.Package, r.Name, msg)
			}
			fmt.Fprintln(cmd.OutOrStdout(), rep.String())
			if rep.Failed > 0 {
				return verdict(ExitFail)
			}
			return nil
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

// policyEvalConfig is filled by the flags of `policy eval`.
type policyEvalConfig struct {
	input   string
	dirs    []string
	bundles []string
	key     string
	config  string
	output  string
	timeout time.Duration
}

// Validate checks the flags.
func (c policyEvalConfig) Validate() error {
	if c.input == "" {
		return errors.New("--input is required")
	}
	if c.timeout <= 0 {
		return fmt.Errorf("--timeout must be positive, got %s", c.timeout)
	}
	return checkOutput(c.output)
}

func newPolicyEvalCmd() *cobra.Command {
	var cfg policyEvalConfig
	cmd := &cobra.Command{
		Use:   "eval --input evidence.json",
		Short: "Show the policy decision for an evidence document",
		Long: `Evaluate an evidence document (docs/evidence.schema.json) against the
default policies, any --policy directories and --bundle files, with the
trust configuration given by --config as data. With --policy-key every
bundle must be signed with that key; without it a signed bundle is refused.

Without --config no product is trusted and every update is denied.
Exit codes: 0 allowed, 1 denied, 2 could not evaluate (the decision is
then a deny with the reason could-not-evaluate).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.Validate(); err != nil {
				return noVerdict(err)
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
	fs.StringVar(&cfg.input, "input", "", "evidence document (JSON)")
	fs.StringArrayVar(&cfg.dirs, "policy", nil, "directory of .rego files to add to the default policies; repeatable")
	fs.StringArrayVar(&cfg.bundles, "bundle", nil, "OPA bundle (.tar.gz) to add to the default policies; repeatable")
	fs.StringVar(&cfg.key, "policy-key", "", "public key (PEM) every --bundle must be signed with (opa build --signing-key); without it a signed bundle is refused")
	fs.StringVar(&cfg.config, "config", "", "trust configuration (YAML)")
	fs.DurationVar(&cfg.timeout, "timeout", policy.DefaultTimeout, "evaluation timeout; a policy that runs longer gives could-not-evaluate")
	addOutputFlag(cmd, &cfg.output)
	return cmd
}

// runPolicyEval loads everything and evaluates; any error means no decision.
func runPolicyEval(ctx context.Context, cfg policyEvalConfig) (policy.Decision, error) {
	f, err := os.Open(cfg.input)
	if err != nil {
		return policy.Decision{}, err
	}
	defer f.Close()
	ev, err := evidence.Decode(f)
	if err != nil {
		return policy.Decision{}, fmt.Errorf("%s: %w", cfg.input, err)
	}
	opts := []policy.Option{policy.WithTimeout(cfg.timeout)}
	if cfg.config != "" {
		tc, err := trust.Load(cfg.config)
		if err != nil {
			return policy.Decision{}, err
		}
		opts = append(opts, policy.WithTrust(tc))
	}
	for _, d := range cfg.dirs {
		opts = append(opts, policy.WithPolicyDir(d))
	}
	for _, b := range cfg.bundles {
		opts = append(opts, policy.WithBundle(b))
	}
	if cfg.key != "" {
		opts = append(opts, policy.WithBundleKey(cfg.key))
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
