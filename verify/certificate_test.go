package verify_test

import (
	"crypto/sha256"
	"crypto/x509"
	"strings"
	"testing"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/wardgate/wardgate/verify"
)

// TestRawSignatureWithCertificate is cosign verify-blob --certificate: a raw
// signature and its Fulcio-style certificate, checked by sigstore-go against
// the trusted root or a --certificate-chain, under the policy's flags.
func TestRawSignatureWithCertificate(t *testing.T) {
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	other, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	const id, iss = "release@acme.example", "https://issuer.acme.example"
	blob := []byte("firmware image 1.2.3")
	ent, err := vs.Sign(id, iss, blob)
	if err != nil {
		t.Fatal(err)
	}
	sc, _ := ent.SignatureContent()
	vc, _ := ent.VerificationContent()
	sig := sc.MessageSignatureContent().Signature()
	cert := vc.Certificate().Raw
	ts, _ := ent.Timestamps()
	foreign, err := other.Sign(id, iss, blob)
	if err != nil {
		t.Fatal(err)
	}
	fvc, _ := foreign.VerificationContent()
	fca := vs.FulcioCertificateAuthorities()[0].(*root.FulcioCertificateAuthority)
	chain := append(fca.Intermediates, fca.Root)

	digest := sha256.Sum256(blob)
	art := verify.Artifact{Name: "fw.bin", Digest: digest[:]}
	ids := []verify.Identity{{Subject: id, Issuer: iss}}
	s := func(cert, ts []byte) []verify.Signature {
		return []verify.Signature{{Source: "fw.bin.sig", Data: sig, Certificate: cert, Timestamp: ts}}
	}
	cases := []struct {
		name   string
		pol    verify.Policy
		sigs   []verify.Signature
		reason verify.Reason // "" for verified
		detail string
	}{
		{"trusted root, SCT ignored", verify.Policy{TrustedRoot: vs, Identities: ids, IgnoreSCTUnsafe: true}, s(cert, nil), "", ""},
		// The virtual Fulcio's certificates carry no SCT and its root has a
		// CT log: without --insecure-ignore-sct the certificate is refused.
		{"SCT required by the root's CT log", verify.Policy{TrustedRoot: vs, Identities: ids}, s(cert, nil), verify.ReasonUntrustedSigner, "signed certificate timestamp"},
		{"certificate chain only", verify.Policy{CertificateChain: chain, Identities: ids}, s(cert, nil), "", ""},
		{"certificate of another CA", verify.Policy{CertificateChain: chain, Identities: ids}, s(fvc.Certificate().Raw, nil), verify.ReasonUntrustedSigner, ""},
		{"another identity", verify.Policy{CertificateChain: chain, Identities: []verify.Identity{{Subject: "qa@acme.example", Issuer: iss}}}, s(cert, nil), verify.ReasonIdentityMismatch, ""},
		{"GitHub workflow asked, not in the certificate", verify.Policy{CertificateChain: chain, Identities: []verify.Identity{{Subject: id, Issuer: iss, Workflow: verify.GitHubWorkflow{Repository: "acme/firmware"}}}}, s(cert, nil), verify.ReasonIdentityMismatch, ""},
		{"signed timestamp required, none", verify.Policy{TrustedRoot: vs, Identities: ids, IgnoreSCTUnsafe: true, RequireSignedTimestamp: true}, s(cert, nil), verify.ReasonTimestampInvalid, "--use-signed-timestamps requires one"},
		{"signed timestamp given", verify.Policy{TrustedRoot: vs, Identities: ids, IgnoreSCTUnsafe: true, RequireSignedTimestamp: true}, s(cert, ts[0]), "", ""},
		{"offline: log entry required", verify.Policy{TrustedRoot: vs, Identities: ids, IgnoreSCTUnsafe: true, RequireTlog: true}, s(cert, nil), verify.ReasonTlogInvalid, "--offline requires one"},
		{"no certificate: keyed signature, only keyless trusted", verify.Policy{TrustedRoot: vs, Identities: ids}, s(nil, nil), verify.ReasonUntrustedSigner, "only keyless identities are trusted"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := verify.Blob(t.Context(), art, tc.sigs, &tc.pol)
			if err != nil {
				t.Fatal(err)
			}
			if tc.reason == "" {
				if !res.Verified {
					t.Fatalf("not verified: %s", res.Message)
				}
				if got := res.TrustedSigners[0].Identity; got != id {
					t.Fatalf("signer %q", got)
				}
				return
			}
			if res.Verified || res.Reasons[0] != tc.reason || !strings.Contains(res.Message, tc.detail) {
				t.Fatalf("got %v %q, want %s with %q", res.Reasons, res.Message, tc.reason, tc.detail)
			}
		})
	}
}

// A certificate given beside a Sigstore bundle is refused: the bundle
// carries its own.
func TestCertificateBesideSigstoreBundle(t *testing.T) {
	data := []byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{"hint":"x"}},"messageSignature":{"messageDigest":{"algorithm":"SHA2_256","digest":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="},"signature":"AAAA"}}`)
	digest := make([]byte, 32)
	res, err := verify.Blob(t.Context(), verify.Artifact{Name: "x", Digest: digest}, []verify.Signature{{Source: "b.json", Data: data, Certificate: []byte{1}}},
		&verify.Policy{Identities: []verify.Identity{{Subject: "a", Issuer: "b"}}, CertificateChain: nil, TrustedRoot: mustVS(t)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Verified || res.Signatures[0].Reason != verify.ReasonMalformed || !strings.Contains(res.Signatures[0].Detail, "carries its own verification material") {
		t.Fatalf("%+v", res.Signatures[0])
	}
}

func mustVS(t testing.TB) *ca.VirtualSigstore {
	t.Helper()
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

// TestParseTimestampChain: cosign's --timestamp-certificate-chain in any
// order is split into the TSA's root, intermediates and signing
// certificate; a chain without a root, or with two, is refused by name.
func TestParseTimestampChain(t *testing.T) {
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	tsa := vs.TimestampingAuthorities()[0].(*root.SigstoreTimestampingAuthority)
	pemOf := func(certs ...*x509.Certificate) []byte {
		b, err := cryptoutils.MarshalCertificatesToPEM(certs)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	got, err := verify.ParseTimestampChain(pemOf(append([]*x509.Certificate{tsa.Root, tsa.Leaf}, tsa.Intermediates...)...), "tsa.pem")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Root.Equal(tsa.Root) || !got.Leaf.Equal(tsa.Leaf) || len(got.Intermediates) != len(tsa.Intermediates) {
		t.Errorf("parsed %+v, want root, leaf and %d intermediates", got, len(tsa.Intermediates))
	}
	for _, tc := range []struct {
		name string
		pem  []byte
		want string
	}{
		{"noroot.pem", pemOf(tsa.Leaf), "timestamp certificate chain noroot.pem: no root (self-signed CA) certificate"},
		{"tworoots.pem", pemOf(tsa.Root, tsa.Root), "timestamp certificate chain tworoots.pem: more than one root (self-signed) certificate"},
		{"garbage.pem", []byte("not pem"), "timestamp certificate chain garbage.pem:"},
	} {
		if _, err := verify.ParseTimestampChain(tc.pem, tc.name); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}
