package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/wardgate/wardgate/verify"
)

// trustFlags are the cosign-compatible flags that say who is trusted and
// what the signature material must carry. Each has cosign's meaning; the
// ones that change nothing in wardgate (which never goes online) are
// accepted with a one-line note.
type trustFlags struct {
	keys           []string
	identities     []string
	identityRegexp []string
	issuers        []string
	issuerRegexp   []string
	trustedRoot    string
	threshold      int

	certificate      string
	certificateChain string
	timestampChain   string
	ignoreTlog       bool
	ignoreSCT        bool
	offline          bool
	rfc3161          string
	signedTimestamps bool
	newBundleFormat  bool
	workflow         verify.GitHubWorkflow

	cmd *cobra.Command
}

func (f *trustFlags) register(cmd *cobra.Command) {
	f.cmd = cmd
	fs := cmd.Flags()
	fs.StringArrayVar(&f.keys, "key", nil, "trusted public key: a PEM file, or a KMS or PKCS#11 key reference (awskms://, gcpkms://, azurekms://, hashivault://, pkcs11:); repeat for several signers")
	fs.StringArrayVar(&f.identities, "certificate-identity", nil, "keyless: expected certificate identity (SAN); repeat for several signers")
	fs.StringArrayVar(&f.identityRegexp, "certificate-identity-regexp", nil, "keyless: regular expression for the certificate identity")
	fs.StringArrayVar(&f.issuers, "certificate-oidc-issuer", nil, "keyless: expected OIDC issuer (one for all identities, or one per identity)")
	fs.StringArrayVar(&f.issuerRegexp, "certificate-oidc-issuer-regexp", nil, "keyless: regular expression for the OIDC issuer")
	fs.StringVar(&f.trustedRoot, "trusted-root", "", "Sigstore trusted_root.json (Fulcio, Rekor, CT logs, TSAs); never fetched")
	fs.IntVar(&f.threshold, "threshold", 1, "require this many distinct trusted signers (k of n)")
	fs.StringVar(&f.certificate, "certificate", "", "keyless: the signing certificate (PEM) of a raw signature or DSSE envelope (cosign sign-blob --output-certificate)")
	fs.StringVar(&f.certificateChain, "certificate-chain", "", "keyless: PEM certificates of a CA trusted besides the trusted root's, the signing certificate's issuer first and the root last")
	fs.BoolVar(&f.ignoreTlog, "insecure-ignore-tlog", false, "do not check transparency log entries (a keyless signature then needs a signed timestamp or a certificate valid now)")
	fs.BoolVar(&f.ignoreSCT, "insecure-ignore-sct", false, "keyless: do not require a signed certificate timestamp even when the trusted root has CT logs")
	fs.BoolVar(&f.offline, "offline", false, "verify with the material given only: a transparency log entry must be in the bundle (wardgate never looks one up)")
	fs.StringVar(&f.rfc3161, "rfc3161-timestamp", "", "RFC 3161 timestamp over the signature (cosign's JSON, or DER), checked against the trusted root's TSAs")
	fs.StringVar(&f.timestampChain, "timestamp-certificate-chain", "", "PEM certificates of a timestamping authority trusted besides the trusted root's: its root, intermediates and, unless the timestamps carry it, its signing certificate")
	fs.BoolVar(&f.signedTimestamps, "use-signed-timestamps", false, "require an RFC 3161 timestamp from a TSA of the trusted root")
	fs.BoolVar(&f.newBundleFormat, "new-bundle-format", false, "accepted for cosign compatibility: wardgate reads every bundle format from its content")
	fs.StringVar(&f.workflow.Trigger, "certificate-github-workflow-trigger", "", "keyless: the GitHub workflow trigger the certificate must name")
	fs.StringVar(&f.workflow.SHA, "certificate-github-workflow-sha", "", "keyless: the commit SHA the certificate must name")
	fs.StringVar(&f.workflow.Name, "certificate-github-workflow-name", "", "keyless: the GitHub workflow name the certificate must name")
	fs.StringVar(&f.workflow.Repository, "certificate-github-workflow-repository", "", "keyless: the GitHub repository the certificate must name")
	fs.StringVar(&f.workflow.Ref, "certificate-github-workflow-ref", "", "keyless: the git ref the certificate must name")
}

// notes are the one-line remarks on flags that change nothing here.
func (f *trustFlags) notes(w io.Writer) {
	if f.newBundleFormat {
		fmt.Fprintln(w, "wardgate: note: --new-bundle-format changes nothing: every bundle format is read from its content")
	}
}

