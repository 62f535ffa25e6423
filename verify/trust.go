package verify

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	"github.com/sigstore/sigstore-go/pkg/root"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

// Size limits on everything this package reads into memory. Blobs are never
// read whole: they are hashed in one streaming pass.
const (
	MaxKeyBytes         = 64 << 10 // a PEM public key
	MaxSignatureBytes   = 1 << 20  // a raw signature (base64 or raw)
	MaxBundleBytes      = 32 << 20 // a Sigstore or cosign bundle, a DSSE envelope
	MaxTrustedRootBytes = 16 << 20 // a Sigstore TrustedRoot JSON
	MaxManifestBytes    = 4 << 20  // an OCI manifest or index
	MaxLayerBytes       = 32 << 20 // a signature or attestation layer
)

// Key is a trusted public key, named by its ID (the hex SHA-256 of its DER
// SubjectPublicKeyInfo, as cosign and Rekor compute it).
type Key struct {
	ID     string
	Source string // the file it came from, for messages
	Public crypto.PublicKey
	// Valid bounds when the key may have signed; zero is unbounded.
	Valid Window
}

// Window is when a trusted signer may have signed (a vendor key revoked on
// a date). It is checked as sigstore-go checks the validity periods of
// keys and authorities (root.ExpiringKey), against the signature's trusted
// times (transparency log integrated time, RFC 3161 timestamp), never the
// clock: a signature by a signer with a window and no trusted time fails
// as ReasonUntimed, one made outside the window as ReasonKeyRevoked.
type Window struct {
	From, Until time.Time
}

// IsZero reports whether the window is unbounded.
func (w Window) IsZero() bool { return w.From.IsZero() && w.Until.IsZero() }

// checker is the window as sigstore-go's validity period.
func (w Window) checker() root.ValidityPeriodChecker {
	return root.NewExpiringKey(nil, w.From, w.Until)
}

func (w Window) String() string {
	f, u := "any time", "any time"
	if !w.From.IsZero() {
		f = w.From.UTC().Format(time.RFC3339)
	}
	if !w.Until.IsZero() {
		u = w.Until.UTC().Format(time.RFC3339)
	}
	return "from " + f + " until " + u
}

// LogValue keeps keys out of logs except for their ID.
func (k Key) String() string { return "key " + k.ID }

// ParsePublicKey parses a PEM (or DER) public key: ECDSA, Ed25519 or RSA.
func ParsePublicKey(data []byte, source string) (Key, error) {
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(data)
	if err != nil {
		der, derr := x509.ParsePKIXPublicKey(data)
		if derr != nil {
			return Key{}, inputErr(ReasonBadInput, "public key %s: not a PEM or DER public key: %v", source, err)
		}
		pub = der
	}
	switch p := pub.(type) {
	case *ecdsa.PublicKey, ed25519.PublicKey:
	case *rsa.PublicKey:
		if p.N.BitLen() < 2048 {
			return Key{}, inputErr(ReasonBadInput, "public key %s: RSA key of %d bits is too small (need 2048 or more)", source, p.N.BitLen())
		}
	default:
		return Key{}, inputErr(ReasonBadInput, "public key %s: unsupported key type %T", source, pub)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return Key{}, inputErr(ReasonBadInput, "public key %s: %v", source, err)
	}
	sum := sha256.Sum256(der)
	return Key{ID: hex.EncodeToString(sum[:]), Source: source, Public: pub}, nil
}

// LoadPublicKey reads and parses a public key file.
func LoadPublicKey(path string) (Key, error) {
	data, err := ReadFileLimited(path, MaxKeyBytes)
	if err != nil {
		return Key{}, err
	}
	return ParsePublicKey(data, path)
}

// verifier returns the sigstore signature verifier for the key. ECDSA uses
// the hash that matches the curve; RSA PKCS#1 v1.5 with SHA-256 (cosign's
// default); Ed25519 is pure Ed25519 over the message.
func (k Key) verifier() (signature.Verifier, error) {
	switch p := k.Public.(type) {
	case *ecdsa.PublicKey:
		h := crypto.SHA256
		switch p.Curve.Params().BitSize {
		case 384:
			h = crypto.SHA384
		case 521:
			h = crypto.SHA512
		}
		return signature.LoadECDSAVerifier(p, h)
	case *rsa.PublicKey:
		return signature.LoadRSAPKCS1v15Verifier(p, crypto.SHA256)
	case ed25519.PublicKey:
		return signature.LoadED25519Verifier(p)
	}
	return nil, fmt.Errorf("unsupported key type %T", k.Public)
}

