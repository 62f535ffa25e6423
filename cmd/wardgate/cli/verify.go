package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/wardgate/wardgate/verify"
)

// trustFlags are the cosign-compatible flags that say who is trusted.
type trustFlags struct {
	keys           []string
	identities     []string
	identityRegexp []string
	issuers        []string
	issuerRegexp   []string
	trustedRoot    string
	threshold      int
}

func (f *trustFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringArrayVar(&f.keys, "key", nil, "trusted public key (PEM: ECDSA, Ed25519 or RSA); repeat for several signers")
	fs.StringArrayVar(&f.identities, "certificate-identity", nil, "keyless: expected certificate identity (SAN); repeat for several signers")
	fs.StringArrayVar(&f.identityRegexp, "certificate-identity-regexp", nil, "keyless: regular expression for the certificate identity")
	fs.StringArrayVar(&f.issuers, "certificate-oidc-issuer", nil, "keyless: expected OIDC issuer (one for all identities, or one per identity)")
	fs.StringArrayVar(&f.issuerRegexp, "certificate-oidc-issuer-regexp", nil, "keyless: regular expression for the OIDC issuer")
	fs.StringVar(&f.trustedRoot, "trusted-root", "", "Sigstore trusted_root.json (Fulcio, Rekor, CT logs, TSAs); never fetched")
	fs.IntVar(&f.threshold, "threshold", 0, "require this many distinct trusted signers (k of n); default 1")
}

// policy loads keys and the trusted root named by the flags.
func (f *trustFlags) policy() (*verify.Policy, error) {
	pol := &verify.Policy{Threshold: f.threshold}
	for _, k := range f.keys {
		key, err := verify.LoadPublicKey(k)
		if err != nil {
			return nil, err
		}
		pol.Keys = append(pol.Keys, key)
	}
	ids, err := f.identityList()
	if err != nil {
		return nil, err
	}
	pol.Identities = ids
	if f.trustedRoot != "" {
		tr, err := verify.LoadTrustedRoot(f.trustedRoot)
		if err != nil {
			return nil, err
		}
		pol.TrustedRoot = tr
	}
	return pol, pol.Validate()
}

// identityList pairs identities with issuers: the n-th identity with the
// n-th issuer, or every identity with the single issuer given.
func (f *trustFlags) identityList() ([]verify.Identity, error) {
	var subjects []verify.Identity
	for _, s := range f.identities {
		subjects = append(subjects, verify.Identity{Subject: s})
	}
	for _, s := range f.identityRegexp {
		subjects = append(subjects, verify.Identity{SubjectRegexp: s})
	}
	var issuers []verify.Identity
	for _, s := range f.issuers {
		issuers = append(issuers, verify.Identity{Issuer: s})
	}
	for _, s := range f.issuerRegexp {
		issuers = append(issuers, verify.Identity{IssuerRegexp: s})
	}
	if len(subjects) == 0 && len(issuers) == 0 {
		return nil, nil
	}
	if len(subjects) == 0 {
		return nil, errors.New("--certificate-oidc-issuer given without --certificate-identity or --certificate-identity-regexp")
	}
	if len(issuers) == 0 {
		return nil, errors.New("--certificate-identity given without --certificate-oidc-issuer or --certificate-oidc-issuer-regexp")
	}
	if len(issuers) != 1 && len(issuers) != len(subjects) {
		return nil, fmt.Errorf("%d identities and %d issuers: give one issuer for all, or one per identity", len(subjects), len(issuers))
	}
	for i := range subjects {
		iss := issuers[0]
		if len(issuers) > 1 {
			iss = issuers[i]
		}
		subjects[i].Issuer, subjects[i].IssuerRegexp = iss.Issuer, iss.IssuerRegexp
	}
	return subjects, nil
}

// NewVerifyCmd groups the verify subcommands.
func NewVerifyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Verify signatures on firmware blobs and OCI images, and attestations",
	}
	cmd.AddCommand(newVerifyBlobCmd(), newVerifyImageCmd(), newVerifyAttestationCmd())
	return cmd
}

type blobConfig struct {
	trust      trustFlags
	signatures []string
	bundles    []string
	batch      string
	output     string
}

