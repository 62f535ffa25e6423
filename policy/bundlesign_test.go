package policy_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/wardgate/wardgate/policy"
)

// signingKey is a key made for one test: the private half as PEM for OPA's
// signer, the public half in a PEM file for WithBundleKey.
type signingKey struct {
	private string
	alg     string
	pubFile string
}

func newSigningKey(t testing.TB, alg string) signingKey {
	t.Helper()
	var priv crypto.Signer
	var err error
	switch alg {
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ES512":
		priv, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "RS256":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("no key for %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{
		private: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		alg:     alg,
		pubFile: writePublicKey(t, priv.Public()),
	}
}

// writePublicKey writes pub as a PEM PUBLIC KEY file.
func writePublicKey(t testing.TB, pub crypto.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "policy-key.pub")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const freezeModule = "/hospital/policy.rego"

// freezeBundle is the change-freeze rule and its data as an OPA bundle.
func freezeBundle() bundle.Bundle {
	return bundle.Bundle{
		Manifest: bundle.Manifest{Revision: "2026-06-01"},
		Data:     map[string]any{"freeze": map[string]any{"vendor": "acme-infusion"}},
		Modules:  []bundle.ModuleFile{{URL: freezeModule, Path: freezeModule, Raw: []byte(fridayRule)}},
	}
}

// writeSignedBundle signs b with key (none when key is nil) using OPA's
// signer, applies edit (changes after signing), and writes it with OPA's
// bundle writer.
func writeSignedBundle(t testing.TB, b bundle.Bundle, key *signingKey, edit func(*bundle.Bundle)) string {
	t.Helper()
	if key != nil {
		if err := b.GenerateSignature(bundle.NewSigningConfig(key.private, key.alg, ""), "release", false); err != nil {
			t.Fatal(err)
		}
	}
	if edit != nil {
		edit(&b)
	}
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(b); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "hospital.tar.gz")
	if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSignedBundleVerifies(t *testing.T) {
	for _, alg := range []string{"ES256", "ES384", "ES512", "RS256"} {
		t.Run(alg, func(t *testing.T) {
			key := newSigningKey(t, alg)
			b := writeSignedBundle(t, freezeBundle(), &key, nil)
			d := evaluate(t, newEngine(t, policy.WithBundle(b), policy.WithBundleKey(key.pubFile)), typical(t))
			if d.Allow || !reflect.DeepEqual(d.Codes(), []policy.Code{"change-freeze"}) {
				t.Fatalf("decision %+v", d)
			}
		})
	}
}

// bundleErr is New's error for the bundle at b with the options.
func bundleErr(t *testing.T, b string, opts ...policy.Option) error {
	t.Helper()
	_, err := policy.New(t.Context(), append([]policy.Option{policy.WithTrust(loadTrust(t, "testdata/trust.yaml")), policy.WithBundle(b)}, opts...)...)
	if err == nil {
		t.Fatal("New accepted the bundle")
	}
	return err
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestBundleSignatureRefused(t *testing.T) {
	ec, otherEC := newSigningKey(t, "ES256"), newSigningKey(t, "ES256")
	rsaKey, otherRSA := newSigningKey(t, "RS256"), newSigningKey(t, "RS256")
	tampered := strings.Replace(fridayRule, `"high"`, `"low"`, 1)
	extra := bundle.ModuleFile{URL: "/hospital/extra.rego", Path: "/hospital/extra.rego", Raw: []byte("package wardgate.rules.extra\n")}
	withExtra := freezeBundle()
	withExtra.Modules = append(withExtra.Modules, extra)
	for _, tc := range []struct {
		name   string
		bundle string
		key    string
		want   string // %B is the bundle, %K the key file
	}{
		{"wrong ECDSA key", writeSignedBundle(t, freezeBundle(), &ec, nil), otherEC.pubFile,
			"bundle %B: signature does not verify with the bundle key %K: failed to verify JWT signature: invalid ECDSA signature"},
		{"wrong RSA key", writeSignedBundle(t, freezeBundle(), &rsaKey, nil), otherRSA.pubFile,
			"bundle %B: signature does not verify with the bundle key %K: failed to verify JWT signature: crypto/rsa: verification error"},
		{"RSA key, ECDSA signature", writeSignedBundle(t, freezeBundle(), &ec, nil), rsaKey.pubFile,
			"bundle %B: signature does not verify with the bundle key %K: failed to verify JWT signature: crypto/rsa: verification error"},
		{"unsigned", writeSignedBundle(t, freezeBundle(), nil, nil), ec.pubFile,
			"bundle %B is not signed (no .signatures.json), and the bundle key %K requires a signature on every bundle (opa build --signing-key)"},
		{"module changed after signing", writeSignedBundle(t, freezeBundle(), &ec, func(b *bundle.Bundle) { b.Modules[0].Raw = []byte(tampered) }), ec.pubFile,
			"bundle %B: hospital/policy.rego: digest mismatch (want: " + sha256Hex(fridayRule) + ", got: " + sha256Hex(tampered) + ")"},
		{"module added after signing", writeSignedBundle(t, freezeBundle(), &ec, func(b *bundle.Bundle) { b.Modules = append(b.Modules, extra) }), ec.pubFile,
			"bundle %B: file hospital/extra.rego not included in bundle signature"},
		{"module removed after signing", writeSignedBundle(t, withExtra, &ec, func(b *bundle.Bundle) { b.Modules = b.Modules[:1] }), ec.pubFile,
			"bundle %B: file(s) [hospital/extra.rego] specified in bundle signatures but not found in the target bundle"},
		{"signature not a JWT", writeSignedBundle(t, freezeBundle(), &ec, func(b *bundle.Bundle) { b.Signatures.Signatures = []string{"not-a-jwt"} }), ec.pubFile,
			"bundle %B: signature does not verify with the bundle key %K: failed to split compact JWT: jwsbb: invalid number of segments"},
		{"signed, no key", writeSignedBundle(t, freezeBundle(), &ec, nil), "",
			"bundle %B is signed (.signatures.json) but no bundle key was given; pass the signer's public key (--policy-key) to verify it: wardgate does not load a bundle whose signature it cannot check"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []policy.Option
			if tc.key != "" {
				opts = append(opts, policy.WithBundleKey(tc.key))
			}
			err := bundleErr(t, tc.bundle, opts...)
			want := strings.NewReplacer("%B", tc.bundle, "%K", tc.key).Replace(tc.want)
			if err.Error() != want {
				t.Fatalf("err:\n got %v\nwant %s", err, want)
			}
		})
	}
}

// TestUnsignedBundleWithoutKey: without a key, an unsigned bundle loads as
// before.
func TestUnsignedBundleWithoutKey(t *testing.T) {
	b := writeSignedBundle(t, freezeBundle(), nil, nil)
	if d := evaluate(t, newEngine(t, policy.WithBundle(b)), typical(t)); !reflect.DeepEqual(d.Codes(), []policy.Code{"change-freeze"}) {
		t.Fatalf("decision %+v", d)
	}
}

func TestSignedBundleCompileErrorNamesFile(t *testing.T) {
	key := newSigningKey(t, "ES256")
	bad := freezeBundle()
	bad.Modules[0].Raw = []byte("package wardgate.rules.bad\n\ndeny contains x if {\n\tx :=\n}\n")
	b := writeSignedBundle(t, bad, &key, nil)
	err := bundleErr(t, b, policy.WithBundleKey(key.pubFile))
	var ce *policy.CompileError
	if !errors.As(err, &ce) || ce.File != freezeModule || ce.Line != 5 {
		t.Fatalf("err = %v, want a CompileError at %s:5", err, freezeModule)
	}
}

func TestBundleKeyErrors(t *testing.T) {
	b := writeSignedBundle(t, freezeBundle(), nil, nil)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	files := writeFiles(t, map[string]string{
		"private.pem": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"text.pem":    "not a key\n",
		"big.pem":     strings.Repeat("x", 64<<10+1),
	})
	ed25519File, p224File := writePublicKey(t, edPub), writePublicKey(t, p224.Public())
	for _, tc := range []struct {
		name string
		opts []policy.Option
		want string
	}{
		{"empty", []policy.Option{policy.WithBundleKey("")}, "policy: empty bundle key path"},
		{"twice", []policy.Option{policy.WithBundleKey("a.pem"), policy.WithBundleKey("b.pem")}, "policy: WithBundleKey given twice"},
		{"no bundle", []policy.Option{policy.WithBundleKey(ed25519File)},
			"policy: bundle key " + ed25519File + " given without a bundle to verify (it verifies OPA bundles only; .rego directories are not signed)"},
		{"missing", []policy.Option{policy.WithBundle(b), policy.WithBundleKey("testdata/nope.pem")}, "bundle key: stat testdata/nope.pem: no such file or directory"},
		{"too big", []policy.Option{policy.WithBundle(b), policy.WithBundleKey(filepath.Join(files, "big.pem"))},
			"bundle key: " + filepath.Join(files, "big.pem") + ": larger than 65536 bytes"},
		{"not PEM", []policy.Option{policy.WithBundle(b), policy.WithBundleKey(filepath.Join(files, "text.pem"))},
			"bundle key " + filepath.Join(files, "text.pem") + ": not PEM; want a PEM public key (-----BEGIN PUBLIC KEY-----)"},
		{"private key", []policy.Option{policy.WithBundle(b), policy.WithBundleKey(filepath.Join(files, "private.pem"))},
			"bundle key " + filepath.Join(files, "private.pem") + `: a PEM "PRIVATE KEY" block; want PUBLIC KEY, the public half (openssl pkey -in KEY -pubout)`},
		{"Ed25519", []policy.Option{policy.WithBundle(b), policy.WithBundleKey(ed25519File)},
			"bundle key " + ed25519File + ": key type ed25519.PublicKey cannot verify OPA bundle signatures; want an ECDSA (P-256, P-384, P-521) or RSA key"},
		{"P-224", []policy.Option{policy.WithBundle(b), policy.WithBundleKey(p224File)},
			"bundle key " + p224File + ": ECDSA curve P-224 cannot verify OPA bundle signatures; want P-256, P-384 or P-521"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := policy.New(t.Context(), tc.opts...)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("err:\n got %v\nwant %s", err, tc.want)
			}
		})
	}
}
