package cli_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
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
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	sigdsse "github.com/sigstore/sigstore/pkg/signature/dsse"

	"github.com/wardgate/wardgate/fixtures"
	"github.com/wardgate/wardgate/internal/ocisign"
)

// TestCosignParity runs a table of cosign command lines with the real
// cosign and, word for word (cosign's subcommand mapped to wardgate's), with
// wardgate, on the same material: keys, raw signatures, Sigstore bundles,
// keyless bundles with an offline trusted root, raw signatures with a
// Fulcio-style certificate and chain, DSSE attestations, and images in a
// registry. The verdicts (verified or not) must agree.
func TestCosignParity(t *testing.T) {
	cosign := cosignBinary(t)
	dir := t.TempDir()
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	f := abs(fx)
	pump, flipped, older := f+"/firmware/infusion-pump-2.4.0.bin", f+"/tampered/infusion-pump-2.4.0-flipped.bin", f+"/firmware/infusion-pump-2.3.0.bin"
	acme, rogue := f+"/keys/acme-infusion.pub", f+"/keys/rogue.pub"
	sig, wrongSig := f+"/sig/infusion-pump-2.4.0.bin.sig", f+"/tampered/infusion-pump-2.4.0.bin.wrongkey.sig"
	keyBundle := f + "/sig/infusion-pump-2.4.0.bin.sigstore.json"
	keyless, trustedRoot := f+"/keyless/infusion-pump-2.4.0.bin.v0.3.sigstore.json", f+"/keyless/trusted_root.json"
	keylessV01 := f + "/keyless/infusion-pump-2.4.0.bin.v0.1.sigstore.json"
	id, iss := fixtures.KeylessIdentity, fixtures.KeylessIssuer

	// cosign sign-blob --output-certificate: a raw signature, its
	// certificate and the CA chain, from a virtual Sigstore.
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	blob, err := os.ReadFile(pump)
	if err != nil {
		t.Fatal(err)
	}
	ent, err := vs.Sign(id, iss, blob)
	if err != nil {
		t.Fatal(err)
	}
	sc, _ := ent.SignatureContent()
	vc, _ := ent.VerificationContent()
	certPEM, err := cryptoutils.MarshalCertificateToPEM(vc.Certificate())
	if err != nil {
		t.Fatal(err)
	}
	fca := vs.FulcioCertificateAuthorities()[0].(*root.FulcioCertificateAuthority)
	chainPEM, err := cryptoutils.MarshalCertificatesToPEM(append(fca.Intermediates, fca.Root))
	if err != nil {
		t.Fatal(err)
	}
	rawSig := write("keyless.sig", []byte(base64.StdEncoding.EncodeToString(sc.MessageSignatureContent().Signature())))
	cert, chain := write("keyless.crt", certPEM), write("chain.pem", chainPEM)
	other, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	oca := other.FulcioCertificateAuthorities()[0].(*root.FulcioCertificateAuthority)
	otherChainPEM, err := cryptoutils.MarshalCertificatesToPEM(append(oca.Intermediates, oca.Root))
	if err != nil {
		t.Fatal(err)
	}
	otherChain := write("other-chain.pem", otherChainPEM)

	// cosign sign-blob --rfc3161-timestamp: an RFC 3161 timestamp over the
	// raw signature from the virtual Sigstore's TSA, in cosign's JSON, and
	// the TSA's certificate chain (cosign --timestamp-certificate-chain),
	// and the same from another virtual Sigstore, not trusted.
	rawSigBytes := sc.MessageSignatureContent().Signature()
	tsJSON := func(v *ca.VirtualSigstore, over []byte) []byte {
		ts, err := v.TimestampResponse(over)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(map[string][]byte{"SignedRFC3161Timestamp": ts})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ts := write("keyless.tsr.json", tsJSON(vs, rawSigBytes))
	otherTS := write("other.tsr.json", tsJSON(other, rawSigBytes))
	wrongTS := write("wrong.tsr.json", tsJSON(vs, []byte("another signature")))
	tsaChain := func(v *ca.VirtualSigstore, name string) string {
		tsa := v.TimestampingAuthorities()[0].(*root.SigstoreTimestampingAuthority)
		pem, err := cryptoutils.MarshalCertificatesToPEM(append(append([]*x509.Certificate{tsa.Leaf}, tsa.Intermediates...), tsa.Root))
		if err != nil {
			t.Fatal(err)
		}
		return write(name, pem)
	}
	tsChain, otherTSChain := tsaChain(vs, "tsa-chain.pem"), tsaChain(other, "other-tsa-chain.pem")

	// cosign attest-blob --key: a DSSE envelope with a CycloneDX statement
	// about the pump firmware, signed with the vendor key.
	signer, err := ocisign.LoadSigner(f + "/keys/acme-infusion.key")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(blob)
	stmt, err := json.Marshal(map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       []map[string]any{{"name": "infusion-pump-2.4.0.bin", "digest": map[string]string{"sha256": hex.EncodeToString(sum[:])}}},
		"predicateType": "https://cyclonedx.org/bom",
		"predicate":     map[string]any{"bomFormat": "CycloneDX"},
	})
	if err != nil {
		t.Fatal(err)
	}
	envBytes, err := sigdsse.WrapSigner(signer, "application/vnd.in-toto+json").SignMessage(bytes.NewReader(stmt))
	if err != nil {
		t.Fatal(err)
	}
	env := write("pump.intoto.json", envBytes)

	// An image in a registry, signed the classic cosign way.
	s := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithReferrersSupport(true)))
	t.Cleanup(s.Close)
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(strings.TrimPrefix(s.URL, "http://") + "/pump/agent:2.4.0")
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
	isig, err := ocisign.SignImageClassic(t.Context(), d, signer)
	if err != nil {
		t.Fatal(err)
	}
	iatt, err := ocisign.AttestImage(t.Context(), d, "https://cyclonedx.org/bom", []byte(`{"components":[]}`), signer)
	if err != nil {
		t.Fatal(err)
	}
	if err := ocisign.Push(t.Context(), d, ocisign.Attachments{Signatures: []oci.Signature{isig}, Attestations: []oci.Signature{iatt}}); err != nil {
		t.Fatal(err)
	}
	ref := d.String()

	type row struct {
		cosign []string // the cosign command line, without "cosign"
		want   bool     // verified
	}
	tlog := "--insecure-ignore-tlog"
	rows := []row{
		{[]string{"verify-blob", "--key", acme, "--signature", sig, tlog, pump}, true},
		{[]string{"verify-blob", "--key", rogue, "--signature", sig, tlog, pump}, false},
		{[]string{"verify-blob", "--key", acme, "--signature", wrongSig, tlog, pump}, false},
		{[]string{"verify-blob", "--key", acme, "--signature", sig, tlog, flipped}, false},
		{[]string{"verify-blob", "--key", acme, "--signature", sig, tlog, older}, false},
		// --offline: the log entry must be in the material; a raw
		// signature has none.
		{[]string{"verify-blob", "--key", acme, "--signature", sig, "--offline", pump}, false},
		{[]string{"verify-blob", "--key", acme, "--bundle", keyBundle, "--new-bundle-format", "--trusted-root", trustedRoot, tlog, pump}, true},
		{[]string{"verify-blob", "--key", rogue, "--bundle", keyBundle, "--trusted-root", trustedRoot, tlog, pump}, false},
		{[]string{"verify-blob", "--key", acme, "--bundle", keyBundle, "--trusted-root", trustedRoot, tlog, flipped}, false},
		{[]string{"verify-blob", "--bundle", keyless, "--trusted-root", trustedRoot, "--certificate-identity", id, "--certificate-oidc-issuer", iss, "--insecure-ignore-sct", pump}, true},
		{[]string{"verify-blob", "--bundle", keylessV01, "--trusted-root", trustedRoot, "--certificate-identity", id, "--certificate-oidc-issuer", iss, "--insecure-ignore-sct", "--offline", pump}, true},
		{[]string{"verify-blob", "--bundle", keyless, "--trusted-root", trustedRoot, "--certificate-identity", "intruder@evil.example", "--certificate-oidc-issuer", iss, "--insecure-ignore-sct", pump}, false},
		{[]string{"verify-blob", "--bundle", keyless, "--trusted-root", trustedRoot, "--certificate-identity-regexp", "@acme-infusion[.]example$", "--certificate-oidc-issuer-regexp", "^https://accounts[.]", "--insecure-ignore-sct", pump}, true},
		{[]string{"verify-blob", "--bundle", keyless, "--trusted-root", trustedRoot, "--certificate-identity", id, "--certificate-oidc-issuer", iss, "--insecure-ignore-sct", "--certificate-github-workflow-repository", "acme/pump", pump}, false},
		{[]string{"verify-blob", "--bundle", keyless, "--trusted-root", trustedRoot, "--certificate-identity", id, "--certificate-oidc-issuer", iss, "--insecure-ignore-sct", flipped}, false},
		{[]string{"verify-blob", "--bundle", f + "/tampered/infusion-pump-2.4.0.bin.expired.sigstore.json", "--trusted-root", trustedRoot, "--certificate-identity", id, "--certificate-oidc-issuer", iss, "--insecure-ignore-sct", pump}, false},
		// --certificate with the CA chain, no log, no SCT.
		{[]string{"verify-blob", "--certificate", cert, "--certificate-chain", chain, "--signature", rawSig, "--certificate-identity", id, "--certificate-oidc-issuer", iss, tlog, "--insecure-ignore-sct", pump}, true},
		{[]string{"verify-blob", "--certificate", cert, "--certificate-chain", otherChain, "--signature", rawSig, "--certificate-identity", id, "--certificate-oidc-issuer", iss, tlog, "--insecure-ignore-sct", pump}, false},
		{[]string{"verify-blob", "--certificate", cert, "--certificate-chain", chain, "--signature", rawSig, "--certificate-identity", "qa@acme-infusion.example", "--certificate-oidc-issuer", iss, tlog, "--insecure-ignore-sct", pump}, false},
		{[]string{"verify-blob", "--certificate", cert, "--certificate-chain", chain, "--signature", rawSig, "--certificate-identity", id, "--certificate-oidc-issuer", iss, tlog, "--insecure-ignore-sct", flipped}, false},
		// --rfc3161-timestamp with the TSA's chain: the certificate checked
		// at the TSA's time.
		{[]string{"verify-blob", "--certificate", cert, "--certificate-chain", chain, "--signature", rawSig, "--rfc3161-timestamp", ts, "--timestamp-certificate-chain", tsChain, "--use-signed-timestamps", "--certificate-identity", id, "--certificate-oidc-issuer", iss, tlog, "--insecure-ignore-sct", pump}, true},
		{[]string{"verify-blob", "--certificate", cert, "--certificate-chain", chain, "--signature", rawSig, "--rfc3161-timestamp", otherTS, "--timestamp-certificate-chain", tsChain, "--use-signed-timestamps", "--certificate-identity", id, "--certificate-oidc-issuer", iss, tlog, "--insecure-ignore-sct", pump}, false},
		{[]string{"verify-blob", "--certificate", cert, "--certificate-chain", chain, "--signature", rawSig, "--rfc3161-timestamp", wrongTS, "--timestamp-certificate-chain", tsChain, "--use-signed-timestamps", "--certificate-identity", id, "--certificate-oidc-issuer", iss, tlog, "--insecure-ignore-sct", pump}, false},
		{[]string{"verify-blob", "--certificate", cert, "--certificate-chain", chain, "--signature", rawSig, "--rfc3161-timestamp", ts, "--timestamp-certificate-chain", otherTSChain, "--use-signed-timestamps", "--certificate-identity", id, "--certificate-oidc-issuer", iss, tlog, "--insecure-ignore-sct", pump}, false},
		{[]string{"verify-blob", "--certificate", cert, "--certificate-chain", chain, "--signature", rawSig, "--rfc3161-timestamp", ts, "--timestamp-certificate-chain", tsChain, "--use-signed-timestamps", "--certificate-identity", id, "--certificate-oidc-issuer", iss, tlog, "--insecure-ignore-sct", flipped}, false},
		// Attestations on a blob, with cosign's --type names.
		{[]string{"verify-blob-attestation", "--key", acme, "--signature", env, "--type", "cyclonedx", tlog, pump}, true},
		{[]string{"verify-blob-attestation", "--key", acme, "--signature", env, "--type", "https://cyclonedx.org/bom", tlog, pump}, true},
		{[]string{"verify-blob-attestation", "--key", acme, "--signature", env, "--type", "slsaprovenance1", tlog, pump}, false},
		{[]string{"verify-blob-attestation", "--key", acme, "--signature", env, "--type", "spdxjson", tlog, pump}, false},
		{[]string{"verify-blob-attestation", "--key", rogue, "--signature", env, "--type", "cyclonedx", tlog, pump}, false},
		{[]string{"verify-blob-attestation", "--key", acme, "--signature", env, "--type", "cyclonedx", tlog, older}, false},
		// Images in a registry.
		{[]string{"verify", "--key", acme, tlog, ref}, true},
		{[]string{"verify", "--key", rogue, tlog, ref}, false},
		{[]string{"verify-attestation", "--key", acme, "--type", "cyclonedx", tlog, ref}, true},
		{[]string{"verify-attestation", "--key", acme, "--type", "slsaprovenance", tlog, ref}, false},
		{[]string{"verify-attestation", "--key", rogue, "--type", "cyclonedx", tlog, ref}, false},
	}
	wardgateArgs := map[string][]string{
		"verify-blob":             {"verify", "blob"},
		"verify-blob-attestation": {"verify", "attestation"},
		"verify":                  {"verify", "image"},
		"verify-attestation":      {"verify", "attestation"},
	}
	agree := 0
	for _, r := range rows {
		line := "cosign " + strings.Join(r.cosign, " ")
		ccode, cout := runCosign(t, cosign, r.cosign...)
		wcode, wout, werr := run(t, append(append([]string{}, wardgateArgs[r.cosign[0]]...), r.cosign[1:]...)...)
		switch {
		case (ccode == 0) != r.want:
			t.Errorf("%s\n  cosign: exit %d, want verified=%v\n%s", line, ccode, r.want, cout)
		case wcode == 2:
			t.Errorf("%s\n  wardgate could not verify (exit 2): %s", line, werr)
		case (wcode == 0) != (ccode == 0):
			t.Errorf("%s\n  cosign exit %d, wardgate exit %d\n  cosign: %s\n  wardgate: %s%s", line, ccode, wcode, cout, wout, werr)
		default:
			agree++
		}
	}
	t.Logf("cosign %s and wardgate agree on %d of %d command lines", cosignVersion, agree, len(rows))
}
