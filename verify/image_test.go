package verify

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/oci"
	clayout "github.com/sigstore/cosign/v2/pkg/oci/layout"
	cmutate "github.com/sigstore/cosign/v2/pkg/oci/mutate"
	"github.com/sigstore/cosign/v2/pkg/oci/signed"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/wardgate/wardgate/internal/ocisign"
)

const (
	sbomType   = "https://cyclonedx.org/bom"
	provType   = "https://slsa.dev/provenance/v1"
	testIssuer = "https://issuer.example.com"
	testIdent  = "release@pump-vendor.example.com"
)

// virtualRoot is the virtual Sigstore as a trusted root, without its CT
// log: the virtual Fulcio issues certificates without SCTs (the fixture
// generator's trusted root leaves the CT log out for the same reason).
type virtualRoot struct{ *ca.VirtualSigstore }

func (virtualRoot) CTLogs() map[string]*root.TransparencyLog { return nil }

func newVirtualSigstore(t testing.TB) (*ca.VirtualSigstore, root.TrustedMaterial) {
	t.Helper()
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	return vs, virtualRoot{vs}
}

func newRegistry(t testing.TB) string {
	t.Helper()
	s := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithReferrersSupport(true)))
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

// signer is a real ECDSA P-256 key: the sigstore signer and the policy key.
type signer struct {
	sv  signature.SignerVerifier
	key Key
}

