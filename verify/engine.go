package verify

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature"
	"google.golang.org/protobuf/encoding/protojson"
)

// Signer names who made a verified signature.
type Signer struct {
	// KeyID is set for key signers: the hex SHA-256 of the key's DER.
	KeyID string `json:"keyId,omitempty"`
	// Identity and Issuer are set for keyless signers, from the certificate.
	Identity string `json:"identity,omitempty"`
	Issuer   string `json:"issuer,omitempty"`
	// index of the trusted signer in the policy (keys first, then identities).
	index int
}

// LogEntry is a transparency log entry carried by a signature.
type LogEntry struct {
	LogIndex       int64      `json:"logIndex"`
	LogID          string     `json:"logId"`
	IntegratedTime *time.Time `json:"integratedTime,omitempty"`
}

// SignatureResult is the outcome for one signature input.
type SignatureResult struct {
	Source        string      `json:"source"`
	Format        string      `json:"format"`
	Verified      bool        `json:"verified"`
	Signer        *Signer     `json:"signer,omitempty"`
	LogEntries    []LogEntry  `json:"logEntries,omitempty"`
	Timestamps    []time.Time `json:"timestamps,omitempty"`
	PredicateType string      `json:"predicateType,omitempty"`
	Reason        Reason      `json:"reason,omitempty"`
	Detail        string      `json:"detail,omitempty"`
	// Predicate is a verified attestation's predicate (JSON), for callers
	// that read it (the gate's SLSA provenance); nil for signatures.
	Predicate json.RawMessage `json:"-"`
}

// Subject is what was verified.
type Subject struct {
	Kind   string `json:"kind"` // blob or image
	Name   string `json:"name"`
	Digest string `json:"digest"` // sha256:<hex>
	Size   int64  `json:"size,omitempty"`
}

// ResultSchema identifies the JSON form of Result.
const ResultSchema = "wardgate.dev/verify-result/v1"

// Result is the verdict on one artifact. It is returned whenever a verdict
// could be reached, including a failed one.
type Result struct {
	Schema         string            `json:"schema"`
	Artifact       Subject           `json:"artifact"`
	Verified       bool              `json:"verified"`
	Reasons        []Reason          `json:"reasons"`
	Message        string            `json:"message"`
	Threshold      int               `json:"threshold"`
	TrustedSigners []Signer          `json:"trustedSigners"`
	Signatures     []SignatureResult `json:"signatures"`
}

// artifactInput is how sigstore-go gets the artifact: its SHA-256 always,
// and for Ed25519 message signatures (which sign the message, not a digest)
// a way to re-read the content.
type artifactInput struct {
	digest []byte
	open   func() (io.ReadCloser, error) // nil when only the digest is known
	// payload, when set, is the exact signed message (classic image sigs).
	payload []byte
}

// policy is how sigstore-go sees the artifact: the exact payload when one
// was signed, the content when the signature covers the message itself
// (pure Ed25519: pureMessage), else the digest.
func (a artifactInput) policy(b *bundle.Bundle, pureMessage bool) (sgverify.ArtifactPolicyOption, func(), error) {
	if a.payload != nil {
		return sgverify.WithArtifact(bytes.NewReader(a.payload)), func() {}, nil
	}
	if a.open != nil && b.GetMessageSignature() != nil && pureMessage {
		rc, err := a.open()
		if err != nil {
			return nil, nil, err
		}
		return sgverify.WithArtifact(rc), func() { rc.Close() }, nil
	}
	return sgverify.WithArtifactDigest("sha256", a.digest), func() {}, nil
}

// certSignsMessage is true for keyless signatures that cover the message
// itself (an Ed25519 certificate), which cannot be checked against a digest.
func certSignsMessage(b *bundle.Bundle) bool {
	vc, err := b.VerificationContent()
	if err != nil {
		return false
	}
	if c := vc.Certificate(); c != nil {
		return c.PublicKeyAlgorithm.String() == "Ed25519"
	}
	return false
}

// engine verifies parsed signatures against a policy.
type engine struct {
	pol *Policy
}

