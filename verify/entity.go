package verify

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strings"

	"github.com/go-openapi/runtime"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	cbundle "github.com/sigstore/cosign/v2/pkg/cosign/bundle"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"github.com/sigstore/rekor/pkg/generated/models"
	"github.com/sigstore/rekor/pkg/types"
	"github.com/sigstore/sigstore-go/pkg/bundle"
)

// Signature formats, as reported in results.
const (
	FormatCosignSignature = "cosign-signature"       // cosign sign-blob output: base64 or raw signature
	FormatCosignBundle    = "cosign-bundle"          // cosign sign-blob --bundle (legacy LocalSignedPayload)
	FormatSigstoreBundle  = "sigstore-bundle"        // Sigstore bundle v0.1, v0.2, v0.3 (protobuf JSON)
	FormatDSSE            = "dsse-envelope"          // a bare DSSE envelope, signed with a key
	FormatCosignImageSig  = "cosign-image-signature" // a layer of a classic cosign .sig image
)

const (
	mediaTypeV01 = "application/vnd.dev.sigstore.bundle+json;version=0.1"
	mediaTypeV03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
	keyHint      = "wardgate-trusted-key"
)

// Signature is one signature input: a file's contents and where it came from.
type Signature struct {
	Source string
	Data   []byte
	// Certificate is the signing certificate (DER) of a raw signature, as
	// cosign sign-blob --output-certificate writes it (cosign verify-blob
	// --certificate). For a cosign bundle it must be the bundle's own.
	Certificate []byte
	// Timestamp is an RFC 3161 timestamp response (DER) over the signature
	// (cosign --rfc3161-timestamp), for raw signatures and cosign bundles.
	Timestamp []byte
}

// ParseRFC3161Timestamp reads an RFC 3161 timestamp response: cosign's JSON
// ({"SignedRFC3161Timestamp": base64 DER}, what sign-blob
// --rfc3161-timestamp writes) or the DER itself.
func ParseRFC3161Timestamp(data []byte, source string) ([]byte, error) {
	t := bytes.TrimSpace(data)
	if len(t) > 0 && t[0] == '{' {
		var ts cbundle.RFC3161Timestamp
		if err := json.Unmarshal(t, &ts); err != nil || len(ts.SignedRFC3161Timestamp) == 0 {
			return nil, inputErr(ReasonBadInput, "RFC 3161 timestamp %s: not cosign's {\"SignedRFC3161Timestamp\": ...} JSON", source)
		}
		return ts.SignedRFC3161Timestamp, nil
	}
	if len(t) == 0 {
		return nil, inputErr(ReasonBadInput, "RFC 3161 timestamp %s: empty", source)
	}
	return data, nil
}

// LoadSignature reads a signature, bundle or envelope file within the size
// limit.
func LoadSignature(path string) (Signature, error) {
	data, err := ReadFileLimited(path, MaxBundleBytes)
	if err != nil {
		return Signature{}, err
	}
	return Signature{Source: path, Data: data}, nil
}

// parsed is a signature input turned into the form sigstore-go verifies.
// Raw message signatures need the artifact digest to become a bundle, so the
// bundle is built by entity().
type parsed struct {
	format  string
	version string // bundle version, for Sigstore bundles
	b       *bundle.Bundle
	rawSig  []byte // cosign-signature and cosign-bundle: the signature bytes
	legacy  *cosign.LocalSignedPayload
	certDER []byte
	// timestamps are RFC 3161 responses given beside a raw signature.
	timestamps [][]byte
	// logDigest is the artifact digest a hashedrekord log entry names, for
	// formats whose message digest wardgate fills in itself.
	logDigest []byte
}

type malformedError struct{ err error }

func (e *malformedError) Error() string { return e.err.Error() }
func (e *malformedError) Unwrap() error { return e.err }

func malformed(format string, args ...any) error {
	return &malformedError{fmt.Errorf(format, args...)}
}