func newSigner(t testing.TB) signer {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := signature.LoadECDSASignerVerifier(priv, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := cryptoutils.MarshalPublicKeyToPEM(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParsePublicKey(pemBytes, "test key")
	if err != nil {
		t.Fatal(err)
	}
	return signer{sv: sv, key: k}
}

func keyPolicy(ss ...signer) *Policy {
	p := &Policy{}
	for _, s := range ss {
		p.Keys = append(p.Keys, s.key)
	}
	return p
}

// pushImage pushes a random image as host/repo:tag and returns its digest.
func pushImage(t testing.TB, host, repo, tag string) (v1.Image, name.Digest) {
	t.Helper()
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(host + "/" + repo + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	h, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return img, ref.Context().Digest(h.String())
}

func push(t testing.TB, d name.Digest, a ocisign.Attachments) {
	t.Helper()
	if err := ocisign.Push(t.Context(), d, a); err != nil {
		t.Fatal(err)
	}
}

func classicSig(t testing.TB, d name.Digest, s signer) oci.Signature {
	t.Helper()
	sig, err := ocisign.SignImageClassic(t.Context(), d, s.sv)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func attestImage(t testing.TB, d name.Digest, predType string, s signer) oci.Signature {
	t.Helper()
	att, err := ocisign.AttestImage(t.Context(), d, predType, []byte(`{"components":[]}`), s.sv)
	if err != nil {
		t.Fatal(err)
	}
	return att
}

func signBundle(t testing.TB, d name.Digest, s signer) []byte {
	t.Helper()
	b, err := ocisign.SignBundle(t.Context(), d, s.sv)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func assertResult(t testing.TB, res *Result, err error, verified bool, reasons ...Reason) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	if res.Verified != verified {
		t.Fatalf("verified = %v, want %v (%s; reasons %v)\nsignatures: %+v", res.Verified, verified, res.Message, res.Reasons, res.Signatures)
	}
	if len(reasons) == 0 {
		reasons = []Reason{}
	}
	if strings.Join(reasonStrs(res.Reasons), ",") != strings.Join(reasonStrs(reasons), ",") {
		t.Fatalf("reasons = %v, want %v (%s)\nsignatures: %+v", res.Reasons, reasons, res.Message, res.Signatures)
	}
}

func reasonStrs(rs []Reason) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return out
}

func assertInputError(t testing.TB, err error, code Reason) {
	t.Helper()
	var ie *InputError
	if !errors.As(err, &ie) {
		t.Fatalf("error = %v (%T), want *InputError %s", err, err, code)
	}
	if ie.Code != code {
		t.Fatalf("error code = %s, want %s (%v)", ie.Code, code, err)
	}
}

func TestImageRegistry(t *testing.T) {
	host := newRegistry(t)
	vendor, other := newSigner(t), newSigner(t)

	_, signedD := pushImage(t, host, "pump/firmware", "v1")
	push(t, signedD, ocisign.Attachments{Signatures: []oci.Signature{classicSig(t, signedD, vendor)}})

	_, unsignedD := pushImage(t, host, "pump/firmware", "unsigned")

	// A signature made for another image, copied onto this one's .sig tag.
	_, copiedD := pushImage(t, host, "pump/firmware", "copied")
	push(t, copiedD, ocisign.Attachments{Signatures: []oci.Signature{classicSig(t, signedD, vendor)}})

	_, bundleD := pushImage(t, host, "mri/console", "v2")
	push(t, bundleD, ocisign.Attachments{Bundles: [][]byte{signBundle(t, bundleD, vendor)}})

	// A bundle signed for another image, attached as this one's referrer.
	_, wrongBundleD := pushImage(t, host, "mri/console", "wrong-bundle")
	push(t, wrongBundleD, ocisign.Attachments{Bundles: [][]byte{signBundle(t, bundleD, vendor)}})

	// Only an SBOM attestation as a referrer: an attestation, not a signature.
	_, attOnlyD := pushImage(t, host, "mri/console", "att-only")
	sbomBundle, err := ocisign.AttestBundle(t.Context(), attOnlyD, sbomType, []byte(`{}`), vendor.sv)
	if err != nil {
		t.Fatal(err)
	}
	push(t, attOnlyD, ocisign.Attachments{Bundles: [][]byte{sbomBundle}})

	_, twoD := pushImage(t, host, "hvac/controller", "v3")
	push(t, twoD, ocisign.Attachments{Signatures: []oci.Signature{classicSig(t, twoD, vendor), classicSig(t, twoD, other)}})

	cases := []struct {
		name     string
		ref      string
		pol      *Policy
		verified bool
		reasons  []Reason
		digest   name.Digest
	}{
		{"classic by tag", host + "/pump/firmware:v1", keyPolicy(vendor), true, nil, signedD},
		{"classic by digest", signedD.String(), keyPolicy(vendor), true, nil, signedD},
		{"wrong key", host + "/pump/firmware:v1", keyPolicy(other), false, []Reason{ReasonUntrustedSigner}, signedD},
		{"copied signature", host + "/pump/firmware:copied", keyPolicy(vendor), false, []Reason{ReasonDigestMismatch}, copiedD},
		{"no signature", host + "/pump/firmware:unsigned", keyPolicy(vendor), false, []Reason{ReasonNoSignature}, unsignedD},
		{"referrer bundle", host + "/mri/console:v2", keyPolicy(vendor), true, nil, bundleD},
		{"referrer bundle wrong key", host + "/mri/console:v2", keyPolicy(other), false, []Reason{ReasonUntrustedSigner}, bundleD},
		{"referrer bundle for another image", host + "/mri/console:wrong-bundle", keyPolicy(vendor), false, []Reason{ReasonDigestMismatch}, wrongBundleD},
		{"attestation is not a signature", host + "/mri/console:att-only", keyPolicy(vendor), false, []Reason{ReasonNoSignature}, attOnlyD},
		{"threshold 2 of 2", host + "/hvac/controller:v3", &Policy{Keys: []Key{vendor.key, other.key}, Threshold: 2}, true, nil, twoD},
		{"threshold 2, one signer", host + "/pump/firmware:v1", &Policy{Keys: []Key{vendor.key, other.key}, Threshold: 2}, false, []Reason{ReasonThresholdNotMet}, signedD},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Image(t.Context(), tc.ref, tc.pol)
			assertResult(t, res, err, tc.verified, tc.reasons...)
			if res.Artifact.Digest != tc.digest.DigestStr() {
				t.Errorf("digest = %s, want %s", res.Artifact.Digest, tc.digest.DigestStr())
			}
			if res.Artifact.Kind != "image" || res.Artifact.Name != tc.ref {
				t.Errorf("artifact = %+v", res.Artifact)
			}
		})
	}
}

func TestImageSignatureFormatReported(t *testing.T) {
	host := newRegistry(t)
	vendor := newSigner(t)
	_, d := pushImage(t, host, "pump/firmware", "v1")
	push(t, d, ocisign.Attachments{Signatures: []oci.Signature{classicSig(t, d, vendor)}})
	res, err := Image(t.Context(), d.String(), keyPolicy(vendor))
	assertResult(t, res, err, true)
	sr := res.Signatures[0]
	if sr.Format != FormatCosignImageSig || sr.Signer == nil || sr.Signer.KeyID != vendor.key.ID {
		t.Fatalf("signature result = %+v", sr)
	}
	if want := d.Context().Tag("sha256-"+strings.TrimPrefix(d.DigestStr(), "sha256:")+".sig").String() + "[0]"; sr.Source != want {
		t.Fatalf("source = %q, want %q", sr.Source, want)
	}
}

func TestImageKeyless(t *testing.T) {
	vs, tr := newVirtualSigstore(t)
	host := newRegistry(t)
	_, d := pushImage(t, host, "pump/firmware", "keyless")
	sig, err := ocisign.SignImageKeyless(t.Context(), d, vs, testIdent, testIssuer)
	if err != nil {
		t.Fatal(err)
	}
	push(t, d, ocisign.Attachments{Signatures: []oci.Signature{sig}})

	cases := []struct {
		name     string
		id       Identity
		verified bool
		reasons  []Reason
	}{
		{"identity", Identity{Subject: testIdent, Issuer: testIssuer}, true, nil},
		{"other identity", Identity{Subject: "intruder@example.com", Issuer: testIssuer}, false, []Reason{ReasonIdentityMismatch}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pol := &Policy{Identities: []Identity{tc.id}, TrustedRoot: tr}
			res, err := Image(t.Context(), host+"/pump/firmware:keyless", pol)
			assertResult(t, res, err, tc.verified, tc.reasons...)
			if tc.verified {
				s := res.TrustedSigners[0]
				if s.Identity != testIdent || s.Issuer != testIssuer {
					t.Fatalf("signer = %+v", s)
				}
				if len(res.Signatures[0].LogEntries) != 1 || len(res.Signatures[0].Timestamps) == 0 {
					t.Fatalf("want one log entry and verified timestamps, got %+v", res.Signatures[0])
				}
			}
		})
	}
}

