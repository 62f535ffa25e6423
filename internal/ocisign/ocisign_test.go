package ocisign_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/wardgate/wardgate/internal/ocisign"
)

func newSigner(t testing.TB) signature.SignerVerifier {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := signature.LoadECDSASignerVerifier(priv, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return sv
}

// TestCosignVerifiesWhatWeWrite checks the attachments with cosign's own
// verifier, in a registry and in a layout (cosign verify --local-image).
func TestCosignVerifiesWhatWeWrite(t *testing.T) {
	sv := newSigner(t)
	s := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithReferrersSupport(true)))
	t.Cleanup(s.Close)
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(strings.TrimPrefix(s.URL, "http://") + "/hvac/controller:1.1.0")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	h, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	d := tag.Context().Digest(h.String())
	sig, err := ocisign.SignImageClassic(t.Context(), d, sv)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ocisign.SignBundle(t.Context(), d, sv)
	if err != nil {
		t.Fatal(err)
	}
	a := ocisign.Attachments{Signatures: []oci.Signature{sig}, Bundles: [][]byte{b}}
	if err := ocisign.Push(t.Context(), d, a); err != nil {
		t.Fatal(err)
	}
	co := &cosign.CheckOpts{SigVerifier: sv, IgnoreTlog: true, ClaimVerifier: cosign.SimpleClaimVerifier}

	t.Run("registry", func(t *testing.T) {
		checked, _, err := cosign.VerifyImageSignatures(t.Context(), tag, co)
		if err != nil || len(checked) != 1 {
			t.Fatalf("cosign verify: %d signatures, %v", len(checked), err)
		}
	})

	t.Run("referrer", func(t *testing.T) {
		// ggcr's test registry lists a referrer's config media type as its
		// artifact type (it predates artifactType), so list unfiltered; the
		// manifest's own artifactType is checked below.
		idx, err := ociremote.Referrers(d, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(idx.Manifests) != 1 {
			t.Fatalf("referrers = %+v", idx.Manifests)
		}
		got, err := ociremote.Bundle(d.Context().Digest(idx.Manifests[0].Digest.String()))
		if err != nil {
			t.Fatalf("cosign cannot read the referrer bundle: %v", err)
		}
		if got.GetDsseEnvelope() == nil {
			t.Fatal("bundle has no DSSE envelope")
		}
	})

	t.Run("layout", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "layout")
		if err := ocisign.WriteLayout(dir, img, "1.1.0", a); err != nil {
			t.Fatal(err)
		}
		checked, _, err := cosign.VerifyLocalImageSignatures(t.Context(), dir, co)
		if err != nil || len(checked) != 1 {
			t.Fatalf("cosign verify --local-image: %d signatures, %v", len(checked), err)
		}
	})

	t.Run("referrer manifest", func(t *testing.T) {
		desc := v1.Descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: h, Size: 1}
		r, err := ocisign.Referrer(desc, b)
		if err != nil {
			t.Fatal(err)
		}
		m, err := r.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := r.RawManifest()
		if err != nil {
			t.Fatal(err)
		}
		var probe struct {
			ArtifactType string `json:"artifactType"`
		}
		if err := json.Unmarshal(raw, &probe); err != nil {
			t.Fatal(err)
		}
		if probe.ArtifactType != ocisign.BundleMediaType || m.Subject == nil || m.Subject.Digest != h || len(m.Layers) != 1 {
			t.Fatalf("referrer manifest = %s", raw)
		}
	})
}