// parseInput parses a signature input and attaches the certificate and
// timestamp given beside it.
func parseInput(s Signature) (*parsed, error) {
	p, err := parseSignature(s.Data)
	if err != nil {
		return nil, err
	}
	if s.Certificate == nil && s.Timestamp == nil {
		return p, nil
	}
	if p.format == FormatDSSE {
		// cosign attest-blob --output-signature --output-certificate: a
		// bare envelope with its certificate and timestamp beside it.
		p.certDER = s.Certificate
		if s.Timestamp != nil {
			p.timestamps = append(p.timestamps, s.Timestamp)
		}
		pb := cloneBundle(p.b)
		pb.VerificationMaterial = p.material()
		b, err := bundle.NewBundle(pb)
		if err != nil {
			return nil, malformed("DSSE envelope with certificate: %v", err)
		}
		p.b = b
		return p, nil
	}
	if p.format != FormatCosignSignature && p.format != FormatCosignBundle {
		return nil, malformed("a %s carries its own verification material: --certificate and --rfc3161-timestamp are for raw signatures, DSSE envelopes and cosign bundles", describeFormat(p))
	}
	if s.Certificate != nil {
		if p.certDER != nil && !bytes.Equal(p.certDER, s.Certificate) {
			return nil, malformed("the certificate given does not match the certificate in the cosign bundle")
		}
		p.certDER = s.Certificate
	}
	if s.Timestamp != nil {
		p.timestamps = append(p.timestamps, s.Timestamp)
	}
	return p, nil
}

// parseSignature detects the format of a signature input from its content.
func parseSignature(data []byte) (*parsed, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, malformed("empty signature")
	}
	if trimmed[0] == '{' {
		return parseJSONSignature(trimmed)
	}
	// cosign sign-blob writes base64; accept raw DER/Ed25519/RSA bytes too.
	// Text that is not base64 is not a signature: a raw binary signature
	// that is all printable ASCII is vanishingly unlikely.
	if isPrintable(trimmed) {
		sig, err := base64.StdEncoding.DecodeString(string(trimmed))
		if err != nil || len(sig) == 0 {
			return nil, malformed("signature is text but neither base64 nor JSON")
		}
		return &parsed{format: FormatCosignSignature, rawSig: sig}, nil
	}
	if len(data) > maxRawSignature {
		return nil, malformed("binary signature of %d bytes is larger than any supported key's (%d)", len(data), maxRawSignature)
	}
	return &parsed{format: FormatCosignSignature, rawSig: append([]byte(nil), data...)}, nil
}

// maxRawSignature is the largest raw signature: RSA-8192.
const maxRawSignature = 1024

func isPrintable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 && c != '\n' && c != '\r' && c != '\t' || c > 0x7e {
			return false
		}
	}
	return true
}