func TestImageLayout(t *testing.T) {
	vendor, other := newSigner(t), newSigner(t)
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	h, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	d, err := name.NewDigest("oci-layout.invalid/pump/firmware@" + h.String())
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "layout")
	a := ocisign.Attachments{
		Signatures:   []oci.Signature{classicSig(t, d, vendor)},
		Attestations: []oci.Signature{attestImage(t, d, sbomType, vendor)},
		Bundles:      [][]byte{signBundle(t, d, other)},
	}
	if err := ocisign.WriteLayout(dir, img, "v1", a); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "image.tar")
	if err := ocisign.WriteArchive(archive, dir); err != nil {
		t.Fatal(err)
	}
	// What cosign save writes: cosign's own layout writer, kind annotations.
	cosignDir := filepath.Join(t.TempDir(), "cosign-save")
	si, err := cmutate.AttachSignatureToImage(signed.Image(img), classicSig(t, d, vendor))
	if err != nil {
		t.Fatal(err)
	}
	if err := clayout.WriteSignedImage(cosignDir, si); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name     string
		ref      string
		pol      *Policy
		verified bool
		reasons  []Reason
	}{
		{"oci-dir classic", "oci-dir:" + dir, keyPolicy(vendor), true, nil},
		{"oci-dir referrer", "oci-dir:" + dir, keyPolicy(other), true, nil},
		{"oci-dir both, threshold 2", "oci-dir:" + dir, &Policy{Keys: []Key{vendor.key, other.key}, Threshold: 2}, true, nil},
		{"oci-dir by tag", "oci-dir:" + dir + ":v1", keyPolicy(vendor), true, nil},
		{"oci-dir by digest", "oci-dir:" + dir + "@" + h.String(), keyPolicy(vendor), true, nil},
		{"oci-archive", "oci-archive:" + archive, keyPolicy(vendor), true, nil},
		{"oci-archive by tag", "oci-archive:" + archive + ":v1", keyPolicy(other), true, nil},
		{"cosign save layout", "oci-dir:" + cosignDir, keyPolicy(vendor), true, nil},
		{"cosign save layout, wrong key", "oci-dir:" + cosignDir, keyPolicy(other), false, []Reason{ReasonUntrustedSigner}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Image(t.Context(), tc.ref, tc.pol)
			assertResult(t, res, err, tc.verified, tc.reasons...)
			if res.Artifact.Digest != h.String() {
				t.Fatalf("digest = %s, want %s", res.Artifact.Digest, h)
			}
		})
	}

	t.Run("attestations", func(t *testing.T) {
		res, err := ImageAttestations(t.Context(), "oci-archive:"+archive, sbomType, keyPolicy(vendor))
		assertResult(t, res, err, true)
		res, err = ImageAttestations(t.Context(), "oci-dir:"+dir, provType, keyPolicy(vendor))
		assertResult(t, res, err, false, ReasonPredicateTypeMismatch)
	})

	t.Run("bad input", func(t *testing.T) {
		for _, ref := range []string{
			"oci-dir:" + filepath.Join(t.TempDir(), "missing"),
			"oci-dir:" + dir + ":no-such-tag",
			"oci-archive:" + filepath.Join(dir, "index.json"), // not a tar
			"oci-archive:" + dir,                              // a directory
		} {
			_, err := Image(t.Context(), ref, keyPolicy(vendor))
			assertInputError(t, err, ReasonBadInput)
		}
	})

	t.Run("tampered manifest", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "tampered")
		if err := ocisign.WriteLayout(bad, img, "v1", ocisign.Attachments{Signatures: []oci.Signature{classicSig(t, d, vendor)}}); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(bad, "blobs", "sha256", h.Hex)
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, append(raw, ' '), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err = Image(t.Context(), "oci-dir:"+bad, keyPolicy(vendor))
		assertInputError(t, err, ReasonBadInput)
	})
}

