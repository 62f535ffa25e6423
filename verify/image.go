package verify

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	cbundle "github.com/sigstore/cosign/v2/pkg/cosign/bundle"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature/payload"
	"google.golang.org/protobuf/encoding/protojson"
)

// Image reference prefixes for local images, the source names syft uses.
const (
	// OCIDirPrefix names an OCI image layout directory: oci-dir:PATH,
	// oci-dir:PATH:TAG or oci-dir:PATH@sha256:HEX.
	OCIDirPrefix = "oci-dir:"
	// OCIArchivePrefix names a tar of an OCI image layout, read in place:
	// oci-archive:PATH, with the same :TAG and @sha256:HEX selectors.
	OCIArchivePrefix = "oci-archive:"
)

// Media and artifact types of what cosign stores next to an image.
const (
	// BundleArtifactType is the artifact type of an OCI 1.1 referrer that
	// holds a Sigstore bundle (cosign --new-bundle-format, GitHub attestations).
	BundleArtifactType = "application/vnd.dev.sigstore.bundle.v0.3+json"
	// DSSEMediaType is the media type of a classic cosign .att layer.
	DSSEMediaType = "application/vnd.dsse.envelope.v1+json"
	// CosignSignPredicateType is the predicate type cosign gives the in-toto
	// statement it signs for an image with --new-bundle-format.
	CosignSignPredicateType = "https://sigstore.dev/cosign/sign/v1"
	// FormatCosignImageAttestation is a layer of a classic cosign .att image.
	FormatCosignImageAttestation = "cosign-image-attestation"
)

// Annotations on OCI layout index entries.
const (
	refNameAnnotation = "org.opencontainers.image.ref.name"
	// cosign save / cosign's layout package mark entries with a kind.
	kindAnnotation  = "kind"
	kindImage       = "dev.cosignproject.cosign/image"
	kindSignatures  = "dev.cosignproject.cosign/sigs"
	kindAttestation = "dev.cosignproject.cosign/atts"
)

// DefaultRegistryTimeout bounds all registry traffic of one Image or
// ImageAttestations call unless WithTimeout says otherwise.
const DefaultRegistryTimeout = 2 * time.Minute

// Bounds on the reads that are not covered by MaxManifestBytes and
// MaxLayerBytes.
const (
	maxReferrers      = 256    // referrer manifests examined per image
	maxLayersPerImage = 256    // signature or attestation layers per .sig/.att image
	maxArchiveEntries = 100000 // tar headers scanned in an oci-archive
)

// ImageOption configures Image and ImageAttestations.
type ImageOption func(*imageConfig) error

type imageConfig struct {
	timeout   time.Duration
	keychain  authn.Keychain
	transport http.RoundTripper
}

// WithTimeout bounds all registry traffic of one call (resolving the
// reference, fetching signatures, attestations and referrers), retries
// included. It must be positive.
func WithTimeout(d time.Duration) ImageOption {
	return func(c *imageConfig) error {
		if d <= 0 {
			return fmt.Errorf("verify: registry timeout %v must be positive", d)
		}
		c.timeout = d
		return nil
	}
}

// WithKeychain gives registry credentials (for example authn.DefaultKeychain,
// which reads the Docker config). The default is anonymous access.
func WithKeychain(k authn.Keychain) ImageOption {
	return func(c *imageConfig) error {
		if k == nil {
			return errors.New("verify: nil keychain")
		}
		c.keychain = k
		return nil
	}
}

// WithTransport replaces the base HTTP transport (for example to trust a
// private CA). Requests still go only to the named registry and the hosts it
// redirects to, and the body limits still apply; the caller's transport must
// set its own dial and response-header timeouts.
func WithTransport(rt http.RoundTripper) ImageOption {
	return func(c *imageConfig) error {
		if rt == nil {
			return errors.New("verify: nil transport")
		}
		c.transport = rt
		return nil
	}
}

func newImageConfig(opts []ImageOption) (*imageConfig, error) {
	c := &imageConfig{timeout: DefaultRegistryTimeout, keychain: authn.NewMultiKeychain()}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, inputErr(ReasonBadInput, "%v", err)
		}
	}
	return c, nil
}

// Image verifies the signatures on an OCI image under the policy.
//
// ref is a registry reference (tag or digest) or a local image: oci-dir:PATH
// or oci-archive:PATH, optionally followed by :TAG or @sha256:HEX to pick one
// image of several. A tag is resolved to its digest once; the digest is what
// is verified and reported.
//
// Signatures are found the classic cosign way (the sha256-HEX.sig tag, whose
// layers are simple-signing payloads with the signature, certificate, Rekor
// bundle and RFC 3161 timestamp in annotations) and as OCI 1.1 referrers
// holding Sigstore bundles (message signatures over the image digest, or
// DSSE statements with predicate type CosignSignPredicateType naming it).
// A classic signature verifies only if its payload names the image digest
// (otherwise ReasonDigestMismatch).
//
// Image returns a Result for every verdict; an *InputError when no verdict
// could be reached (Code ReasonRegistry for an unreachable or misbehaving
// registry, ReasonBadInput for an unreadable layout).
func Image(ctx context.Context, ref string, pol *Policy, opts ...ImageOption) (*Result, error) {
	ctx, src, img, done, err := openImage(ctx, ref, pol, opts)
	if err != nil {
		return nil, err
	}
	defer done()
	e := &engine{pol: pol}
	var results []SignatureResult
	classic, err := classicLayers(ctx, src, img, ".sig")
	if err != nil {
		return nil, err
	}
	for _, l := range classic {
		results = append(results, e.checkClassic(l, img))
	}
	bundles, err := referrerBundles(ctx, src, img)
	if err != nil {
		return nil, err
	}
	for _, b := range bundles {
		if sr, ok := e.checkReferrer(b, img); ok {
			results = append(results, sr)
		}
	}
	return e.conclude(Subject{Kind: "image", Name: ref, Digest: img.String()}, results), nil
}