func newVerifyBlobCmd() *cobra.Command {
	var cfg blobConfig
	cmd := &cobra.Command{
		Use:   "blob FILE",
		Short: "Verify a firmware blob's signatures (cosign sign-blob signatures, cosign and Sigstore bundles)",
		Long: `Verify a blob with cosign's flags. The blob is hashed in one streaming pass.

FILE may also be sha256:<hex> when only the digest is known.
With --batch LIST, each line of LIST is "BLOB SIGNATURE_OR_BUNDLE" and all
blobs are verified in one process on every core; the trust flags apply to
every line.

Exit codes: 0 verified, 1 verification failed, 2 could not verify.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if cfg.batch != "" {
				return cobra.NoArgs(cmd, args)
			}
			return cobra.ExactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(cfg.output); err != nil {
				return noVerdict(err)
			}
			pol, err := cfg.trust.policy()
			if err != nil {
				return noVerdict(err)
			}
			if cfg.batch != "" {
				return runBatch(cmd.Context(), cmd.OutOrStdout(), cfg, pol)
			}
			res, err := verifyBlob(cmd.Context(), args[0], append(cfg.signatures, cfg.bundles...), pol)
			if err != nil {
				return noVerdict(err)
			}
			return printResult(cmd.OutOrStdout(), cfg.output, res)
		},
	}
	cfg.trust.register(cmd)
	cmd.Flags().StringArrayVar(&cfg.signatures, "signature", nil, "signature file (cosign sign-blob output, base64 or raw); repeatable")
	cmd.Flags().StringArrayVar(&cfg.bundles, "bundle", nil, "bundle file (cosign sign-blob --bundle, or Sigstore bundle v0.1-v0.3); repeatable")
	cmd.Flags().StringVar(&cfg.batch, "batch", "", "verify every \"BLOB SIGNATURE_OR_BUNDLE\" line of this file")
	addOutputFlag(cmd, &cfg.output)
	return cmd
}

func checkOutput(o string) error {
	if o != "text" && o != "json" {
		return fmt.Errorf("-o %s: want text or json", o)
	}
	return nil
}

func verifyBlob(ctx context.Context, blob string, sigPaths []string, pol *verify.Policy) (*verify.Result, error) {
	art, err := verify.ArtifactFromArg(blob)
	if err != nil {
		return nil, err
	}
	var sigs []verify.Signature
	for _, p := range sigPaths {
		s, err := verify.LoadSignature(p)
		if err != nil {
			return nil, err
		}
		sigs = append(sigs, s)
	}
	return verify.Blob(ctx, art, sigs, pol)
}

// printResult prints a verdict and returns the exit it calls for.
func printResult(w io.Writer, output string, res *verify.Result) error {
	if output == "json" {
		b, err := json.Marshal(res)
		if err != nil {
			return noVerdict(err)
		}
		fmt.Fprintln(w, string(b))
	} else {
		printText(w, res)
	}
	if res.Verified {
		return nil
	}
	return verdict(ExitFail)
}

func printText(w io.Writer, res *verify.Result) {
	if res.Verified {
		fmt.Fprintf(w, "VERIFIED  %s\n", res.Message)
		for _, s := range res.TrustedSigners {
			if s.KeyID != "" {
				fmt.Fprintf(w, "  signer  key %s\n", s.KeyID)
			} else {
				fmt.Fprintf(w, "  signer  %s (issuer %s)\n", s.Identity, s.Issuer)
			}
		}
		return
	}
	fmt.Fprintf(w, "FAILED    [%s] %s\n", strings.Join(reasonStrings(res.Reasons), ","), res.Message)
}

func reasonStrings(rs []verify.Reason) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return out
}

// batchResult is one line of --batch output.
type batchResult struct {
	Line   int            `json:"line"`
	Result *verify.Result `json:"result,omitempty"`
	Error  string         `json:"error,omitempty"`
	Reason verify.Reason  `json:"reason,omitempty"`
}

const maxBatchLines = 1 << 20

func runBatch(ctx context.Context, w io.Writer, cfg blobConfig, pol *verify.Policy) error {
	f, err := verify.OpenRegular(cfg.batch)
	if err != nil {
		return noVerdict(err)
	}
	defer f.Close()
	type job struct {
		line      int
		blob, sig string
	}
	var jobs []job
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		blob, sig, ok := strings.Cut(line, " ")
		if !ok || strings.TrimSpace(sig) == "" {
			return noVerdict(fmt.Errorf("%s:%d: want \"BLOB_PATH SIGNATURE_OR_BUNDLE_PATH\"", cfg.batch, n))
		}
		if len(jobs) >= maxBatchLines {
			return noVerdict(fmt.Errorf("%s: more than %d lines", cfg.batch, maxBatchLines))
		}
		jobs = append(jobs, job{n, blob, strings.TrimSpace(sig)})
	}
	if err := sc.Err(); err != nil {
		return noVerdict(fmt.Errorf("%s: %w", cfg.batch, err))
	}
	results := make([]batchResult, len(jobs))
	var wg sync.WaitGroup
	next := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				j := jobs[i]
				res, err := verifyBlob(ctx, j.blob, []string{j.sig}, pol)
				results[i] = batchResult{Line: j.line, Result: res}
				if err != nil {
					results[i].Error = err.Error()
					results[i].Reason = reasonOf(err)
				}
			}
		}()
	}
	for i := range jobs {
		next <- i
	}
	close(next)
	wg.Wait()
	code := ExitOK
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	for _, r := range results {
		switch {
		case r.Error != "":
			code = ExitNoVerdict
		case !r.Result.Verified && code == ExitOK:
			code = ExitFail
		}
		if cfg.output == "json" {
			b, _ := json.Marshal(r)
			bw.Write(append(b, '\n'))
			continue
		}
		switch {
		case r.Error != "":
			fmt.Fprintf(bw, "ERROR     line %d: %s\n", r.Line, r.Error)
		default:
			printText(bw, r.Result)
		}
	}
	if code != ExitOK {
		return verdict(code)
	}
	return nil
}

func reasonOf(err error) verify.Reason {
	var ie *verify.InputError
	if errors.As(err, &ie) {
		return ie.Code
	}
	return verify.ReasonBadInput
}