func TestImageAttestations(t *testing.T) {
	host := newRegistry(t)
	vendor, other := newSigner(t), newSigner(t)
	vs, tr := newVirtualSigstore(t)

	_, attD := pushImage(t, host, "pump/firmware", "att")
	push(t, attD, ocisign.Attachments{Attestations: []oci.Signature{attestImage(t, attD, sbomType, vendor)}})

	_, refD := pushImage(t, host, "pump/firmware", "att-referrer")
	b, err := ocisign.AttestBundle(t.Context(), refD, provType, []byte(`{"buildDefinition":{}}`), vendor.sv)
	if err != nil {
		t.Fatal(err)
	}
	push(t, refD, ocisign.Attachments{Bundles: [][]byte{b}})

	_, keylessD := pushImage(t, host, "pump/firmware", "att-keyless")
	kb, err := ocisign.KeylessAttestBundle(t.Context(), keylessD, sbomType, []byte(`{}`), vs, testIdent, testIssuer)
	if err != nil {
		t.Fatal(err)
	}
	push(t, keylessD, ocisign.Attachments{Bundles: [][]byte{kb}})

	// An attestation about another image copied onto this one.
	_, copiedD := pushImage(t, host, "pump/firmware", "att-copied")
	push(t, copiedD, ocisign.Attachments{Attestations: []oci.Signature{attestImage(t, attD, sbomType, vendor)}})

	_, noneD := pushImage(t, host, "pump/firmware", "none")
	push(t, noneD, ocisign.Attachments{Signatures: []oci.Signature{classicSig(t, noneD, vendor)}})

	keyless := &Policy{Identities: []Identity{{Subject: testIdent, Issuer: testIssuer}}, TrustedRoot: tr}
	cases := []struct {
		name     string
		ref      string
		predType string
		pol      *Policy
		verified bool
		reasons  []Reason
	}{
		{".att right type", host + "/pump/firmware:att", sbomType, keyPolicy(vendor), true, nil},
		{".att any type", host + "/pump/firmware:att", "", keyPolicy(vendor), true, nil},
		{".att wrong type", host + "/pump/firmware:att", provType, keyPolicy(vendor), false, []Reason{ReasonPredicateTypeMismatch}},
		{".att wrong key", host + "/pump/firmware:att", sbomType, keyPolicy(other), false, []Reason{ReasonUntrustedSigner}},
		{".att for another image", host + "/pump/firmware:att-copied", sbomType, keyPolicy(vendor), false, []Reason{ReasonDigestMismatch}},
		{"referrer right type", host + "/pump/firmware:att-referrer", provType, keyPolicy(vendor), true, nil},
		{"referrer wrong type", host + "/pump/firmware:att-referrer", sbomType, keyPolicy(vendor), false, []Reason{ReasonPredicateTypeMismatch}},
		{"keyless referrer", keylessD.String(), sbomType, keyless, true, nil},
		{"signature only", host + "/pump/firmware:none", sbomType, keyPolicy(vendor), false, []Reason{ReasonNoSignature}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := ImageAttestations(t.Context(), tc.ref, tc.predType, tc.pol)
			assertResult(t, res, err, tc.verified, tc.reasons...)
		})
	}
}