func (e *engine) checkOne(p *parsed, src string, art artifactInput, check func(*sgverify.VerificationResult) (Reason, string)) SignatureResult {
	sr := SignatureResult{Source: src, Format: describeFormat(p)}
	b, err := p.entity(art.digest)
	if err != nil {
		sr.Reason, sr.Detail = ReasonMalformed, err.Error()
		return sr
	}
	sr.LogEntries = logEntries(b)
	// A message signature names its digest: compare before any crypto, so a
	// modified artifact is reported as such and not as a bad signature.
	d := claimedDigest(b)
	if p.logDigest != nil {
		d = p.logDigest
	}
	if d != nil && art.payload == nil && !bytes.Equal(d, art.digest) {
		sr.Reason = ReasonDigestMismatch
		sr.Detail = fmt.Sprintf("signature is for sha256:%s, artifact is sha256:%s", hex.EncodeToString(d), hex.EncodeToString(art.digest))
		return sr
	}
	if p.hasCertificate() {
		e.checkKeyless(&sr, p, b, art, check)
	} else {
		e.checkKeyed(&sr, p, b, art, check)
	}
	return sr
}

func (e *engine) checkKeyless(sr *SignatureResult, p *parsed, b *bundle.Bundle, art artifactInput, check func(*sgverify.VerificationResult) (Reason, string)) {
	if len(e.pol.Identities) == 0 {
		sr.Reason = ReasonUntrustedSigner
		sr.Detail = "signed with a certificate (keyless), but only keys are trusted: give --certificate-identity and --certificate-oidc-issuer"
		if s := certSigner(b); s != nil {
			sr.Detail = fmt.Sprintf("signed keyless by %s (issuer %s), but only keys are trusted", s.Identity, s.Issuer)
		}
		return
	}
	tm := e.pol.trusted()
	if tm == nil {
		sr.Reason, sr.Detail = ReasonUntrustedSigner, "keyless signature, but no --trusted-root was given"
		return
	}
	if e.pol.IgnoreTlogUnsafe {
		b = stripTlog(b)
	}
	if r, d := e.precheck(b); r != "" {
		sr.Reason, sr.Detail = r, d
		return
	}
	v, err := sgverify.NewVerifier(tm, e.verifierOptions(b, tm, true)...)
	if err != nil {
		sr.Reason, sr.Detail = ReasonMalformed, err.Error()
		return
	}
	var opts []sgverify.PolicyOption
	for _, id := range e.pol.Identities {
		cid, err := id.sigstore()
		if err != nil {
			sr.Reason, sr.Detail = ReasonBadInput, err.Error()
			return
		}
		opts = append(opts, sgverify.WithCertificateIdentity(cid))
	}
	ap, done, err := art.policy(b, certSignsMessage(b))
	if err != nil {
		sr.Reason, sr.Detail = ReasonBadInput, err.Error()
		return
	}
	res, err := v.Verify(b, sgverify.NewPolicy(ap, opts...))
	done()
	if err != nil {
		sr.Reason, sr.Detail = classify(err, true), err.Error()
		return
	}
	s := certSigner(b)
	if s == nil {
		sr.Reason, sr.Detail = ReasonMalformed, "verified certificate has no identity"
		return
	}
	s.index = -1
	for i, id := range e.pol.Identities {
		cid, _ := id.sigstore()
		if res.Signature != nil && res.Signature.Certificate != nil && cid.Verify(*res.Signature.Certificate) == nil {
			s.index = len(e.pol.Keys) + i
			break
		}
	}
	e.finish(sr, s, res, check)
}

func (e *engine) checkKeyed(sr *SignatureResult, p *parsed, b *bundle.Bundle, art artifactInput, check func(*sgverify.VerificationResult) (Reason, string)) {
	if len(e.pol.Keys) == 0 {
		sr.Reason, sr.Detail = ReasonUntrustedSigner, "signed with a key, but only keyless identities are trusted: give --key"
		return
	}
	var errs []error
	var reasons []Reason
	for i, k := range e.pol.Keys {
		sv, err := k.verifier()
		if err != nil {
			sr.Reason, sr.Detail = ReasonBadInput, err.Error()
			return
		}
		tm := root.TrustedMaterialCollection{trustedKey{sv, k.Valid}}
		opts := []sgverify.VerifierOption{sgverify.WithCurrentTime()}
		if e.pol.IgnoreTlogUnsafe {
			b = stripTlog(b)
		}
		if r, d := e.precheck(b); r != "" {
			sr.Reason, sr.Detail = r, d
			return
		}
		if rm := e.pol.keyMaterial(); rm != nil {
			tm = append(root.TrustedMaterialCollection{rm}, tm...)
			opts = e.verifierOptions(b, rm, false)
		} else if hasTlog(b) {
			// Without a trusted root the log entry cannot be checked; the
			// key signature alone is what is verified (reported as such).
			b = stripTlog(b)
		}
		v, err := sgverify.NewVerifier(tm, opts...)
		if err != nil {
			sr.Reason, sr.Detail = ReasonMalformed, err.Error()
			return
		}
		ap, done, err := art.policy(b, isEd25519(k))
		if err != nil {
			sr.Reason, sr.Detail = ReasonBadInput, err.Error()
			return
		}
		res, err := v.Verify(b, sgverify.NewPolicy(ap, sgverify.WithKey()))
		done()
		if err == nil {
			e.finish(sr, &Signer{KeyID: k.ID, index: i}, res, check)
			return
		}
		errs = append(errs, fmt.Errorf("key %s: %w", shortID(k.ID), err))
		r := classify(err, false)
		if !k.Valid.IsZero() && strings.Contains(err.Error(), "integrated time outside certificate validity") {
			// sigstore-go checked the log's integrated time against the
			// key's window (trustedKey's ExpiringKey) and it fell outside.
			r = ReasonKeyRevoked
			errs[len(errs)-1] = fmt.Errorf("key %s is trusted %s; the transparency log puts this signature outside that: %w", shortID(k.ID), k.Valid, err)
		}
		reasons = append(reasons, r)
	}
	sr.Reason = worst(reasons)
	sr.Detail = errors.Join(errs...).Error()
	if sr.Reason == ReasonUntrustedSigner {
		sr.Detail = "no trusted key verifies this signature over the artifact's digest (signed by another key, or the artifact was modified): " + sr.Detail
	}
}