// openImage checks the policy, opens the image source under the overall
// timeout and resolves the reference to its digest, once. done releases
// the source and the timeout.
func openImage(ctx context.Context, ref string, pol *Policy, opts []ImageOption) (context.Context, imageSource, imageDigest, func(), error) {
	if err := pol.Validate(); err != nil {
		return nil, nil, imageDigest{}, nil, err
	}
	cfg, err := newImageConfig(opts)
	if err != nil {
		return nil, nil, imageDigest{}, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	src, err := openImageSource(ref, cfg)
	if err != nil {
		cancel()
		return nil, nil, imageDigest{}, nil, err
	}
	img, err := src.resolve(ctx)
	if err != nil {
		src.close()
		cancel()
		return nil, nil, imageDigest{}, nil, err
	}
	return ctx, src, img, func() { src.close(); cancel() }, nil
}

// ImageAttestations verifies the in-toto attestations on an OCI image: the
// layers of the classic cosign sha256-HEX.att tag (DSSE envelopes, with
// certificate, Rekor bundle and timestamp annotations when keyless) and OCI
// 1.1 referrers holding Sigstore bundles with a DSSE envelope. Each must be
// signed by a trusted signer, carry a subject whose digest is the image's,
// and, when predicateType is not empty, that predicate type. References and
// errors are as for Image.
func ImageAttestations(ctx context.Context, ref, predicateType string, pol *Policy, opts ...ImageOption) (*Result, error) {
	ctx, src, img, done, err := openImage(ctx, ref, pol, opts)
	if err != nil {
		return nil, err
	}
	defer done()
	var envs []Signature
	var formats []string
	var bad []SignatureResult
	layers, err := classicLayers(ctx, src, img, ".att")
	if err != nil {
		return nil, err
	}
	for _, l := range layers {
		if l.err != nil {
			bad = append(bad, SignatureResult{Source: l.source, Format: FormatCosignImageAttestation, Reason: ReasonMalformed, Detail: l.err.Error()})
			continue
		}
		data, err := attestationLayerBundle(l)
		if err != nil {
			bad = append(bad, SignatureResult{Source: l.source, Format: FormatCosignImageAttestation, Reason: ReasonMalformed, Detail: err.Error()})
			continue
		}
		envs = append(envs, Signature{Source: l.source, Data: data})
		formats = append(formats, FormatCosignImageAttestation)
	}
	bundles, err := referrerBundles(ctx, src, img)
	if err != nil {
		return nil, err
	}
	for _, b := range bundles {
		if b.err != nil {
			bad = append(bad, SignatureResult{Source: b.source, Format: "unknown", Reason: ReasonMalformed, Detail: b.err.Error()})
			continue
		}
		if !isImageAttestation(b.data, predicateType) {
			continue
		}
		envs = append(envs, Signature{Source: b.source, Data: b.data})
		formats = append(formats, "")
	}
	res, err := attestation(ctx, Subject{Kind: "image", Name: ref, Digest: img.String()}, artifactInput{digest: img.digest}, envs, predicateType, pol)
	if err != nil {
		return nil, err
	}
	for i, f := range formats {
		if f != "" && i < len(res.Signatures) {
			res.Signatures[i].Format = f
		}
	}
	if len(bad) == 0 {
		return res, nil
	}
	e := &engine{pol: pol}
	return e.conclude(res.Artifact, append(res.Signatures, bad...)), nil
}

// imageDigest is the resolved image: its manifest digest.
type imageDigest struct {
	hash   v1.Hash
	digest []byte // raw SHA-256
}

func (d imageDigest) String() string { return d.hash.String() }

// sigLayer is one layer of a classic .sig or .att image.
type sigLayer struct {
	source      string
	annotations map[string]string
	data        []byte // the payload (.sig) or DSSE envelope (.att)
	err         error  // a malformed layer, reported as such
}

// referrer is one Sigstore bundle found as a referrer.
type referrer struct {
	source string
	data   []byte
	err    error
}

// imageSource is where an image and what is stored next to it come from: a
// registry or an OCI layout. Errors it returns are *InputError (registry
// or bad input) for I/O failures and *malformedError for content that is
// not what it must be.
type imageSource interface {
	// resolve returns the digest of the image named by the reference.
	resolve(ctx context.Context) (imageDigest, error)
	// tagged returns the manifest stored under cosign's tag for the image
	// (suffix ".sig" or ".att"), or nil when there is none.
	tagged(ctx context.Context, img imageDigest, suffix string) (*v1.Manifest, string, error)
	// referrers lists manifests whose subject is the image.
	referrers(ctx context.Context, img imageDigest) ([]v1.Descriptor, error)
	// manifest returns the manifest with that digest, bounded and checked.
	manifest(ctx context.Context, d v1.Hash) (*v1.Manifest, error)
	// blob returns the blob described, bounded and checked.
	blob(ctx context.Context, d v1.Descriptor, max int64) ([]byte, error)
	// name is how sources are named in results.
	name() string
	close()
}

// cosignTag is cosign's tag for what is attached to an image digest.
func cosignTag(img imageDigest, suffix string) string {
	return img.hash.Algorithm + "-" + img.hash.Hex + suffix
}

func classicLayers(ctx context.Context, src imageSource, img imageDigest, suffix string) ([]sigLayer, error) {
	m, where, err := src.tagged(ctx, img, suffix)
	if err != nil {
		var me *malformedError
		if errors.As(err, &me) {
			return []sigLayer{{source: where, err: err}}, nil
		}
		return nil, err
	}
	if m == nil {
		return nil, nil
	}
	if len(m.Layers) > maxLayersPerImage {
		return []sigLayer{{source: where, err: malformed("%s has %d layers, over the limit of %d", where, len(m.Layers), maxLayersPerImage)}}, nil
	}
	var out []sigLayer
	for i, l := range m.Layers {
		sl := sigLayer{source: fmt.Sprintf("%s[%d]", where, i), annotations: l.Annotations}
		data, err := src.blob(ctx, l, MaxLayerBytes)
		if err != nil {
			var me *malformedError
			if !errors.As(err, &me) {
				return nil, err
			}
			sl.err = err
		}
		sl.data = data
		out = append(out, sl)
	}
	return out, nil
}

func referrerBundles(ctx context.Context, src imageSource, img imageDigest) ([]referrer, error) {
	descs, err := src.referrers(ctx, img)
	if err != nil {
		return nil, err
	}
	var out []referrer
	for _, d := range descs {
		if len(out) >= maxReferrers {
			break
		}
		where := src.name() + "@" + d.Digest.String()
		m, err := src.manifest(ctx, d.Digest)
		if err != nil {
			var me *malformedError
			if errors.As(err, &me) {
				out = append(out, referrer{source: where, err: err})
				continue
			}
			return nil, err
		}
		// The referrers list comes from the registry: check the manifest
		// really names the image, and really is a Sigstore bundle.
		if m.Subject == nil || m.Subject.Digest != img.hash || artifactType(m) != BundleArtifactType {
			continue
		}
		for i, l := range m.Layers {
			if string(l.MediaType) != BundleArtifactType {
				continue
			}
			r := referrer{source: where}
			if len(m.Layers) > 1 {
				r.source = fmt.Sprintf("%s[%d]", where, i)
			}
			r.data, err = src.blob(ctx, l, MaxBundleBytes)
			if err != nil {
				var me *malformedError
				if !errors.As(err, &me) {
					return nil, err
				}
				r.err = err
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// artifactType is the manifest's artifact type, or its config media type
// when it has none (OCI image spec 1.1).
func artifactType(m *v1.Manifest) string {
	if m.ArtifactType != "" {
		return m.ArtifactType
	}
	return string(m.Config.MediaType)
}

// checkClassic verifies one classic cosign signature layer: the signature
// over the simple-signing payload, then that the payload names the image.
func (e *engine) checkClassic(l sigLayer, img imageDigest) SignatureResult {
	bad := func(err error) SignatureResult {
		return SignatureResult{Source: l.source, Format: FormatCosignImageSig, Reason: ReasonMalformed, Detail: err.Error()}
	}
	if l.err != nil {
		return bad(l.err)
	}
	var sp payload.SimpleContainerImage
	if err := json.Unmarshal(l.data, &sp); err != nil {
		return bad(fmt.Errorf("simple-signing payload is not JSON: %w", err))
	}
	if sp.Critical.Type != payload.CosignSignatureType {
		return bad(fmt.Errorf("simple-signing payload has type %q, want %q", sp.Critical.Type, payload.CosignSignatureType))
	}
	sum := sha256.Sum256(l.data)
	p, err := classicParsed(l.annotations, sum[:])
	if err != nil {
		return bad(err)
	}
	claimed := sp.Critical.Image.DockerManifestDigest
	// The payload's claim is checked only once the signature verified: what
	// an untrusted signer claims is noise, what a trusted one claims for
	// another image is a digest mismatch (a signature copied across images).
	check := func(*sgverify.VerificationResult) (Reason, string) {
		if claimed != img.String() {
			return ReasonDigestMismatch, fmt.Sprintf("signature is for image %s, this image is %s", claimed, img)
		}
		return "", ""
	}
	sr := e.checkOne(p, l.source, artifactInput{digest: sum[:], payload: l.data}, check)
	sr.Format = FormatCosignImageSig
	return sr
}

// checkReferrer verifies a referrer bundle as an image signature. DSSE
// bundles with another predicate type are attestations, not signatures, and
// are skipped (ok false).
func (e *engine) checkReferrer(r referrer, img imageDigest) (SignatureResult, bool) {
	if r.err != nil {
		return SignatureResult{Source: r.source, Format: "unknown", Reason: ReasonMalformed, Detail: r.err.Error()}, true
	}
	p, err := parseSignature(r.data)
	if err != nil {
		return SignatureResult{Source: r.source, Format: "unknown", Reason: ReasonMalformed, Detail: err.Error()}, true
	}
	if p.format != FormatSigstoreBundle {
		return SignatureResult{Source: r.source, Format: describeFormat(p), Reason: ReasonMalformed,
			Detail: "referrer of type " + BundleArtifactType + " does not hold a Sigstore bundle"}, true
	}
	var check func(*sgverify.VerificationResult) (Reason, string)
	if env := p.b.GetDsseEnvelope(); env != nil {
		// Route on the unauthenticated predicate type; confirm it once the
		// envelope verified.
		if peekPredicateType(env.GetPayload()) != CosignSignPredicateType {
			return SignatureResult{}, false
		}
		check = func(res *sgverify.VerificationResult) (Reason, string) {
			if res.Statement == nil || res.Statement.GetPredicateType() != CosignSignPredicateType {
				return ReasonMalformed, "signature bundle does not hold a " + CosignSignPredicateType + " statement"
			}
			return "", ""
		}
	}
	return e.checkOne(p, r.source, artifactInput{digest: img.digest}, check), true
}

// isImageAttestation reports whether a referrer bundle is an attestation
// for ImageAttestations: it holds a DSSE envelope, and unless the caller
// asks for that very type, not cosign's image signature statement (a
// signature, verified by Image).
func isImageAttestation(data []byte, predicateType string) bool {
	p, err := parseSignature(data)
	if err != nil || p.b == nil {
		return true // reported as malformed by attestation()
	}
	env := p.b.GetDsseEnvelope()
	if env == nil {
		return false // a message signature
	}
	return predicateType == CosignSignPredicateType || peekPredicateType(env.GetPayload()) != CosignSignPredicateType
}

func peekPredicateType(stmt []byte) string {
	var probe struct {
		PredicateType string `json:"predicateType"`
	}
	if json.Unmarshal(stmt, &probe) != nil {
		return ""
	}
	return probe.PredicateType
}

// cosignMaterial is what cosign puts in a signature layer's annotations.
type cosignMaterial struct {
	sig     []byte
	legacy  *cosign.LocalSignedPayload // signature, certificate and Rekor bundle as cosign holds them
	certDER []byte
	tsa     []byte // DER RFC 3161 timestamp response
}

func parseCosignAnnotations(ann map[string]string, needSig bool) (*cosignMaterial, error) {
	m := &cosignMaterial{legacy: &cosign.LocalSignedPayload{}}
	if needSig {
		b64, ok := ann[static.SignatureAnnotationKey]
		if !ok {
			return nil, malformed("layer has no %s annotation", static.SignatureAnnotationKey)
		}
		sig, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(sig) == 0 {
			return nil, malformed("%s annotation is not base64", static.SignatureAnnotationKey)
		}
		m.sig, m.legacy.Base64Signature = sig, b64
	}
	if c := ann[static.CertificateAnnotationKey]; c != "" {
		blk, _ := pem.Decode([]byte(c))
		if blk == nil || blk.Type != "CERTIFICATE" {
			return nil, malformed("%s annotation is not a PEM certificate", static.CertificateAnnotationKey)
		}
		m.certDER, m.legacy.Cert = blk.Bytes, c
	}
	if rb := ann[static.BundleAnnotationKey]; rb != "" {
		var b cbundle.RekorBundle
		if err := json.Unmarshal([]byte(rb), &b); err != nil {
			return nil, malformed("%s annotation: %v", static.BundleAnnotationKey, err)
		}
		m.legacy.Bundle = &b
	}
	if ts := ann[static.RFC3161TimestampAnnotationKey]; ts != "" {
		var t cbundle.RFC3161Timestamp
		if err := json.Unmarshal([]byte(ts), &t); err != nil || len(t.SignedRFC3161Timestamp) == 0 {
			return nil, malformed("%s annotation is not a cosign RFC 3161 timestamp", static.RFC3161TimestampAnnotationKey)
		}
		m.tsa = t.SignedRFC3161Timestamp
	}
	return m, nil
}

// bundle builds the Sigstore bundle v0.1 for cosign's annotations with
// legacyEntity (key hint or certificate, the Rekor entry with its signed
// entry timestamp, a message signature over digest), then adds the RFC 3161
// timestamp, which a sign-blob bundle never has and legacyEntity does not
// carry.
func (m *cosignMaterial) bundle(digest []byte) (*bundle.Bundle, error) {
	p := &parsed{format: FormatCosignBundle, rawSig: m.sig, legacy: m.legacy, certDER: m.certDER}
	b, err := p.legacyEntity(digest)
	if err != nil {
		return nil, err
	}
	if len(m.tsa) == 0 {
		return b, nil
	}
	pb := cloneBundle(b)
	pb.VerificationMaterial.TimestampVerificationData = &protobundle.TimestampVerificationData{
		Rfc3161Timestamps: []*protocommon.RFC3161SignedTimestamp{{SignedTimestamp: m.tsa}},
	}
	nb, err := bundle.NewBundle(pb)
	if err != nil {
		return nil, malformed("cosign signature layer: %v", err)
	}
	return nb, nil
}

// classicParsed turns a classic signature layer into the form the engine
// verifies: a Sigstore bundle v0.1 with a message signature over the
// payload's SHA-256.
func classicParsed(ann map[string]string, payloadDigest []byte) (*parsed, error) {
	m, err := parseCosignAnnotations(ann, true)
	if err != nil {
		return nil, err
	}
	b, err := m.bundle(payloadDigest)
	if err != nil {
		return nil, err
	}
	return &parsed{format: FormatSigstoreBundle, version: "v0.1", b: b}, nil
}

// attestationLayerBundle turns a classic .att layer into what attestation()
// parses: the bare DSSE envelope when signed with a key and nothing else,
// or a Sigstore bundle carrying the envelope with the certificate, Rekor
// entry and timestamp from the annotations.
func attestationLayerBundle(l sigLayer) ([]byte, error) {
	m, err := parseCosignAnnotations(l.annotations, false)
	if err != nil {
		return nil, err
	}
	if m.certDER == nil && m.legacy.Bundle == nil && m.tsa == nil {
		return l.data, nil
	}
	var env protodsse.Envelope
	if err := json.Unmarshal(bytes.TrimSpace(l.data), &dsseJSON{&env}); err != nil {
		return nil, malformed("DSSE envelope: %v", err)
	}
	if len(env.Signatures) == 0 {
		return nil, malformed("DSSE envelope has no signatures")
	}
	m.sig = env.Signatures[0].Sig
	sum := sha256.Sum256(env.Payload)
	b, err := m.bundle(sum[:])
	if err != nil {
		return nil, err
	}
	// Same verification material, the envelope as content. The message
	// signature content above only carried the material through NewBundle.
	pb := cloneBundle(b)
	pb.Content = &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &env}
	out, err := protojson.Marshal(pb)
	if err != nil {
		return nil, malformed("cosign attestation layer: %v", err)
	}
	return out, nil
}

// readChecked reads a blob of at most max bytes and checks its size and
// SHA-256 against the descriptor. Content problems are malformedError.
func readChecked(r io.Reader, d v1.Descriptor, max int64, what string) ([]byte, error) {
	if d.Digest.Algorithm != "sha256" {
		return nil, malformed("%s %s: only sha256 digests are supported", what, d.Digest)
	}
	if d.Size > max {
		return nil, malformed("%s %s is %d bytes, over the %d byte limit", what, d.Digest, d.Size, max)
	}
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, malformed("%s %s is over the %d byte limit", what, d.Digest, max)
	}
	if d.Size > 0 && int64(len(data)) != d.Size {
		return nil, malformed("%s %s is %d bytes, its descriptor says %d", what, d.Digest, len(data), d.Size)
	}
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != d.Digest.Hex {
		return nil, malformed("%s %s: content does not match its digest", what, d.Digest)
	}
	return data, nil
}

func parseManifestBytes(data []byte) (*v1.Manifest, error) {
	m, err := v1.ParseManifest(bytes.NewReader(data))
	if err != nil {
		return nil, malformed("not an OCI or Docker image manifest: %v", err)
	}
	return m, nil
}

// openImageSource parses the reference and opens its source.
func openImageSource(ref string, cfg *imageConfig) (imageSource, error) {
	switch {
	case strings.HasPrefix(ref, OCIDirPrefix):
		p, sel := splitLayoutRef(strings.TrimPrefix(ref, OCIDirPrefix))
		fi, err := os.Lstat(p)
		if err != nil {
			return nil, inputErr(ReasonBadInput, "%s: %v", ref, err)
		}
		if !fi.IsDir() {
			return nil, inputErr(ReasonBadInput, "%s: %s is not a directory", ref, p)
		}
		return newLayoutSource(ref, sel, dirFS(p))
	case strings.HasPrefix(ref, OCIArchivePrefix):
		p, sel := splitLayoutRef(strings.TrimPrefix(ref, OCIArchivePrefix))
		fs, err := openTarFS(p)
		if err != nil {
			return nil, err
		}
		src, err := newLayoutSource(ref, sel, fs)
		if err != nil {
			fs.close()
			return nil, err
		}
		return src, nil
	}
	// Offline first: a short name ("oci/pump-agent") would go to Docker
	// Hub. The first path component must be a host, by
	// go-containerregistry's own rule (localhost, or a '.' or ':').
	if first, _, ok := strings.Cut(ref, "/"); !ok || (first != "localhost" && !strings.ContainsAny(first, ".:")) {
		return nil, inputErr(ReasonBadInput, "image reference %q names no registry; write the registry host (index.docker.io/%s for Docker Hub), or oci-dir:PATH for a local layout: wardgate reaches no registry it was not named", ref, ref)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, inputErr(ReasonBadInput, "image reference %q: %v", ref, err)
	}
	return newRegistrySource(r, cfg), nil
}

var digestSelector = regexp.MustCompile(`@sha256:[0-9a-f]{64}$`)

// splitLayoutRef splits PATH, PATH:TAG and PATH@sha256:HEX. A PATH that
// exists as given is taken whole.
func splitLayoutRef(s string) (p, sel string) {
	if loc := digestSelector.FindStringIndex(s); loc != nil {
		return s[:loc[0]], s[loc[0]+1:]
	}
	if _, err := os.Lstat(s); err == nil {
		return s, ""
	}
	if i := strings.LastIndexByte(s, ':'); i > 0 && !strings.ContainsAny(s[i+1:], `/\`) {
		return s[:i], s[i+1:]
	}
	return s, ""
}

// --- registry ---

type registrySource struct {
	ref  name.Reference
	repo name.Repository
	opts []remote.Option
}

func newRegistrySource(ref name.Reference, cfg *imageConfig) *registrySource {
	base := cfg.transport
	if base == nil {
		base = newBaseTransport(cfg.timeout)
	}
	guard := &guardTransport{base: base, allowed: map[string]bool{ref.Context().RegistryStr(): true}}
	if ref.Context().RegistryStr() == name.DefaultRegistry {
		guard.allowed["index.docker.io"] = true
	}
	return &registrySource{
		ref:  ref,
		repo: ref.Context(),
		opts: []remote.Option{
			remote.WithTransport(guard),
			remote.WithAuthFromKeychain(cfg.keychain),
			remote.WithUserAgent("wardgate"),
			remote.WithRetryBackoff(remote.Backoff{Duration: 250 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 3}),
		},
	}
}

// newBaseTransport is http.DefaultTransport with timeouts on every phase
// of a request; the overall deadline is the context's.
func newBaseTransport(total time.Duration) *http.Transport {
	step := min(30*time.Second, total)
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: min(10*time.Second, total), KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = min(10*time.Second, total)
	t.ResponseHeaderTimeout = step
	t.ExpectContinueTimeout = time.Second
	t.IdleConnTimeout = 30 * time.Second
	return t
}

// with is the remote options for one call, bound to its context.
func (s *registrySource) with(ctx context.Context) []remote.Option {
	return append([]remote.Option{remote.WithContext(ctx)}, s.opts...)
}

func (s *registrySource) name() string { return s.repo.String() }
func (s *registrySource) close()       {}

func (s *registrySource) fail(err error, what string) error {
	return &InputError{Code: ReasonRegistry, Err: fmt.Errorf("registry %s: %s: %w", s.repo.RegistryStr(), what, err)}
}

func isNotFound(err error) bool {
	var te *transport.Error
	if errors.As(err, &te) {
		if te.StatusCode == http.StatusNotFound {
			return true
		}
		for _, d := range te.Errors {
			if d.Code == transport.ManifestUnknownErrorCode || d.Code == transport.NameUnknownErrorCode {
				return true
			}
		}
	}
	return false
}

func (s *registrySource) resolve(ctx context.Context) (imageDigest, error) {
	desc, err := remote.Get(s.ref, s.with(ctx)...)
	if err != nil {
		return imageDigest{}, s.fail(err, "resolve "+s.ref.String())
	}
	if len(desc.Manifest) > MaxManifestBytes {
		return imageDigest{}, s.fail(fmt.Errorf("manifest over the %d byte limit", MaxManifestBytes), "resolve "+s.ref.String())
	}
	if err := checkManifestShape(desc.MediaType, desc.Manifest); err != nil {
		return imageDigest{}, s.fail(err, "resolve "+s.ref.String())
	}
	if desc.Digest.Algorithm != "sha256" {
		return imageDigest{}, s.fail(fmt.Errorf("digest %s: only sha256 is supported", desc.Digest), "resolve "+s.ref.String())
	}
	// ggcr computes the digest from the manifest bytes it read (and checks
	// it against a digest reference), so this is the digest of what was
	// served, not a header's claim.
	raw, _ := hex.DecodeString(desc.Digest.Hex)
	return imageDigest{hash: desc.Digest, digest: raw}, nil
}

// checkManifestShape refuses answers that are not an image manifest or index.
func checkManifestShape(mt types.MediaType, data []byte) error {
	var probe struct {
		SchemaVersion int64           `json:"schemaVersion"`
		Config        json.RawMessage `json:"config"`
		Layers        json.RawMessage `json:"layers"`
		Manifests     json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return fmt.Errorf("answer is not a manifest (%s): %v", mt, err)
	}
	if probe.SchemaVersion != 2 || (probe.Manifests == nil && (probe.Config == nil || probe.Layers == nil)) {
		return fmt.Errorf("answer is not a schema 2 image manifest or index (%s)", mt)
	}
	return nil
}

func (s *registrySource) tagged(ctx context.Context, img imageDigest, suffix string) (*v1.Manifest, string, error) {
	tag := s.repo.Tag(cosignTag(img, suffix))
	desc, err := remote.Get(tag, s.with(ctx)...)
	if err != nil {
		if isNotFound(err) {
			return nil, tag.String(), nil
		}
		return nil, tag.String(), s.fail(err, "fetch "+tag.String())
	}
	if len(desc.Manifest) > MaxManifestBytes {
		return nil, tag.String(), malformed("%s: manifest over the %d byte limit", tag, MaxManifestBytes)
	}
	m, err := parseManifestBytes(desc.Manifest)
	if err != nil {
		return nil, tag.String(), malformed("%s: %v", tag, err)
	}
	return m, tag.String(), nil
}

func (s *registrySource) referrers(ctx context.Context, img imageDigest) ([]v1.Descriptor, error) {
	d := s.repo.Digest(img.String())
	idx, err := remote.Referrers(d, s.with(ctx)...)
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, s.fail(err, "list referrers of "+d.String())
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, s.fail(err, "list referrers of "+d.String())
	}
	return im.Manifests, nil
}

func (s *registrySource) manifest(ctx context.Context, h v1.Hash) (*v1.Manifest, error) {
	d := s.repo.Digest(h.String())
	desc, err := remote.Get(d, s.with(ctx)...)
	if err != nil {
		return nil, s.fail(err, "fetch "+d.String())
	}
	if len(desc.Manifest) > MaxManifestBytes {
		return nil, malformed("%s: manifest over the %d byte limit", d, MaxManifestBytes)
	}
	return parseManifestBytes(desc.Manifest)
}

func (s *registrySource) blob(ctx context.Context, d v1.Descriptor, max int64) ([]byte, error) {
	if d.Size > max {
		return nil, malformed("blob %s is %d bytes, over the %d byte limit", d.Digest, d.Size, max)
	}
	ref := s.repo.Digest(d.Digest.String())
	l, err := remote.Layer(ref, s.with(ctx)...)
	if err != nil {
		return nil, s.fail(err, "fetch blob "+d.Digest.String())
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, s.fail(err, "fetch blob "+d.Digest.String())
	}
	defer rc.Close()
	data, err := readChecked(rc, d, max, "blob")
	if err != nil {
		var me *malformedError
		if errors.As(err, &me) {
			return nil, err
		}
		return nil, s.fail(err, "fetch blob "+d.Digest.String())
	}
	return data, nil
}

// guardTransport sends requests only to the named registry and to the hosts
// the registry itself points at (its token service in WWW-Authenticate, its
// blob storage in a redirect), and bounds every response body.
type guardTransport struct {
	base    http.RoundTripper
	mu      sync.Mutex
	allowed map[string]bool
}

var realmRE = regexp.MustCompile(`realm="([^"]+)"`)

func (g *guardTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	g.mu.Lock()
	ok := g.allowed[req.URL.Host]
	g.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("refusing to contact %s: only the named registry and the hosts it points to are reached", req.URL.Host)
	}
	resp, err := g.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	if loc := resp.Header.Get("Location"); loc != "" {
		if u, err := req.URL.Parse(loc); err == nil {
			g.allowed[u.Host] = true
		}
	}
	for _, h := range resp.Header.Values("WWW-Authenticate") {
		if m := realmRE.FindStringSubmatch(h); m != nil {
			if u, err := url.Parse(m[1]); err == nil {
				g.allowed[u.Host] = true
			}
		}
	}
	g.mu.Unlock()
	limit := int64(MaxLayerBytes)
	if strings.Contains(req.URL.Path, "/manifests/") || strings.Contains(req.URL.Path, "/referrers/") {
		limit = MaxManifestBytes
	}
	resp.Body = &limitedBody{rc: resp.Body, left: limit, limit: limit}
	return resp, nil
}

// limitedBody fails a read past the limit instead of truncating silently.
type limitedBody struct {
	rc          io.ReadCloser
	left, limit int64
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.left <= 0 {
		var one [1]byte
		if n, _ := l.rc.Read(one[:]); n > 0 {
			return 0, fmt.Errorf("registry response over the %d byte limit", l.limit)
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.rc.Read(p)
	l.left -= int64(n)
	return n, err
}

func (l *limitedBody) Close() error { return l.rc.Close() }

// --- OCI layout (directory or tar, read in place) ---

// layoutFS opens files of an OCI layout by slash-separated name.
type layoutFS interface {
	open(name string) (io.ReadCloser, error)
	close()
}

type dirFS string

func (d dirFS) open(name string) (io.ReadCloser, error) {
	f, err := OpenRegular(filepath.Join(string(d), filepath.FromSlash(name)))
	if err != nil {
		return nil, err
	}
	return f, nil
}
func (dirFS) close() {}

// tarFS reads an OCI layout tar in place: one pass records where each
// regular file's data starts, reads are section reads. Nothing is extracted,
// so no path in the archive can reach the file system.
type tarFS struct {
	path    string
	f       *os.File
	entries map[string]tarEntry
}

type tarEntry struct{ off, size int64 }

func openTarFS(p string) (*tarFS, error) {
	f, err := OpenRegular(p)
	if err != nil {
		return nil, err
	}
	t := &tarFS{path: p, f: f, entries: map[string]tarEntry{}}
	if err := t.scan(); err != nil {
		f.Close()
		return nil, err
	}
	return t, nil
}

func (t *tarFS) scan() error {
	var magic [2]byte
	if n, _ := t.f.ReadAt(magic[:], 0); n == 2 && magic == [2]byte{0x1f, 0x8b} {
		return inputErr(ReasonBadInput, "%s: a gzip-compressed archive; oci-archive needs a plain tar (gunzip it first)", t.path)
	}
	tr := tar.NewReader(t.f)
	for n := 0; ; n++ {
		if n >= maxArchiveEntries {
			return inputErr(ReasonBadInput, "%s: more than %d entries", t.path, maxArchiveEntries)
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return inputErr(ReasonBadInput, "%s: not a readable tar archive: %v", t.path, err)
		}
		if hdr.Typeflag != tar.TypeReg || hdr.Size < 0 {
			continue // directories, links and devices are never followed
		}
		if hasSparse(hdr) {
			continue
		}
		nm := path.Clean(strings.TrimPrefix(hdr.Name, "./"))
		off, err := t.f.Seek(0, io.SeekCurrent)
		if err != nil {
			return inputErr(ReasonBadInput, "%s: %v", t.path, err)
		}
		if _, dup := t.entries[nm]; dup {
			return inputErr(ReasonBadInput, "%s: holds %s twice; refusing an ambiguous archive", t.path, nm)
		}
		t.entries[nm] = tarEntry{off: off, size: hdr.Size}
	}
	return nil
}

func hasSparse(hdr *tar.Header) bool {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

func (t *tarFS) open(name string) (io.ReadCloser, error) {
	e, ok := t.entries[name]
	if !ok {
		return nil, inputErr(ReasonBadInput, "%s: no %s in the archive", t.path, name)
	}
	return io.NopCloser(io.NewSectionReader(t.f, e.off, e.size)), nil
}

func (t *tarFS) close() { t.f.Close() }

type layoutSource struct {
	ref   string
	sel   string
	fs    layoutFS
	index *v1.IndexManifest
	img   *v1.Descriptor
}

func newLayoutSource(ref, sel string, fs layoutFS) (*layoutSource, error) {
	rc, err := fs.open("index.json")
	if err != nil {
		return nil, inputErr(ReasonBadInput, "%s: not an OCI image layout: %v", ref, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, MaxManifestBytes+1))
	if err != nil {
		return nil, inputErr(ReasonBadInput, "%s: read index.json: %v", ref, err)
	}
	if len(data) > MaxManifestBytes {
		return nil, inputErr(ReasonBadInput, "%s: index.json over the %d byte limit", ref, MaxManifestBytes)
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(data))
	if err != nil {
		return nil, inputErr(ReasonBadInput, "%s: index.json: %v", ref, err)
	}
	return &layoutSource{ref: ref, sel: sel, fs: fs, index: idx}, nil
}

func (s *layoutSource) name() string { return s.ref }
func (s *layoutSource) close()       { s.fs.close() }

var cosignTagRE = regexp.MustCompile(`(^|:)sha256-[0-9a-f]{64}(\.sig|\.att|\.sbom)?$`)

func refNameMatches(d v1.Descriptor, tag string) bool {
	n := d.Annotations[refNameAnnotation]
	return n != "" && (n == tag || strings.HasSuffix(n, ":"+tag))
}

func isManifestType(mt types.MediaType) bool {
	return mt.IsImage() || mt.IsIndex()
}

func (s *layoutSource) resolve(ctx context.Context) (imageDigest, error) {
	var cands []v1.Descriptor
	for _, d := range s.index.Manifests {
		if !isManifestType(d.MediaType) {
			continue
		}
		if k := d.Annotations[kindAnnotation]; k == kindSignatures || k == kindAttestation {
			continue
		}
		if cosignTagRE.MatchString(d.Annotations[refNameAnnotation]) {
			continue
		}
		switch {
		case strings.HasPrefix(s.sel, "sha256:"):
			if d.Digest.String() == s.sel {
				cands = append(cands, d)
			}
		case s.sel != "":
			if refNameMatches(d, s.sel) {
				cands = append(cands, d)
			}
		default:
			if d.MediaType.IsImage() {
				// A manifest with a subject is a referrer, not an image.
				m, err := s.manifest(ctx, d.Digest)
				if err != nil {
					return imageDigest{}, inputErr(ReasonBadInput, "%s: %v", s.ref, err)
				}
				if m.Subject != nil {
					continue
				}
			}
			cands = append(cands, d)
		}
	}
	switch {
	case len(cands) == 0 && s.sel != "":
		return imageDigest{}, inputErr(ReasonBadInput, "%s: no image %q in the layout", s.ref, s.sel)
	case len(cands) == 0:
		return imageDigest{}, inputErr(ReasonBadInput, "%s: the layout holds no image", s.ref)
	case len(cands) > 1:
		var names []string
		for _, c := range cands {
			n := c.Annotations[refNameAnnotation]
			if n == "" {
				n = c.Digest.String()
			}
			names = append(names, n)
		}
		return imageDigest{}, inputErr(ReasonBadInput, "%s: the layout holds %d images (%s): add :TAG or @sha256:HEX", s.ref, len(cands), strings.Join(names, ", "))
	}
	d := cands[0]
	// The index entry's digest is only a claim: the manifest must hash to it.
	if _, err := s.rawBlob(d, MaxManifestBytes, "manifest"); err != nil {
		return imageDigest{}, inputErr(ReasonBadInput, "%s: %v", s.ref, err)
	}
	s.img = &d
	raw, _ := hex.DecodeString(d.Digest.Hex)
	return imageDigest{hash: d.Digest, digest: raw}, nil
}

func (s *layoutSource) tagged(ctx context.Context, img imageDigest, suffix string) (*v1.Manifest, string, error) {
	tag := cosignTag(img, suffix)
	where := s.ref + " " + tag
	kind := kindSignatures
	if suffix == ".att" {
		kind = kindAttestation
	}
	var found *v1.Descriptor
	for _, d := range s.index.Manifests {
		if refNameMatches(d, tag) {
			found = &d
			break
		}
	}
	// cosign save marks the one image and its signatures by kind instead.
	if found == nil && s.img != nil && s.img.Annotations[kindAnnotation] == kindImage {
		for _, d := range s.index.Manifests {
			if d.Annotations[kindAnnotation] == kind {
				found = &d
				break
			}
		}
	}
	if found == nil {
		return nil, where, nil
	}
	m, err := s.manifest(ctx, found.Digest)
	if err != nil {
		return nil, where, err
	}
	return m, where, nil
}

func (s *layoutSource) referrers(ctx context.Context, img imageDigest) ([]v1.Descriptor, error) {
	var out []v1.Descriptor
	for _, d := range s.index.Manifests {
		if !d.MediaType.IsImage() || d.Digest == img.hash || len(out) >= maxReferrers {
			continue
		}
		m, err := s.manifest(ctx, d.Digest)
		if err != nil {
			var me *malformedError
			if errors.As(err, &me) {
				continue // not a referrer we can read; it names nothing
			}
			return nil, err
		}
		if m.Subject != nil && m.Subject.Digest == img.hash {
			out = append(out, d)
		}
	}
	return out, nil
}

func (s *layoutSource) manifest(ctx context.Context, h v1.Hash) (*v1.Manifest, error) {
	data, err := s.rawBlob(v1.Descriptor{Digest: h}, MaxManifestBytes, "manifest")
	if err != nil {
		return nil, err
	}
	return parseManifestBytes(data)
}

func (s *layoutSource) blob(ctx context.Context, d v1.Descriptor, max int64) ([]byte, error) {
	return s.rawBlob(d, max, "blob")
}

var hexRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

func (s *layoutSource) rawBlob(d v1.Descriptor, max int64, what string) ([]byte, error) {
	if d.Digest.Algorithm != "sha256" || !hexRE.MatchString(d.Digest.Hex) {
		return nil, malformed("%s %s: only sha256 digests are supported", what, d.Digest)
	}
	rc, err := s.fs.open("blobs/sha256/" + d.Digest.Hex)
	if err != nil {
		var ie *InputError
		if errors.As(err, &ie) {
			return nil, malformed("%s %s: %v", what, d.Digest, ie.Err)
		}
		return nil, err
	}
	defer rc.Close()
	data, err := readChecked(rc, d, max, what)
	if err != nil {
		var me *malformedError
		if errors.As(err, &me) {
			return nil, err
		}
		return nil, inputErr(ReasonBadInput, "%s: read %s %s: %v", s.ref, what, d.Digest, err)
	}
	return data, nil
}