// policy loads keys and the trusted root named by the flags.
func (f *trustFlags) policy(ctx context.Context) (*verify.Policy, error) {
	if f.threshold < 1 {
		return nil, fmt.Errorf("--threshold %d: must be at least 1", f.threshold)
	}
	pol := &verify.Policy{Threshold: f.threshold, RequireTlog: f.offline && !f.ignoreTlog, IgnoreTlogUnsafe: f.ignoreTlog,
		IgnoreSCTUnsafe: f.ignoreSCT, RequireSignedTimestamp: f.signedTimestamps}
	for _, k := range f.keys {
		key, err := verify.LoadKey(ctx, k)
		if err != nil {
			return nil, err
		}
		pol.Keys = append(pol.Keys, key)
	}
	ids, err := f.identityList()
	if err != nil {
		return nil, err
	}
	if f.workflow != (verify.GitHubWorkflow{}) {
		if len(ids) == 0 {
			return nil, errors.New("--certificate-github-workflow-* need --certificate-identity and --certificate-oidc-issuer")
		}
		for i := range ids {
			ids[i].Workflow = f.workflow
		}
	}
	pol.Identities = ids
	if f.trustedRoot != "" {
		tr, err := verify.LoadTrustedRoot(f.trustedRoot)
		if err != nil {
			return nil, err
		}
		pol.TrustedRoot = tr
	}
	if f.certificateChain != "" {
		data, err := verify.ReadFileLimited(f.certificateChain, verify.MaxTrustedRootBytes)
		if err != nil {
			return nil, err
		}
		if pol.CertificateChain, err = verify.ParseCertificateChain(data, f.certificateChain); err != nil {
			return nil, err
		}
	}
	if f.timestampChain != "" {
		data, err := verify.ReadFileLimited(f.timestampChain, verify.MaxTrustedRootBytes)
		if err != nil {
			return nil, err
		}
		if pol.TimestampChain, err = verify.ParseTimestampChain(data, f.timestampChain); err != nil {
			return nil, err
		}
	}
	if f.certificate != "" && len(ids) == 0 {
		return nil, errors.New("--certificate needs --certificate-identity (or -regexp) and --certificate-oidc-issuer (or -regexp): the identity the certificate must carry")
	}
	return pol, pol.Validate()
}

// imageOnly refuses the flags that attach material to raw signatures: an
// image's signatures carry their own certificate and timestamps.
func (f *trustFlags) imageOnly() error {
	if f.certificate != "" || f.rfc3161 != "" {
		return errors.New("--certificate and --rfc3161-timestamp are for blobs: an image's signatures carry their own certificates and timestamps")
	}
	return nil
}

// material is what the flags attach to every signature input: the
// --certificate and the --rfc3161-timestamp.
func (f *trustFlags) material() (cert, ts []byte, err error) {
	if f.certificate != "" {
		data, err := verify.ReadFileLimited(f.certificate, verify.MaxKeyBytes)
		if err != nil {
			return nil, nil, err
		}
		c, err := verify.ParseCertificate(data, f.certificate)
		if err != nil {
			return nil, nil, err
		}
		cert = c.Raw
	}
	if f.rfc3161 != "" {
		data, err := verify.ReadFileLimited(f.rfc3161, verify.MaxSignatureBytes)
		if err != nil {
			return nil, nil, err
		}
		if ts, err = verify.ParseRFC3161Timestamp(data, f.rfc3161); err != nil {
			return nil, nil, err
		}
	}
	return cert, ts, nil
}