func (e *engine) finish(sr *SignatureResult, s *Signer, res *sgverify.VerificationResult, check func(*sgverify.VerificationResult) (Reason, string)) {
	for _, ts := range res.VerifiedTimestamps {
		if ts.Type == "CurrentTime" || slices.ContainsFunc(sr.Timestamps, ts.Timestamp.Equal) {
			continue // not a timestamp the signature carries, or one seen twice
		}
		sr.Timestamps = append(sr.Timestamps, ts.Timestamp.UTC())
	}
	if w := e.pol.window(s.index); !w.IsZero() {
		if r, d := windowCheck(w, sr.Timestamps); r != "" {
			sr.Reason, sr.Detail, sr.Signer = r, fmt.Sprintf("%s: %s", signerName(s), d), s
			return
		}
	}
	if check != nil {
		if r, d := check(res); r != "" {
			sr.Reason, sr.Detail = r, d
			sr.Signer = s
			return
		}
	}
	if res.Statement != nil {
		sr.PredicateType = res.Statement.GetPredicateType()
		if p := res.Statement.GetPredicate(); p != nil {
			if b, err := protojson.Marshal(p); err == nil {
				sr.Predicate = b
			}
		}
	}
	sr.Verified, sr.Signer = true, s
}

// window is the validity window of the trusted signer at index (keys
// first, then identities); zero for none.
func (p *Policy) window(index int) Window {
	switch {
	case index < 0:
		return Window{}
	case index < len(p.Keys):
		return p.Keys[index].Valid
	case index-len(p.Keys) < len(p.Identities):
		return p.Identities[index-len(p.Keys)].Valid
	}
	return Window{}
}

// windowCheck checks a signature's trusted times against the signer's
// window with sigstore-go's validity period: every trusted time must lie
// inside it, and there must be one.
func windowCheck(w Window, times []time.Time) (Reason, string) {
	if len(times) == 0 {
		return ReasonUntimed, fmt.Sprintf("trusted only %s, and the signature carries no trusted time (transparency log entry or RFC 3161 timestamp) to tell when it was made", w)
	}
	c := w.checker()
	for _, t := range times {
		if !c.ValidAtTime(t) {
			return ReasonKeyRevoked, fmt.Sprintf("trusted only %s, and the signature was made at %s", w, t.UTC().Format(time.RFC3339))
		}
	}
	return "", ""
}

