// Package cli holds wardgate's cobra commands. Commands are thin: flags fill
// a config, the config is validated, and a domain package does the work.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// Exit codes, documented in README.md. They never change meaning.
const (
	ExitOK        = 0 // verified / allowed
	ExitFail      = 1 // a verdict: verification failed, denied
	ExitNoVerdict = 2 // could not decide: bad input, unreadable file, unreachable registry
	// ExitHold: admit --device only, a rollout-hold (docs/rollout.md):
	// every rule allowed the update, but the device is outside the
	// update's current rollout ring; ask again after retryAfter.
	ExitHold = 3
)

// exitError carries an exit code through cobra without printing twice.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

// verdict makes a silent exit with the given code (output already printed).
func verdict(code int) error { return &exitError{code: code} }

// noVerdict is exit 2 with a message.
func noVerdict(err error) error { return &exitError{code: ExitNoVerdict, err: err} }

// NewRootCmd builds the wardgate command tree.
func NewRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "wardgate",
		Short:         "The gate between device vendors' updates and a hospital's devices",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(NewVersionCmd(), NewVerifyCmd(), NewConformanceCmd(), NewAttestCmd(), NewAdmitCmd(), NewSbomCmd(), NewEgressCmd(), NewPolicyCmd(), NewServeCmd(), NewTokenCmd(), NewVulnCmd())
	return root
}

// Main runs wardgate with args and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := NewRootCmd(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, "wardgate:", ee.err)
		}
		return ee.code
	}
	// Flag and usage errors: could not run, exit 2.
	fmt.Fprintln(stderr, "wardgate:", err)
	return ExitNoVerdict
}