func TestImageRegistryFailures(t *testing.T) {
	vendor := newSigner(t)
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		io.WriteString(w, "\x00\xffthis is not a manifest")
	}))
	t.Cleanup(garbage.Close)
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
	}))
	t.Cleanup(hang.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedHost := strings.TrimPrefix(closed.URL, "http://")
	closed.Close()
	host := newRegistry(t)

	cases := []struct {
		name string
		ref  string
	}{
		{"garbage", strings.TrimPrefix(garbage.URL, "http://") + "/pump/firmware:v1"},
		{"hangs", strings.TrimPrefix(hang.URL, "http://") + "/pump/firmware:v1"},
		{"connection refused", closedHost + "/pump/firmware:v1"},
		{"no such image", host + "/pump/firmware:missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := Image(t.Context(), tc.ref, keyPolicy(vendor), WithTimeout(500*time.Millisecond))
			assertInputError(t, err, ReasonRegistry)
			if el := time.Since(start); el > 5*time.Second {
				t.Fatalf("took %v, want the 500ms timeout to bound it", el)
			}
			_, err = ImageAttestations(t.Context(), tc.ref, sbomType, keyPolicy(vendor), WithTimeout(500*time.Millisecond))
			assertInputError(t, err, ReasonRegistry)
		})
	}

	t.Run("bad reference", func(t *testing.T) {
		_, err := Image(t.Context(), "UPPER/Case::bad", keyPolicy(vendor))
		assertInputError(t, err, ReasonBadInput)
	})
	t.Run("bad option", func(t *testing.T) {
		_, err := Image(t.Context(), host+"/x:y", keyPolicy(vendor), WithTimeout(0))
		assertInputError(t, err, ReasonBadInput)
	})
	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := Image(ctx, host+"/pump/firmware:v1", keyPolicy(vendor))
		assertInputError(t, err, ReasonRegistry)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v does not wrap context.Canceled", err)
		}
	})
}

func TestGuardTransportRefusesOtherHosts(t *testing.T) {
	// A registry that redirects nowhere it was asked to is followed; a
	// request to a host nobody named is refused.
	g := &guardTransport{base: http.DefaultTransport, allowed: map[string]bool{"registry.example": true}}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://rekor.example/api/v1/log", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "refusing to contact rekor.example") {
		t.Fatalf("err = %v, want a refusal", err)
	}
}

func TestImageResultJSON(t *testing.T) {
	host := newRegistry(t)
	vendor := newSigner(t)
	_, d := pushImage(t, host, "pump/firmware", "v1")
	push(t, d, ocisign.Attachments{Signatures: []oci.Signature{classicSig(t, d, vendor)}})
	res, err := Image(t.Context(), host+"/pump/firmware:v1", keyPolicy(vendor))
	assertResult(t, res, err, true)
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Artifact struct{ Kind, Name, Digest string }
		Verified bool
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Artifact.Kind != "image" || got.Artifact.Digest != d.DigestStr() || !got.Verified {
		t.Fatalf("json = %s", b)
	}
}

func TestReadCheckedBounds(t *testing.T) {
	data := []byte(`{"schemaVersion":2}`)
	h, _, err := v1.SHA256(strings.NewReader(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		desc v1.Descriptor
		max  int64
		body string
		ok   bool
	}{
		{"good", v1.Descriptor{Digest: h, Size: int64(len(data))}, 1 << 10, string(data), true},
		{"descriptor over limit", v1.Descriptor{Digest: h, Size: 1 << 40}, 1 << 10, string(data), false},
		{"body over limit", v1.Descriptor{Digest: h}, 4, string(data), false},
		{"size differs", v1.Descriptor{Digest: h, Size: 3}, 1 << 10, string(data), false},
		{"digest differs", v1.Descriptor{Digest: h, Size: int64(len(data))}, 1 << 10, strings.Replace(string(data), "2", "3", 1), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readChecked(strings.NewReader(tc.body), tc.desc, tc.max, "blob")
			var me *malformedError
			if tc.ok != (err == nil) || (!tc.ok && !errors.As(err, &me)) {
				t.Fatalf("err = %v, want ok=%v or a malformed error", err, tc.ok)
			}
		})
	}
}

func TestLimitedBody(t *testing.T) {
	lb := &limitedBody{rc: io.NopCloser(strings.NewReader("0123456789")), left: 4, limit: 4}
	if _, err := io.ReadAll(lb); err == nil || !strings.Contains(err.Error(), "over the 4 byte limit") {
		t.Fatalf("err = %v, want the limit error", err)
	}
	lb = &limitedBody{rc: io.NopCloser(strings.NewReader("0123")), left: 4, limit: 4}
	if b, err := io.ReadAll(lb); err != nil || string(b) != "0123" {
		t.Fatalf("got %q, %v", b, err)
	}
}
