package cli

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/spf13/cobra"

	"github.com/wardgate/wardgate/verify"
)

// registryFlags are the flags for reaching a registry.
type registryFlags struct {
	timeout time.Duration
}

func (f *registryFlags) register(cmd *cobra.Command) {
	cmd.Flags().DurationVar(&f.timeout, "timeout", verify.DefaultRegistryTimeout, "give up on the registry after this long (all requests of one run)")
}

// options are the verify.ImageOptions the flags ask for. Credentials come
// from the Docker config (as for cosign and crane); the library default is
// anonymous.
func (f *registryFlags) options() []verify.ImageOption {
	return []verify.ImageOption{verify.WithTimeout(f.timeout), verify.WithKeychain(authn.DefaultKeychain)}
}

func (f *registryFlags) validate() error {
	if f.timeout <= 0 {
		return fmt.Errorf("--timeout %v: must be positive", f.timeout)
	}
	return nil
}

const imageRefHelp = `REF is a registry reference (registry/repo:tag or registry/repo@sha256:...),
or a local image: oci-dir:PATH (an OCI image layout) or oci-archive:PATH
(a tar of one), optionally followed by :TAG or @sha256:HEX to pick one image
of several. A tag is resolved to its digest once; the digest is what is
verified and reported. Only the named registry is contacted.`

type imageCmdConfig struct {
	trust    trustFlags
	registry registryFlags
	output   string
}

func newVerifyImageCmd() *cobra.Command {
	var cfg imageCmdConfig
	cmd := &cobra.Command{
		Use:   "image REF",
		Short: "Verify an OCI image's cosign signatures (.sig tag and Sigstore bundle referrers)",
		Long: `Verify an OCI image with cosign's flags: classic cosign signatures (the
sha256-<digest>.sig tag) and OCI 1.1 referrers holding Sigstore bundles.

` + imageRefHelp + `

Exit codes: 0 verified, 1 verification failed, 2 could not verify.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := errors.Join(checkOutput(cfg.output), cfg.registry.validate(), cfg.trust.imageOnly()); err != nil {
				return noVerdict(err)
			}
			pol, err := cfg.trust.policy(cmd.Context())
			if err != nil {
				return noVerdict(err)
			}
			cfg.trust.notes(cmd.ErrOrStderr())
			res, err := verify.Image(cmd.Context(), args[0], pol, cfg.registry.options()...)
			if err != nil {
				return noVerdict(err)
			}
			return printResult(cmd.OutOrStdout(), cfg.output, res)
		},
	}
	cfg.trust.register(cmd)
	cfg.registry.register(cmd)
	addOutputFlag(cmd, &cfg.output)
	return cmd
}

type attestationConfig struct {
	trust         trustFlags
	registry      registryFlags
	output        string
	blob          string
	image         string
	bundles       []string
	predicateType string
}

// resolve takes the positional argument cosign's forms give: the blob
// (cosign verify-blob-attestation --bundle B FILE) when envelopes are given
// with --bundle or --signature, else the image (cosign verify-attestation
// IMAGE).
func (c *attestationConfig) resolve(args []string) error {
	if len(args) == 0 {
		return nil
	}
	if c.blob != "" || c.image != "" {
		return fmt.Errorf("%s given both as an argument and with --blob or --image", args[0])
	}
	if len(c.bundles) > 0 {
		c.blob = args[0]
	} else {
		c.image = args[0]
	}
	return nil
}

// Validate checks the attestation flags fit together.
func (c *attestationConfig) Validate() error {
	var errs []error
	errs = append(errs, checkOutput(c.output), c.registry.validate())
	switch {
	case c.blob == "" && c.image == "":
		errs = append(errs, errors.New("give the blob (FILE --bundle ENVELOPE) or the image (REF)"))
	case c.blob != "" && c.image != "":
		errs = append(errs, errors.New("give --blob or --image, not both"))
	case c.image != "" && len(c.bundles) > 0:
		errs = append(errs, errors.New("--bundle is for --blob; an image's attestations are found in its registry or layout"))
	case c.image != "":
		errs = append(errs, c.trust.imageOnly())
	}
	if _, err := verify.PredicateType(c.predicateType); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func newVerifyAttestationCmd() *cobra.Command {
	var cfg attestationConfig
	cmd := &cobra.Command{
		Use:   "attestation [FILE --bundle ENVELOPE... | REF] [--type PREDICATE_TYPE]",
		Short: "Verify in-toto attestations (DSSE) on a firmware blob or an OCI image",
		Long: `Verify in-toto attestations: a DSSE envelope (bare, or in a Sigstore bundle)
signed by a trusted signer, holding a statement with the predicate type
asked for (--type) and a subject whose digest is the artifact's.

For a blob, as cosign verify-blob-attestation: FILE (or --blob FILE) with
the envelopes in --bundle or --signature. For an image, as cosign
verify-attestation: REF (or --image REF); its attestations are found next
to it: the cosign sha256-<digest>.att tag and OCI 1.1 referrers holding
Sigstore bundles. A positional argument is the blob when envelopes are
given, else the image.

--type takes a predicate type URI or one of cosign's names: ` + strings.Join(verify.PredicateTypeNames(), ", ") + `;
like cosign, the default is custom.

` + imageRefHelp + `

Exit codes: 0 verified, 1 verification failed, 2 could not verify.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cfg.resolve(args); err != nil {
				return noVerdict(err)
			}
			if err := cfg.Validate(); err != nil {
				return noVerdict(err)
			}
			pol, err := cfg.trust.policy(cmd.Context())
			if err != nil {
				return noVerdict(err)
			}
			cfg.trust.notes(cmd.ErrOrStderr())
			pt, _ := verify.PredicateType(cfg.predicateType)
			var res *verify.Result
			if cfg.image != "" {
				res, err = verify.ImageAttestations(cmd.Context(), cfg.image, pt, pol, cfg.registry.options()...)
			} else {
				res, err = verifyBlobAttestation(cmd, cfg, pt, pol)
			}
			if err != nil {
				return noVerdict(err)
			}
			return printResult(cmd.OutOrStdout(), cfg.output, res)
		},
	}
	cfg.trust.register(cmd)
	cfg.registry.register(cmd)
	fs := cmd.Flags()
	fs.StringVar(&cfg.blob, "blob", "", "the blob the attestations are about (or sha256:<hex>)")
	fs.StringVar(&cfg.image, "image", "", "the image the attestations are about (see REF below)")
	fs.StringArrayVar(&cfg.bundles, "bundle", nil, "for a blob: a DSSE envelope or Sigstore bundle holding one; repeatable")
	fs.StringArrayVar(&cfg.bundles, "signature", nil, "same as --bundle (cosign verify-blob-attestation --signature)")
	fs.StringVar(&cfg.predicateType, "type", "custom", "predicate type: a URI, or one of cosign's names ("+strings.Join(verify.PredicateTypeNames(), ", ")+")")
	addOutputFlag(cmd, &cfg.output)
	return cmd
}

func verifyBlobAttestation(cmd *cobra.Command, cfg attestationConfig, predicateType string, pol *verify.Policy) (*verify.Result, error) {
	art, err := verify.ArtifactFromArg(cfg.blob)
	if err != nil {
		return nil, err
	}
	envs, err := cfg.trust.loadSignatures(cfg.bundles)
	if err != nil {
		return nil, err
	}
	return verify.Attestation(cmd.Context(), art, envs, predicateType, pol)
}