// Identity is a keyless signer: the certificate's subject alternative name
// and OIDC issuer, each exact or a regular expression.
type Identity struct {
	Subject       string `json:"subject,omitempty"`
	SubjectRegexp string `json:"subjectRegexp,omitempty"`
	Issuer        string `json:"issuer,omitempty"`
	IssuerRegexp  string `json:"issuerRegexp,omitempty"`
	// Workflow, when any field is set, must match the GitHub Actions
	// extensions of the certificate (cosign's
	// --certificate-github-workflow-* flags).
	Workflow GitHubWorkflow `json:"githubWorkflow,omitzero"`
	// Valid bounds when the identity may have signed; zero is unbounded.
	Valid Window `json:"-"`
}

// GitHubWorkflow holds the values the Fulcio GitHub workflow extensions
// (OIDs 1.3.6.1.4.1.57264.1.2 to .6) must have; empty fields are not checked.
type GitHubWorkflow struct {
	Trigger    string `json:"trigger,omitempty"`
	SHA        string `json:"sha,omitempty"`
	Name       string `json:"name,omitempty"`
	Repository string `json:"repository,omitempty"`
	Ref        string `json:"ref,omitempty"`
}

func (id Identity) String() string {
	s, i := id.Subject, id.Issuer
	if s == "" {
		s = "~" + id.SubjectRegexp
	}
	if i == "" {
		i = "~" + id.IssuerRegexp
	}
	return s + " (issuer " + i + ")"
}

func (id Identity) sigstore() (sgverify.CertificateIdentity, error) {
	if id.Subject == "" && id.SubjectRegexp == "" {
		return sgverify.CertificateIdentity{}, errors.New("identity needs --certificate-identity or --certificate-identity-regexp")
	}
	if id.Issuer == "" && id.IssuerRegexp == "" {
		return sgverify.CertificateIdentity{}, errors.New("identity needs --certificate-oidc-issuer or --certificate-oidc-issuer-regexp")
	}
	san, err := sgverify.NewSANMatcher(id.Subject, id.SubjectRegexp)
	if err != nil {
		return sgverify.CertificateIdentity{}, err
	}
	iss, err := sgverify.NewIssuerMatcher(id.Issuer, id.IssuerRegexp)
	if err != nil {
		return sgverify.CertificateIdentity{}, err
	}
	w := id.Workflow
	return sgverify.NewCertificateIdentity(san, iss, certificate.Extensions{
		GithubWorkflowTrigger: w.Trigger, GithubWorkflowSHA: w.SHA, GithubWorkflowName: w.Name,
		GithubWorkflowRepository: w.Repository, GithubWorkflowRef: w.Ref,
	})
}

// LoadTrustedRoot reads a Sigstore TrustedRoot JSON file. It never fetches
// anything: the file is the whole of the trust.
func LoadTrustedRoot(path string) (*root.TrustedRoot, error) {
	data, err := ReadFileLimited(path, MaxTrustedRootBytes)
	if err != nil {
		return nil, err
	}
	tr, err := root.NewTrustedRootFromJSON(data)
	if err != nil {
		return nil, inputErr(ReasonBadInput, "trusted root %s: %v", path, err)
	}
	return tr, nil
}

// Policy says who is trusted to sign and how many of them must.
type Policy struct {
	// Keys are trusted public keys; each is one signer.
	Keys []Key
	// Identities are trusted keyless signers; each is one signer.
	Identities []Identity
	// TrustedRoot holds the Fulcio CAs, Rekor logs, CT logs and TSAs used to
	// check certificates, log entries and timestamps. Required for keyless
	// signers; with keys, used to check log entries when a bundle has them.
	TrustedRoot root.TrustedMaterial
	// Threshold is how many distinct trusted signers must have signed (k of
	// n). Zero means one; a negative value is refused.
	Threshold int
	// CertificateChain is a certificate authority trusted besides the
	// trusted root's (cosign --certificate-chain): the issuer of the signing
	// certificate first, the root last. The root is trusted as given.
	CertificateChain []*x509.Certificate
	// TimestampChain is a timestamping authority trusted besides the
	// trusted root's (cosign --timestamp-certificate-chain): its root,
	// intermediates and, unless timestamps carry it, its signing
	// certificate. Nil when none was given.
	TimestampChain *root.SigstoreTimestampingAuthority
	// RequireTlog makes a transparency log entry in the signature material
	// mandatory (cosign --offline: the entry cannot be looked up, so it must
	// be carried). Without it, entries present are checked and none is
	// required.
	RequireTlog bool
	// IgnoreTlogUnsafe skips transparency log entries altogether (cosign
	// --insecure-ignore-tlog): a keyless signature then needs an RFC 3161
	// timestamp, or a certificate that is valid now.
	IgnoreTlogUnsafe bool
	// IgnoreSCTUnsafe does not require a signed certificate timestamp in
	// keyless certificates even when the trusted root lists CT logs (cosign
	// --insecure-ignore-sct).
	IgnoreSCTUnsafe bool
	// RequireSignedTimestamp makes an RFC 3161 timestamp from a trusted
	// timestamping authority mandatory (cosign --use-signed-timestamps).
	RequireSignedTimestamp bool
}