// loadSignatures reads signature files and attaches the flags' material.
func (f *trustFlags) loadSignatures(paths []string) ([]verify.Signature, error) {
	cert, ts, err := f.material()
	if err != nil {
		return nil, err
	}
	var sigs []verify.Signature
	for _, p := range paths {
		s, err := verify.LoadSignature(p)
		if err != nil {
			return nil, err
		}
		s.Certificate, s.Timestamp = cert, ts
		sigs = append(sigs, s)
	}
	return sigs, nil
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
		Long: `Verify a blob with cosign's flags (cosign verify-blob). The blob is hashed
in one streaming pass.

FILE may also be sha256:<hex> when only the digest is known.

Keys: --key takes a PEM file or a key reference, as cosign does:
awskms://, gcpkms://, azurekms://, hashivault:// (sigstore's KMS providers,
credentials from each provider's usual environment) and pkcs11: URIs for
hardware security modules. Only the public key is fetched.

Keyless: --certificate-identity and --certificate-oidc-issuer with a
--trusted-root (or a --certificate-chain). A raw signature made with cosign
sign-blob --output-certificate is verified with --certificate.

With --batch LIST, each line of LIST is "BLOB SIGNATURE_OR_BUNDLE"; relative
paths are relative to LIST's directory. Every line is verified in one
process on every core, a bad line is reported on its own (exit 2 for it)
and the others are still verified; a summary line ends the text output.

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
			pol, err := cfg.trust.policy(cmd.Context())
			if err != nil {
				return noVerdict(err)
			}
			cfg.trust.notes(cmd.ErrOrStderr())
			if cfg.batch != "" {
				return runBatch(cmd.Context(), cmd.OutOrStdout(), cfg, pol)
			}
			res, err := verifyBlob(cmd.Context(), args[0], append(cfg.signatures, cfg.bundles...), &cfg.trust, pol)
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

func verifyBlob(ctx context.Context, blob string, sigPaths []string, tf *trustFlags, pol *verify.Policy) (*verify.Result, error) {
	art, err := verify.ArtifactFromArg(blob)
	if err != nil {
		return nil, err
	}
	sigs, err := tf.loadSignatures(sigPaths)
	if err != nil {
		return nil, err
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

// batchSummary is the last JSON line of --batch -o json.
type batchSummary struct {
	Summary struct {
		Lines    int `json:"lines"`
		Verified int `json:"verified"`
		Failed   int `json:"failed"`
		Errors   int `json:"errors"`
	} `json:"summary"`
}

const maxBatchLines = 1 << 20

// batchJob is one line of a batch list: a malformed line keeps its error
// and is reported in its place.
type batchJob struct {
	line      int
	blob, sig string
	err       error
}

// readBatch parses the list. Relative paths are relative to the list's
// directory, so a list travels with the files it names.
func readBatch(list string) ([]batchJob, error) {
	f, err := verify.OpenRegular(list)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	base := filepath.Dir(list)
	rel := func(p string) string {
		if filepath.IsAbs(p) || strings.HasPrefix(p, "sha256:") {
			return p
		}
		return filepath.Join(base, p)
	}
	var jobs []batchJob
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if len(jobs) >= maxBatchLines {
			return nil, fmt.Errorf("%s: more than %d lines", list, maxBatchLines)
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			jobs = append(jobs, batchJob{line: n, err: fmt.Errorf("%s:%d: want \"BLOB_PATH SIGNATURE_OR_BUNDLE_PATH\", got %d fields", list, n, len(fields))})
			continue
		}
		jobs = append(jobs, batchJob{line: n, blob: rel(fields[0]), sig: rel(fields[1])})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", list, err)
	}
	return jobs, nil
}

func runBatch(ctx context.Context, w io.Writer, cfg blobConfig, pol *verify.Policy) error {
	jobs, err := readBatch(cfg.batch)
	if err != nil {
		return noVerdict(err)
	}
	results := make([]batchResult, len(jobs))
	var wg sync.WaitGroup
	next := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range next {
				j := jobs[i]
				results[i] = batchResult{Line: j.line}
				if j.err != nil {
					results[i].Error, results[i].Reason = j.err.Error(), verify.ReasonBadInput
					continue
				}
				res, err := verifyBlob(ctx, j.blob, []string{j.sig}, &cfg.trust, pol)
				results[i].Result = res
				if err != nil {
					results[i].Error = fmt.Sprintf("line %d: %v", j.line, err)
					results[i].Reason = reasonOf(err)
				}
			}
		})
	}
	for i := range jobs {
		next <- i
	}
	close(next)
	wg.Wait()
	var sum batchSummary
	sum.Summary.Lines = len(results)
	bw := bufio.NewWriter(w)
	for _, r := range results {
		switch {
		case r.Error != "":
			sum.Summary.Errors++
		case r.Result.Verified:
			sum.Summary.Verified++
		default:
			sum.Summary.Failed++
		}
		if cfg.output == "json" {
			b, err := json.Marshal(r)
			if err != nil {
				return noVerdict(err)
			}
			bw.Write(append(b, '\n'))
			continue
		}
		if r.Error != "" {
			fmt.Fprintf(bw, "ERROR     %s\n", r.Error)
		} else {
			printText(bw, r.Result)
		}
	}
	s := sum.Summary
	if cfg.output == "json" {
		b, err := json.Marshal(sum)
		if err != nil {
			return noVerdict(err)
		}
		bw.Write(append(b, '\n'))
	} else {
		fmt.Fprintf(bw, "summary: %d lines: %d verified, %d failed, %d could not be verified\n", s.Lines, s.Verified, s.Failed, s.Errors)
	}
	if err := bw.Flush(); err != nil {
		return noVerdict(err)
	}
	switch {
	case s.Errors > 0:
		return verdict(ExitNoVerdict)
	case s.Failed > 0:
		return verdict(ExitFail)
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