func signerName(s *Signer) string {
	if s.KeyID != "" {
		return "key " + shortID(s.KeyID)
	}
	return s.Identity + " (issuer " + s.Issuer + ")"
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// trustedKey is the key the user named, whatever the bundle's hint says:
// trusted within its window (at all times for a zero window). sigstore-go
// checks a log entry's integrated time against the window.
type trustedKey struct {
	signature.Verifier
	valid Window
}

func (t trustedKey) PublicKeyVerifier(string) (root.TimeConstrainedVerifier, error) {
	return root.NewExpiringKey(t.Verifier, t.valid.From, t.valid.Until), nil
}
func (trustedKey) TimestampingAuthorities() []root.TimestampingAuthority     { return nil }
func (trustedKey) FulcioCertificateAuthorities() []root.CertificateAuthority { return nil }
func (trustedKey) RekorLogs() map[string]*root.TransparencyLog               { return nil }
func (trustedKey) CTLogs() map[string]*root.TransparencyLog                  { return nil }

// precheck refuses, before any crypto, a signature that lacks what the
// policy makes mandatory (a log entry, a signed timestamp) or that cannot be
// checked without a trusted root.
func (e *engine) precheck(b *bundle.Bundle) (Reason, string) {
	if e.pol.RequireTlog {
		if !hasTlog(b) {
			return ReasonTlogInvalid, "no transparency log entry in the signature material, and --offline requires one (wardgate never looks entries up)"
		}
		if e.pol.TrustedRoot == nil {
			return ReasonTlogInvalid, "the transparency log entry cannot be checked without --trusted-root"
		}
	}
	if e.pol.RequireSignedTimestamp {
		if ts, _ := b.Timestamps(); len(ts) == 0 {
			return ReasonTimestampInvalid, "no RFC 3161 timestamp, and --use-signed-timestamps requires one"
		}
		if e.pol.TrustedRoot == nil && e.pol.TimestampChain == nil {
			return ReasonTimestampInvalid, "the RFC 3161 timestamp cannot be checked without --trusted-root or --timestamp-certificate-chain"
		}
	}
	return "", ""
}

// verifierOptions chooses what sigstore-go must see, failing closed: every
// log entry and timestamp present is checked, a keyless signature needs a
// trusted time (log or TSA), and SCTs are required when the root has CT logs
// (unless the policy ignores them).
func (e *engine) verifierOptions(b *bundle.Bundle, tm root.TrustedMaterial, keyless bool) []sgverify.VerifierOption {
	var opts []sgverify.VerifierOption
	tlog := hasTlog(b)
	ts, _ := b.Timestamps()
	if tlog || e.pol.RequireTlog {
		opts = append(opts, sgverify.WithTransparencyLog(1))
	}
	if len(ts) > 0 || e.pol.RequireSignedTimestamp {
		opts = append(opts, sgverify.WithSignedTimestamps(1))
	}
	switch {
	case tlog || len(ts) > 0:
		opts = append(opts, sgverify.WithObserverTimestamps(1))
	default:
		opts = append(opts, sgverify.WithCurrentTime())
	}
	if keyless && !e.pol.IgnoreSCTUnsafe && len(tm.CTLogs()) > 0 {
		opts = append(opts, sgverify.WithSignedCertificateTimestamps(1))
	}
	return opts
}

func hasTlog(b *bundle.Bundle) bool {
	return len(b.GetVerificationMaterial().GetTlogEntries()) > 0
}

func stripTlog(b *bundle.Bundle) *bundle.Bundle {
	pb := cloneBundle(b)
	pb.VerificationMaterial.TlogEntries = nil
	nb, err := bundle.NewBundle(pb)
	if err != nil {
		return b
	}
	return nb
}

func logEntries(b *bundle.Bundle) []LogEntry {
	var out []LogEntry
	for _, e := range b.GetVerificationMaterial().GetTlogEntries() {
		le := LogEntry{LogIndex: e.GetLogIndex(), LogID: hex.EncodeToString(e.GetLogId().GetKeyId())}
		if it := e.GetIntegratedTime(); it != 0 {
			t := time.Unix(it, 0).UTC()
			le.IntegratedTime = &t
		}
		out = append(out, le)
	}
	return out
}

func certSigner(b *bundle.Bundle) *Signer {
	vc, err := b.VerificationContent()
	if err != nil || vc.Certificate() == nil {
		return nil
	}
	c := vc.Certificate()
	s := &Signer{}
	switch {
	case len(c.URIs) > 0:
		s.Identity = c.URIs[0].String()
	case len(c.EmailAddresses) > 0:
		s.Identity = c.EmailAddresses[0]
	}
	for _, ext := range c.Extensions {
		// Fulcio OIDC issuer: v2 (1.3.6.1.4.1.57264.1.8) as DER UTF8String, v1 (.1.1) raw.
		switch ext.Id.String() {
		case "1.3.6.1.4.1.57264.1.8":
			if len(ext.Value) > 2 {
				s.Issuer = string(ext.Value[2:])
			}
		case "1.3.6.1.4.1.57264.1.1":
			if s.Issuer == "" {
				s.Issuer = string(ext.Value)
			}
		}
	}
	return s
}

// classify maps a sigstore-go verification error to a reason code. The
// messages are sigstore-go's at the pinned version; tests pin the mapping.
func classify(err error, keyless bool) Reason {
	var idErr *sgverify.ErrNoMatchingCertificateIdentity
	if errors.As(err, &idErr) {
		return ReasonIdentityMismatch
	}
	var m *malformedError
	if errors.As(err, &m) {
		return ReasonMalformed
	}
	msg := strings.ToLower(err.Error())
	has := func(subs ...string) bool {
		for _, s := range subs {
			if strings.Contains(msg, s) {
				return true
			}
		}
		return false
	}
	switch {
	case has("does not match digest", "artifact digest", "digests in statement", "does not match any digest"):
		return ReasonDigestMismatch
	case has("expired", "not yet valid", "outside", "validity", "in the future", "not valid at"):
		return ReasonExpired
	case has("signed certificate timestamp", "sct", "certificate transparency"):
		return ReasonUntrustedSigner
	case has("timestamp", "tsa", "rfc3161", "rfc 3161"):
		return ReasonTimestampInvalid
	case has("tlog", "transparency log", "inclusion", "checkpoint", "signed entry", "set ", "log entry", "log index", "rekor", "entry"):
		return ReasonTlogInvalid
	case has("certificate signed by unknown authority", "unable to verify certificate", "x509:", "certificate chain", "failed to verify leaf certificate"):
		return ReasonUntrustedSigner
	case has("could not verify message", "could not verify envelope", "verification error", "invalid signature", "signature"):
		if keyless {
			return ReasonSignatureInvalid
		}
		return ReasonUntrustedSigner
	}
	if keyless {
		return ReasonSignatureInvalid
	}
	return ReasonUntrustedSigner
}

// reasonOrder ranks reasons from most to least specific; the first present
// is the headline.
var reasonOrder = []Reason{
	ReasonThresholdNotMet, ReasonDigestMismatch, ReasonIdentityMismatch, ReasonExpired,
	ReasonKeyRevoked, ReasonUntimed,
	ReasonTlogInvalid, ReasonTimestampInvalid, ReasonSignatureInvalid, ReasonPredicateTypeMismatch,
	ReasonUntrustedSigner, ReasonMalformed, ReasonBadInput, ReasonNoSignature,
}

func rank(r Reason) int {
	for i, o := range reasonOrder {
		if o == r {
			return i
		}
	}
	return len(reasonOrder)
}

func worst(rs []Reason) Reason {
	best := Reason("")
	for _, r := range rs {
		if best == "" || rank(r) < rank(best) {
			best = r
		}
	}
	return best
}

// conclude turns per-signature results into the verdict.
func (e *engine) conclude(subject Subject, results []SignatureResult) *Result {
	res := &Result{Schema: ResultSchema, Artifact: subject, Threshold: e.pol.threshold(), Signatures: results, Reasons: []Reason{}, TrustedSigners: []Signer{}}
	if res.Signatures == nil {
		res.Signatures = []SignatureResult{}
	}
	seen := map[int]bool{}
	var failed []Reason
	for _, r := range results {
		if r.Verified {
			if r.Signer.index >= 0 && !seen[r.Signer.index] {
				seen[r.Signer.index] = true
				res.TrustedSigners = append(res.TrustedSigners, *r.Signer)
			}
			continue
		}
		failed = append(failed, r.Reason)
	}
	switch {
	case len(results) == 0:
		res.Reasons = []Reason{ReasonNoSignature}
		res.Message = "no signature found for " + subject.Name
	case len(seen) >= res.Threshold:
		res.Verified = true
		res.Message = fmt.Sprintf("%s (%s): %d of %d required trusted signers", subject.Name, subject.Digest, len(seen), res.Threshold)
	default:
		if res.Threshold > 1 {
			res.Reasons = append(res.Reasons, ReasonThresholdNotMet)
		}
		res.Reasons = append(res.Reasons, sortedUnique(failed)...)
		if len(res.Reasons) == 0 {
			res.Reasons = []Reason{ReasonThresholdNotMet}
		}
		res.Message = e.failMessage(subject, results, len(seen), res.Threshold)
	}
	return res
}

func sortedUnique(rs []Reason) []Reason {
	var out []Reason
	for _, o := range reasonOrder {
		for _, r := range rs {
			if r == o {
				out = append(out, o)
				break
			}
		}
	}
	return out
}

func (e *engine) failMessage(subject Subject, results []SignatureResult, got, want int) string {
	if want > 1 {
		return fmt.Sprintf("%s: %d of %d required distinct trusted signers verified", subject.Name, got, want)
	}
	var rs []Reason
	for _, r := range results {
		rs = append(rs, r.Reason)
	}
	w := worst(rs)
	for _, r := range results {
		if r.Reason == w {
			return fmt.Sprintf("%s: %s: %s", subject.Name, w, firstLine(r.Detail))
		}
	}
	return subject.Name + ": verification failed"
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
