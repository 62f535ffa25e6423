package cli_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/oci"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	sigdsse "github.com/sigstore/sigstore/pkg/signature/dsse"

	"github.com/wardgate/wardgate/internal/ocisign"
	"github.com/wardgate/wardgate/verify"
)

const (
	sbomType = "https://cyclonedx.org/bom"
	provType = "https://slsa.dev/provenance/v1"
)

// testKey is a real ECDSA key: its signer and its public key PEM file.
func testKey(t *testing.T) (signature.SignerVerifier, string) {
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
	path := filepath.Join(t.TempDir(), "key.pub")
	if err := os.WriteFile(path, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	return sv, path
}

func TestVerifyImageCLI(t *testing.T) {
	s := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithReferrersSupport(true)))
	t.Cleanup(s.Close)
	host := strings.TrimPrefix(s.URL, "http://")
	vendor, vendorKey := testKey(t)
	_, otherKey := testKey(t)

	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(host + "/pump/firmware:2.4.0")
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
	sig, err := ocisign.SignImageClassic(t.Context(), d, vendor)
	if err != nil {
		t.Fatal(err)
	}
	att, err := ocisign.AttestImage(t.Context(), d, sbomType, []byte(`{"components":[]}`), vendor)
	if err != nil {
		t.Fatal(err)
	}
	if err := ocisign.Push(t.Context(), d, ocisign.Attachments{Signatures: []oci.Signature{sig}, Attestations: []oci.Signature{att}}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "layout")
	if err := ocisign.WriteLayout(dir, img, "2.4.0", ocisign.Attachments{Signatures: []oci.Signature{sig}}); err != nil {
		t.Fatal(err)
	}

	// A blob and a DSSE envelope about it.
	blob := filepath.Join(t.TempDir(), "pump.bin")
	if err := os.WriteFile(blob, []byte("infusion pump firmware 2.4.0"), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("infusion pump firmware 2.4.0"))
	stmt, err := json.Marshal(map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       []map[string]any{{"name": "pump.bin", "digest": map[string]string{"sha256": hex.EncodeToString(sum[:])}}},
		"predicateType": sbomType,
		"predicate":     map[string]any{},
	})
	if err != nil {
		t.Fatal(err)
	}
	env, err := sigdsse.WrapSigner(vendor, "application/vnd.in-toto+json").SignMessage(bytes.NewReader(stmt))
	if err != nil {
		t.Fatal(err)
	}
	envPath := filepath.Join(t.TempDir(), "pump.bin.intoto.jsonl")
	if err := os.WriteFile(envPath, env, 0o644); err != nil {
		t.Fatal(err)
	}

	ref := tag.String()
	cases := []struct {
		name   string
		args   []string
		code   int
		reason verify.Reason // for JSON output: the first reason, or "" when verified
		stdout string        // for text output: prefix
		stderr string
	}{
		{"image verified", []string{"verify", "image", ref, "--key", vendorKey, "-o", "json"}, 0, "", "", ""},
		{"image by digest", []string{"verify", "image", d.String(), "--key", vendorKey, "-o", "json"}, 0, "", "", ""},
		{"image text", []string{"verify", "image", ref, "--key", vendorKey}, 0, "", "VERIFIED  " + ref + " (" + h.String() + "): 1 of 1 required trusted signers\n", ""},
		{"image wrong key", []string{"verify", "image", ref, "--key", otherKey, "-o", "json"}, 1, verify.ReasonUntrustedSigner, "", ""},
		{"oci-dir", []string{"verify", "image", "oci-dir:" + dir + ":2.4.0", "--key", vendorKey, "-o", "json"}, 0, "", "", ""},
		{"unreachable registry", []string{"verify", "image", "127.0.0.1:1/pump/firmware:2.4.0", "--key", vendorKey, "--timeout", "2s"}, 2, "", "", "registry 127.0.0.1:1"},
		{"bad timeout", []string{"verify", "image", ref, "--key", vendorKey, "--timeout", "0s"}, 2, "", "", "--timeout 0s: must be positive"},
		{"image attestation", []string{"verify", "attestation", "--image", ref, "--type", sbomType, "--key", vendorKey, "-o", "json"}, 0, "", "", ""},
		{"image attestation wrong type", []string{"verify", "attestation", "--image", ref, "--type", provType, "--key", vendorKey, "-o", "json"}, 1, verify.ReasonPredicateTypeMismatch, "", ""},
		{"blob attestation", []string{"verify", "attestation", "--blob", blob, "--bundle", envPath, "--type", sbomType, "--key", vendorKey, "-o", "json"}, 0, "", "", ""},
		{"blob attestation wrong key", []string{"verify", "attestation", "--blob", blob, "--bundle", envPath, "--type", sbomType, "--key", otherKey, "-o", "json"}, 1, verify.ReasonUntrustedSigner, "", ""},
		// cosign's default --type is custom, its own predicate type.
		{"attestation without type", []string{"verify", "attestation", "--image", ref, "--key", vendorKey, "-o", "json"}, 1, verify.ReasonPredicateTypeMismatch, "", ""},
		{"attestation cosign type name", []string{"verify", "attestation", "--image", ref, "--type", "cyclonedx", "--key", vendorKey, "-o", "json"}, 0, "", "", ""},
		{"attestation positional image", []string{"verify", "attestation", ref, "--type", "cyclonedx", "--key", vendorKey, "-o", "json"}, 0, "", "", ""},
		{"attestation positional blob", []string{"verify", "attestation", blob, "--signature", envPath, "--type", "cyclonedx", "--key", vendorKey, "-o", "json"}, 0, "", "", ""},
		{"attestation slsaprovenance1 is not the SBOM", []string{"verify", "attestation", blob, "--bundle", envPath, "--type", "slsaprovenance1", "--key", vendorKey, "-o", "json"}, 1, verify.ReasonPredicateTypeMismatch, "", ""},
		{"attestation unknown type name", []string{"verify", "attestation", ref, "--type", "sbom", "--key", vendorKey}, 2, "", "", `--type "sbom": not a predicate type URI nor one of cosign's names`},
		{"attestation positional and flag", []string{"verify", "attestation", ref, "--image", ref, "--key", vendorKey}, 2, "", "", "given both as an argument and with --blob or --image"},
		{"image certificate refused", []string{"verify", "image", ref, "--key", vendorKey, "--certificate", envPath}, 2, "", "", "--certificate and --rfc3161-timestamp are for blobs"},
		{"attestation blob and image", []string{"verify", "attestation", "--image", ref, "--blob", blob, "--type", sbomType, "--key", vendorKey}, 2, "", "", "not both"},
		{"attestation neither", []string{"verify", "attestation", "--type", sbomType, "--key", vendorKey}, 2, "", "", "give the blob (FILE --bundle ENVELOPE) or the image (REF)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(t, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errOut)
			}
			if !strings.HasPrefix(out, tc.stdout) {
				t.Fatalf("stdout %q does not start with %q", out, tc.stdout)
			}
			if !strings.Contains(errOut, tc.stderr) {
				t.Fatalf("stderr %q does not contain %q", errOut, tc.stderr)
			}
			if !strings.Contains(strings.Join(tc.args, " "), "-o json") || code == 2 {
				return
			}
			var res verify.Result
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("stdout is not a result: %v\n%s", err, out)
			}
			if res.Verified != (code == 0) {
				t.Fatalf("verified = %v with exit %d", res.Verified, code)
			}
			if tc.reason != "" && (len(res.Reasons) == 0 || res.Reasons[0] != tc.reason) {
				t.Fatalf("reasons = %v, want %s first", res.Reasons, tc.reason)
			}
			if res.Artifact.Kind == "image" && res.Artifact.Digest != h.String() {
				t.Fatalf("digest = %s, want %s", res.Artifact.Digest, h)
			}
		})
	}
}