// trusted is the trusted material keyless signatures are checked against:
// the trusted root, plus the --certificate-chain authority. Nil when there
// is neither.
func (p *Policy) trusted() root.TrustedMaterial {
	var ca chainAuthority
	if chain := p.CertificateChain; len(chain) > 0 {
		ca.cas = []root.CertificateAuthority{&root.FulcioCertificateAuthority{Root: chain[len(chain)-1], Intermediates: chain[:len(chain)-1]}}
	}
	return p.withChains(ca)
}

// keyMaterial is what checks the log entries and timestamps of a key
// signature: the trusted root, plus the --timestamp-certificate-chain
// authority. Nil when there is neither.
func (p *Policy) keyMaterial() root.TrustedMaterial { return p.withChains(chainAuthority{}) }

func (p *Policy) withChains(ca chainAuthority) root.TrustedMaterial {
	if p.TimestampChain != nil {
		ca.tsas = []root.TimestampingAuthority{p.TimestampChain}
	}
	if len(ca.cas) == 0 && len(ca.tsas) == 0 {
		return p.TrustedRoot
	}
	tm := root.TrustedMaterialCollection{ca}
	if p.TrustedRoot != nil {
		tm = append(root.TrustedMaterialCollection{p.TrustedRoot}, tm...)
	}
	return tm
}

// chainAuthority is a certificate authority and a timestamping authority
// given on the command line and nothing else: no logs.
type chainAuthority struct {
	cas  []root.CertificateAuthority
	tsas []root.TimestampingAuthority
}

func (c chainAuthority) FulcioCertificateAuthorities() []root.CertificateAuthority { return c.cas }
func (c chainAuthority) TimestampingAuthorities() []root.TimestampingAuthority     { return c.tsas }
func (chainAuthority) RekorLogs() map[string]*root.TransparencyLog                 { return nil }
func (chainAuthority) CTLogs() map[string]*root.TransparencyLog                    { return nil }
func (chainAuthority) PublicKeyVerifier(string) (root.TimeConstrainedVerifier, error) {
	return nil, errors.New("a certificate chain holds no public keys")
}

// ParseCertificateChain parses PEM certificates (cosign's
// --certificate-chain): the signing certificate's issuer first, the root
// last.
func ParseCertificateChain(data []byte, source string) ([]*x509.Certificate, error) {
	certs, err := cryptoutils.UnmarshalCertificatesFromPEM(data)
	if err != nil {
		return nil, inputErr(ReasonBadInput, "certificate chain %s: %v", source, err)
	}
	if len(certs) == 0 {
		return nil, inputErr(ReasonBadInput, "certificate chain %s: no PEM certificate in it", source)
	}
	return certs, nil
}

// ParseTimestampChain parses the PEM certificates of a timestamping
// authority (cosign's --timestamp-certificate-chain): one self-signed
// root, any intermediates and, optionally, the signing certificate (the
// one with the time-stamping extended key usage), in any order.
func ParseTimestampChain(data []byte, source string) (*root.SigstoreTimestampingAuthority, error) {
	certs, err := ParseCertificateChain(data, source)
	if err != nil {
		return nil, inputErr(ReasonBadInput, "timestamp %v", err)
	}
	tsa := &root.SigstoreTimestampingAuthority{}
	for _, c := range certs {
		switch {
		case c.IsCA && bytes.Equal(c.RawSubject, c.RawIssuer) && c.CheckSignatureFrom(c) == nil:
			if tsa.Root != nil {
				return nil, inputErr(ReasonBadInput, "timestamp certificate chain %s: more than one root (self-signed) certificate", source)
			}
			tsa.Root = c
		case !c.IsCA && slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageTimeStamping):
			if tsa.Leaf != nil {
				return nil, inputErr(ReasonBadInput, "timestamp certificate chain %s: more than one time-stamping certificate", source)
			}
			tsa.Leaf = c
		default:
			tsa.Intermediates = append(tsa.Intermediates, c)
		}
	}
	if tsa.Root == nil {
		return nil, inputErr(ReasonBadInput, "timestamp certificate chain %s: no root (self-signed CA) certificate", source)
	}
	return tsa, nil
}