func parseJSONSignature(data []byte) (*parsed, error) {
	var probe struct {
		MediaType       *string         `json:"mediaType"`
		Base64Signature *string         `json:"base64Signature"`
		PayloadType     *string         `json:"payloadType"`
		Signatures      json.RawMessage `json:"signatures"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, malformed("bundle is not valid JSON: %v", err)
	}
	switch {
	case probe.MediaType != nil:
		var b bundle.Bundle
		if err := b.UnmarshalJSON(data); err != nil {
			return nil, malformed("sigstore bundle: %v", err)
		}
		v, err := b.Version()
		if err != nil {
			return nil, malformed("sigstore bundle: %v", err)
		}
		return &parsed{format: FormatSigstoreBundle, version: v, b: &b}, nil
	case probe.Base64Signature != nil:
		var lp cosign.LocalSignedPayload
		if err := json.Unmarshal(data, &lp); err != nil {
			return nil, malformed("cosign bundle: %v", err)
		}
		sig, err := base64.StdEncoding.DecodeString(lp.Base64Signature)
		if err != nil || len(sig) == 0 {
			return nil, malformed("cosign bundle: base64Signature is not valid base64")
		}
		p := &parsed{format: FormatCosignBundle, rawSig: sig, legacy: &lp}
		if lp.Cert != "" {
			pemBytes, err := base64.StdEncoding.DecodeString(lp.Cert)
			if err != nil {
				pemBytes = []byte(lp.Cert)
			}
			blk, _ := pem.Decode(pemBytes)
			if blk == nil || blk.Type != "CERTIFICATE" {
				return nil, malformed("cosign bundle: cert is not a PEM certificate")
			}
			p.certDER = blk.Bytes
		}
		return p, nil
	case probe.PayloadType != nil && probe.Signatures != nil:
		var env protodsse.Envelope
		if err := json.Unmarshal(data, &dsseJSON{&env}); err != nil {
			return nil, malformed("DSSE envelope: %v", err)
		}
		if len(env.Signatures) == 0 {
			return nil, malformed("DSSE envelope has no signatures")
		}
		pb := &protobundle.Bundle{
			MediaType:            mediaTypeV03,
			VerificationMaterial: keyMaterial(),
			Content:              &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &env},
		}
		b, err := bundle.NewBundle(pb)
		if err != nil {
			return nil, malformed("DSSE envelope: %v", err)
		}
		return &parsed{format: FormatDSSE, version: "v0.3", b: b}, nil
	}
	return nil, malformed("JSON is not a Sigstore bundle, a cosign bundle or a DSSE envelope")
}

// dsseJSON decodes the standard DSSE JSON form (base64 payload and sigs).
type dsseJSON struct{ env *protodsse.Envelope }

func (d *dsseJSON) UnmarshalJSON(data []byte) error {
	var raw struct {
		Payload     string `json:"payload"`
		PayloadType string `json:"payloadType"`
		Signatures  []struct {
			KeyID string `json:"keyid"`
			Sig   string `json:"sig"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	payload, err := base64.StdEncoding.DecodeString(raw.Payload)
	if err != nil {
		return fmt.Errorf("payload is not base64: %w", err)
	}
	d.env.Payload = payload
	d.env.PayloadType = raw.PayloadType
	for i, s := range raw.Signatures {
		sig, err := base64.StdEncoding.DecodeString(s.Sig)
		if err != nil {
			return fmt.Errorf("signature %d is not base64: %w", i, err)
		}
		d.env.Signatures = append(d.env.Signatures, &protodsse.Signature{Sig: sig, Keyid: s.KeyID})
	}
	return nil
}

func keyMaterial() *protobundle.VerificationMaterial {
	return &protobundle.VerificationMaterial{
		Content: &protobundle.VerificationMaterial_PublicKey{PublicKey: &protocommon.PublicKeyIdentifier{Hint: keyHint}},
	}
}

// hasCertificate reports whether the signature carries a signing certificate
// (keyless) rather than standing for a key.
func (p *parsed) hasCertificate() bool {
	if p.b != nil {
		vc, err := p.b.VerificationContent()
		return err == nil && vc.Certificate() != nil
	}
	return len(p.certDER) > 0
}

// entity builds the sigstore-go bundle for an artifact with the given SHA-256.
func (p *parsed) entity(digest []byte) (*bundle.Bundle, error) {
	switch p.format {
	case FormatSigstoreBundle, FormatDSSE:
		return p.b, nil
	case FormatCosignSignature:
		pb := &protobundle.Bundle{
			MediaType:            mediaTypeV03,
			VerificationMaterial: p.material(),
			Content:              messageSignature(digest, p.rawSig),
		}
		b, err := bundle.NewBundle(pb)
		if err != nil {
			return nil, malformed("signature with certificate: %v", err)
		}
		return b, nil
	case FormatCosignBundle:
		return p.legacyEntity(digest)
	}
	return nil, fmt.Errorf("unknown signature format %q", p.format)
}

// material is the verification material of a raw signature or cosign
// bundle: the certificate when there is one (else the trusted key stands
// in), and any RFC 3161 timestamps given beside it.
func (p *parsed) material() *protobundle.VerificationMaterial {
	vm := keyMaterial()
	if len(p.certDER) > 0 {
		vm = &protobundle.VerificationMaterial{Content: &protobundle.VerificationMaterial_Certificate{
			Certificate: &protocommon.X509Certificate{RawBytes: p.certDER}}}
	}
	if len(p.timestamps) > 0 {
		tvd := &protobundle.TimestampVerificationData{}
		for _, t := range p.timestamps {
			tvd.Rfc3161Timestamps = append(tvd.Rfc3161Timestamps, &protocommon.RFC3161SignedTimestamp{SignedTimestamp: t})
		}
		vm.TimestampVerificationData = tvd
	}
	return vm
}

func messageSignature(digest, sig []byte) *protobundle.Bundle_MessageSignature {
	return &protobundle.Bundle_MessageSignature{MessageSignature: &protocommon.MessageSignature{
		MessageDigest: &protocommon.HashOutput{Algorithm: protocommon.HashAlgorithm_SHA2_256, Digest: digest},
		Signature:     sig,
	}}
}

// legacyEntity converts cosign's sign-blob bundle (signature, certificate,
// Rekor SET) into a Sigstore bundle v0.1 (the version whose log entries
// carry an inclusion promise and no proof), so that sigstore-go checks the
// SET, the certificate and the signature. The Rekor body is parsed with
// Rekor's own types to learn its kind and version.
func (p *parsed) legacyEntity(digest []byte) (*bundle.Bundle, error) {
	vm := p.material()
	if rb := p.legacy.Bundle; rb != nil {
		tle, err := legacyTlogEntry(rb)
		if err != nil {
			return nil, err
		}
		p.logDigest = hashedRekordDigest(tle.CanonicalizedBody)
		vm.TlogEntries = []*protorekor.TransparencyLogEntry{tle}
	}
	pb := &protobundle.Bundle{MediaType: mediaTypeV01, VerificationMaterial: vm, Content: messageSignature(digest, p.rawSig)}
	b, err := bundle.NewBundle(pb)
	if err != nil {
		return nil, malformed("cosign bundle: %v", err)
	}
	return b, nil
}

func legacyTlogEntry(rb *cbundle.RekorBundle) (*protorekor.TransparencyLogEntry, error) {
	bodyB64, ok := rb.Payload.Body.(string)
	if !ok || bodyB64 == "" {
		return nil, malformed("cosign bundle: rekorBundle payload body is missing")
	}
	if len(rb.SignedEntryTimestamp) == 0 {
		return nil, malformed("cosign bundle: rekorBundle has no SignedEntryTimestamp")
	}
	body, err := base64.StdEncoding.DecodeString(bodyB64)
	if err != nil {
		return nil, malformed("cosign bundle: rekorBundle body is not base64")
	}
	logID, err := hex.DecodeString(rb.Payload.LogID)
	if err != nil || len(logID) == 0 {
		return nil, malformed("cosign bundle: rekorBundle logID %q is not hex", rb.Payload.LogID)
	}
	pe, err := models.UnmarshalProposedEntry(bytes.NewReader(body), runtime.JSONConsumer())
	if err != nil {
		return nil, malformed("cosign bundle: rekorBundle body is not a Rekor entry: %v", err)
	}
	impl, err := types.UnmarshalEntry(pe)
	if err != nil {
		return nil, malformed("cosign bundle: rekorBundle body is not a Rekor entry: %v", err)
	}
	return &protorekor.TransparencyLogEntry{
		LogIndex:          rb.Payload.LogIndex,
		LogId:             &protocommon.LogId{KeyId: logID},
		KindVersion:       &protorekor.KindVersion{Kind: pe.Kind(), Version: impl.APIVersion()},
		IntegratedTime:    rb.Payload.IntegratedTime,
		InclusionPromise:  &protorekor.InclusionPromise{SignedEntryTimestamp: rb.SignedEntryTimestamp},
		CanonicalizedBody: body,
	}, nil
}

// hashedRekordDigest returns the SHA-256 a hashedrekord entry body names.
func hashedRekordDigest(body []byte) []byte {
	var e struct {
		Kind string `json:"kind"`
		Spec struct {
			Data struct {
				Hash struct {
					Algorithm string `json:"algorithm"`
					Value     string `json:"value"`
				} `json:"hash"`
			} `json:"data"`
		} `json:"spec"`
	}
	if json.Unmarshal(body, &e) != nil || e.Kind != "hashedrekord" || e.Spec.Data.Hash.Algorithm != "sha256" {
		return nil
	}
	d, err := hex.DecodeString(e.Spec.Data.Hash.Value)
	if err != nil {
		return nil
	}
	return d
}

// claimedDigest returns the SHA-256 the signed material names for a message
// signature, or nil.
func claimedDigest(b *bundle.Bundle) []byte {
	if ms := b.GetMessageSignature(); ms != nil && ms.GetMessageDigest() != nil {
		if ms.GetMessageDigest().GetAlgorithm() == protocommon.HashAlgorithm_SHA2_256 {
			return ms.GetMessageDigest().GetDigest()
		}
	}
	return nil
}

func describeFormat(p *parsed) string {
	if p.format == FormatSigstoreBundle {
		return FormatSigstoreBundle + "-" + strings.TrimPrefix(p.version, "v")
	}
	return p.format
}
