package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wardgate/wardgate/verify"
)

// NewConformanceCmd is the entrypoint the sigstore-conformance suite calls:
//
//	wardgate conformance verify-bundle --bundle F (--certificate-identity ID --certificate-oidc-issuer URL | --key PUB) [--trusted-root F] FILE_OR_DIGEST
func NewConformanceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:    "conformance",
		Short:  "Entrypoints for the sigstore-conformance suite",
		Hidden: true,
	}
	var trust trustFlags
	var bundlePath, output string
	vb := &cobra.Command{
		Use:   "verify-bundle FILE_OR_DIGEST",
		Short: "Verify a Sigstore bundle the way sigstore-conformance calls a client",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return noVerdict(err)
			}
			pol, err := trust.policy(cmd.Context())
			if err != nil {
				return noVerdict(err)
			}
			res, err := verifyBundle(cmd.Context(), args[0], bundlePath, pol)
			if err != nil {
				return noVerdict(err)
			}
			if output == "json" {
				return printResult(cmd.OutOrStdout(), output, res)
			}
			if !res.Verified {
				fmt.Fprintf(cmd.ErrOrStderr(), "rejected [%s]: %s\n", strings.Join(reasonStrings(res.Reasons), ","), res.Message)
				return verdict(ExitFail)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "verified:", res.Message)
			return nil
		},
	}
	trust.register(vb)
	vb.Flags().StringVar(&bundlePath, "bundle", "", "the bundle to verify")
	_ = vb.MarkFlagRequired("bundle")
	addOutputFlag(vb, &output)
	cmd.AddCommand(vb)
	return cmd
}

// verifyBundle verifies any Sigstore bundle: a message signature over the
// artifact, or a DSSE envelope with the artifact as a subject.
func verifyBundle(ctx context.Context, target, bundlePath string, pol *verify.Policy) (*verify.Result, error) {
	sig, err := verify.LoadSignature(bundlePath)
	if err != nil {
		return nil, err
	}
	art, err := verify.ArtifactFromArg(target)
	if err != nil {
		return nil, err
	}
	if verify.IsAttestation(sig) {
		return verify.Attestation(ctx, art, []verify.Signature{sig}, "", pol)
	}
	return verify.Blob(ctx, art, []verify.Signature{sig}, pol)
}