// ParseCertificate parses one certificate, PEM (base64-wrapped PEM, as
// cosign sign-blob --output-certificate writes it, too) or DER.
func ParseCertificate(data []byte, source string) (*x509.Certificate, error) {
	data = bytes.TrimSpace(data)
	if !bytes.HasPrefix(data, []byte("-----BEGIN")) {
		if dec, err := base64.StdEncoding.DecodeString(string(data)); err == nil && bytes.Contains(dec, []byte("-----BEGIN")) {
			data = dec
		}
	}
	if bytes.Contains(data, []byte("-----BEGIN")) {
		certs, err := cryptoutils.UnmarshalCertificatesFromPEM(data)
		if err != nil {
			return nil, inputErr(ReasonBadInput, "certificate %s: %v", source, err)
		}
		if len(certs) != 1 {
			return nil, inputErr(ReasonBadInput, "certificate %s: want one certificate, found %d (the chain goes in --certificate-chain)", source, len(certs))
		}
		return certs[0], nil
	}
	c, err := x509.ParseCertificate(data)
	if err != nil {
		return nil, inputErr(ReasonBadInput, "certificate %s: not a PEM or DER certificate: %v", source, err)
	}
	return c, nil
}

// Validate checks the policy is usable.
func (p *Policy) Validate() error {
	if len(p.Keys) == 0 && len(p.Identities) == 0 {
		return inputErr(ReasonBadInput, "no trusted signer: give --key or --certificate-identity with --certificate-oidc-issuer")
	}
	if len(p.Identities) > 0 && p.TrustedRoot == nil && len(p.CertificateChain) == 0 {
		return inputErr(ReasonBadInput, "keyless verification needs --trusted-root (a Sigstore trusted_root.json) or --certificate-chain; wardgate never fetches one")
	}
	if p.RequireTlog && p.IgnoreTlogUnsafe {
		return inputErr(ReasonBadInput, "a transparency log entry cannot be both required (--offline) and ignored (--insecure-ignore-tlog)")
	}
	for _, id := range p.Identities {
		if _, err := id.sigstore(); err != nil {
			return inputErr(ReasonBadInput, "certificate identity: %v", err)
		}
	}
	n := len(p.Keys) + len(p.Identities)
	if p.Threshold < 0 || p.Threshold > n {
		return inputErr(ReasonBadInput, "--threshold %d: must be between 1 and the number of trusted signers (%d)", p.Threshold, n)
	}
	return nil
}

func (p *Policy) threshold() int {
	if p.Threshold <= 0 {
		return 1
	}
	return p.Threshold
}

// ReadFileLimited reads a regular file of at most max bytes. Directories,
// symlinks, devices and oversized files are refused with an InputError.
func ReadFileLimited(path string, max int64) ([]byte, error) {
	f, err := OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, inputErr(ReasonBadInput, "read %s: %v", path, err)
	}
	if int64(len(data)) > max {
		return nil, inputErr(ReasonBadInput, "%s: larger than the %d byte limit", path, max)
	}
	return data, nil
}

// OpenRegular opens path only if it is a regular file and not a symlink.
func OpenRegular(path string) (*os.File, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, inputErr(ReasonBadInput, "%v", err)
	}
	switch {
	case fi.Mode()&os.ModeSymlink != 0:
		return nil, inputErr(ReasonBadInput, "%s: is a symbolic link; give the file it points to", path)
	case fi.IsDir():
		return nil, inputErr(ReasonBadInput, "%s: is a directory, not a file", path)
	case !fi.Mode().IsRegular():
		return nil, inputErr(ReasonBadInput, "%s: is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, inputErr(ReasonBadInput, "%v", err)
	}
	return f, nil
}
