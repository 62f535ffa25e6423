package cli_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/wardgate/wardgate/cmd/wardgate/cli"
	"github.com/wardgate/wardgate/policy"
)

// freezeRego denies every acme-infusion update.
const freezeRego = `package wardgate.rules.freeze

deny contains {"code": "change-freeze", "severity": "high", "message": "acme-infusion updates are frozen"} if {
	input.artifact.vendor == "acme-infusion"
}
`

// policyKeys makes an ECDSA P-256 key pair: the private half as PEM for
// OPA's signer, the public half in a PEM file for --policy-key.
func policyKeys(t *testing.T) (private, pubFile string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubFile = filepath.Join(t.TempDir(), "policy.pub")
	if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600); err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), pubFile
}

// freezeBundle writes the freeze rule as an OPA bundle, signed (ES256)
// with the private key unless it is empty.
func freezeBundle(t *testing.T, private string) string {
	t.Helper()
	b := bundle.Bundle{Data: map[string]any{}, Modules: []bundle.ModuleFile{{URL: "/hospital/freeze.rego", Path: "/hospital/freeze.rego", Raw: []byte(freezeRego)}}}
	if private != "" {
		if err := b.GenerateSignature(bundle.NewSigningConfig(private, "ES256", ""), "release", false); err != nil {
			t.Fatal(err)
		}
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

func TestPolicyEvalPolicyKey(t *testing.T) {
	private, pub := policyKeys(t)
	_, otherPub := policyKeys(t)
	signed := freezeBundle(t, private)
	ev := evidenceFile(t, func(map[string]any) {})
	trustFile := filepath.Join(policyTestdata, "trust.yaml")
	eval := func(args ...string) (int, policy.Decision, string) {
		code, out, errOut := run(t, append([]string{"policy", "eval", "-o", "json", "--input", ev, "--config", trustFile}, args...)...)
		var d policy.Decision
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			t.Fatalf("%v: %q", err, out)
		}
		return code, d, errOut
	}
	code, d, errOut := eval("--policy", signed, "--policy-key", pub)
	if code != 1 || !reflect.DeepEqual(d.Codes(), []policy.Code{"change-freeze"}) || errOut != "" {
		t.Fatalf("signed with the key: exit %d, %+v, stderr %q", code, d, errOut)
	}
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"wrong key", []string{"--policy", signed, "--policy-key", otherPub},
			"bundle " + signed + ": signature does not verify with the bundle key " + otherPub + ": failed to verify JWT signature: invalid ECDSA signature"},
		{"signed, no key", []string{"--policy", signed},
			"bundle " + signed + " is signed (.signatures.json) but no bundle key was given; pass the signer's public key (--policy-key) to verify it: wardgate does not load a bundle whose signature it cannot check"},
		{"key, no bundle", []string{"--policy-key", pub},
			"policy: bundle key " + pub + " given without a bundle to verify (it verifies OPA bundles only; .rego directories are not signed)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, d, errOut := eval(tc.args...)
			if code != 2 || !reflect.DeepEqual(d, policy.CouldNotEvaluate(errorString(tc.wantErr))) || errOut != "wardgate: "+tc.wantErr+"\n" {
				t.Fatalf("exit %d\ndecision %+v\nstderr %q\nwant %q", code, d, errOut, tc.wantErr)
			}
		})
	}
}

func TestAdmitPolicyKey(t *testing.T) {
	private, pub := policyKeys(t)
	unsigned := freezeBundle(t, "")
	code, r := admit(t, t.TempDir(), pumpArgs("2.4.0", "--no-scan", "--policy", freezeBundle(t, private), "--policy-key", pub))
	if code != 1 || !slices.Equal(r.codes(), []string{"change-freeze"}) {
		t.Fatalf("signed with the key: exit %d %+v", code, r)
	}
	code, r = admit(t, t.TempDir(), pumpArgs("2.4.0", "--no-scan", "--policy", unsigned, "--policy-key", pub))
	want := "bundle " + unsigned + " is not signed (no .signatures.json), and the bundle key " + pub + " requires a signature on every bundle (opa build --signing-key)"
	if code != 2 || r.Allow || !slices.Equal(r.codes(), []string{"could-not-evaluate"}) || r.Decision.Violations[0].Message != want || r.Error != want {
		t.Fatalf("unsigned with a key: exit %d %+v\nwant %s", code, r, want)
	}
}

func TestServePolicyKey(t *testing.T) {
	t.Setenv("WARDGATE_KEY_PASSWORD", "test-only")
	private, pub := policyKeys(t)
	_, otherPub := policyKeys(t)
	signed := freezeBundle(t, private)
	state := t.TempDir()
	code, _, errOut := run(t, "serve", "--config", "../../../fixtures/trust.yaml", "--state", state, "--listen", "127.0.0.1:0",
		"--policy", signed, "--policy-key", otherPub)
	want := "wardgate: bundle " + signed + ": signature does not verify with the bundle key " + otherPub + ": failed to verify JWT signature: invalid ECDSA signature\n"
	if code != 2 || !strings.HasSuffix(errOut, want) {
		t.Fatalf("wrong key: exit %d, stderr %q\nwant suffix %q", code, errOut, want)
	}
	// With the right key the gate runs the bundle's rule.
	ci := token(t, state, "ci")
	url, _, stop := serveWith(t, cli.ServeConfig{Trust: "../../../fixtures/trust.yaml", Policy: signed, PolicyKey: pub, State: state,
		LogLevel: "info", NoScan: true, RiskTTL: time.Second})
	code, body := postUpdate(t, url, ci)
	stop()
	if code != 200 || !strings.Contains(body, `"allow":false`) || !strings.Contains(body, `"code":"change-freeze"`) {
		t.Fatalf("evaluate: %d %s", code, body)
	}
}
