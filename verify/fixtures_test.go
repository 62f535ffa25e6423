package verify_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/wardgate/wardgate/fixtures"
	"github.com/wardgate/wardgate/verify"
)

const fx = "../fixtures/testdata"

type fixtureCase struct {
	name      string
	blob      string
	sigs      []string
	keys      []string
	keyless   bool
	threshold int
	want      []verify.Reason // nil: verified
}

func fixtureCases() []fixtureCase {
	pump := "firmware/infusion-pump-2.4.0.bin"
	acme := []string{"keys/acme-infusion.pub"}
	return []fixtureCase{
		{name: "ecdsa raw signature", blob: pump, sigs: []string{"sig/infusion-pump-2.4.0.bin.sig"}, keys: acme},
		{name: "ecdsa cosign bundle", blob: pump, sigs: []string{"sig/infusion-pump-2.4.0.bin.cosign-bundle.json"}, keys: acme},
		{name: "ecdsa sigstore bundle", blob: pump, sigs: []string{"sig/infusion-pump-2.4.0.bin.sigstore.json"}, keys: acme},
		{name: "ed25519 raw signature", blob: "firmware/mri-console-7.2.0.bin", sigs: []string{"sig/mri-console-7.2.0.bin.sig"}, keys: []string{"keys/medimaging.pub"}},
		{name: "ed25519 cosign bundle", blob: "firmware/mri-console-7.1.0.bin", sigs: []string{"sig/mri-console-7.1.0.bin.cosign-bundle.json"}, keys: []string{"keys/medimaging.pub"}},
		{name: "rsa-3072 raw signature", blob: "firmware/hvac-controller-1.1.0.bin", sigs: []string{"sig/hvac-controller-1.1.0.bin.sig"}, keys: []string{"keys/buildctl.pub"}},
		{name: "rsa-3072 sigstore bundle", blob: "firmware/hvac-controller-1.0.4.bin", sigs: []string{"sig/hvac-controller-1.0.4.bin.sigstore.json"}, keys: []string{"keys/buildctl.pub"}},
		{name: "keyless v0.3 with proof and timestamp", blob: pump, sigs: []string{"keyless/infusion-pump-2.4.0.bin.v0.3.sigstore.json"}, keyless: true},
		{name: "keyless v0.1 with promise", blob: pump, sigs: []string{"keyless/infusion-pump-2.4.0.bin.v0.1.sigstore.json"}, keyless: true},
		{name: "keyless cosign bundle with SET", blob: pump, sigs: []string{"keyless/infusion-pump-2.4.0.bin.cosign-bundle.json"}, keyless: true},
		{name: "keyless cosign bundle, flipped byte", blob: "tampered/infusion-pump-2.4.0-flipped.bin", sigs: []string{"keyless/infusion-pump-2.4.0.bin.cosign-bundle.json"}, keyless: true, want: []verify.Reason{verify.ReasonDigestMismatch}},
		{name: "2 of 2 keys", blob: pump, sigs: []string{"sig/infusion-pump-2.4.0.bin.sig", "sig/infusion-pump-2.4.0.bin.qa.sig"}, keys: []string{"keys/acme-infusion.pub", "keys/acme-infusion-qa.pub"}, threshold: 2},
		{name: "same signer twice is one signer", blob: pump, sigs: []string{"sig/infusion-pump-2.4.0.bin.sig", "sig/infusion-pump-2.4.0.bin.sigstore.json"}, keys: []string{"keys/acme-infusion.pub", "keys/acme-infusion-qa.pub"}, threshold: 2, want: []verify.Reason{verify.ReasonThresholdNotMet}},
		{name: "no signature", blob: pump, keys: acme, want: []verify.Reason{verify.ReasonNoSignature}},
		{name: "flipped byte, raw signature", blob: "tampered/infusion-pump-2.4.0-flipped.bin", sigs: []string{"sig/infusion-pump-2.4.0.bin.sig"}, keys: acme, want: []verify.Reason{verify.ReasonUntrustedSigner}},
		{name: "flipped byte, bundle", blob: "tampered/infusion-pump-2.4.0-flipped.bin", sigs: []string{"sig/infusion-pump-2.4.0.bin.sigstore.json"}, keys: acme, want: []verify.Reason{verify.ReasonDigestMismatch}},
		{name: "flipped byte, keyless", blob: "tampered/infusion-pump-2.4.0-flipped.bin", sigs: []string{"keyless/infusion-pump-2.4.0.bin.v0.3.sigstore.json"}, keyless: true, want: []verify.Reason{verify.ReasonDigestMismatch}},
		{name: "wrong key", blob: pump, sigs: []string{"tampered/infusion-pump-2.4.0.bin.wrongkey.sig"}, keys: acme, want: []verify.Reason{verify.ReasonUntrustedSigner}},
		{name: "bundle for another artifact", blob: pump, sigs: []string{"tampered/infusion-pump-2.4.0.bin.other.sigstore.json"}, keys: acme, want: []verify.Reason{verify.ReasonDigestMismatch}},
		{name: "garbage signature", blob: pump, sigs: []string{"tampered/infusion-pump-2.4.0.bin.garbage.sig"}, keys: acme, want: []verify.Reason{verify.ReasonMalformed}},
		{name: "truncated bundle", blob: pump, sigs: []string{"tampered/infusion-pump-2.4.0.bin.truncated.sigstore.json"}, keyless: true, want: []verify.Reason{verify.ReasonMalformed}},
		{name: "certificate for another identity", blob: pump, sigs: []string{"tampered/infusion-pump-2.4.0.bin.intruder.sigstore.json"}, keyless: true, want: []verify.Reason{verify.ReasonIdentityMismatch}},
		{name: "certificate expired at log time", blob: pump, sigs: []string{"tampered/infusion-pump-2.4.0.bin.expired.sigstore.json"}, keyless: true, want: []verify.Reason{verify.ReasonExpired}},
		{name: "keyless signature, only keys trusted", blob: pump, sigs: []string{"keyless/infusion-pump-2.4.0.bin.v0.3.sigstore.json"}, keys: acme, want: []verify.Reason{verify.ReasonUntrustedSigner}},
		{name: "key signature, threshold 2 of 2, one missing", blob: pump, sigs: []string{"sig/infusion-pump-2.4.0.bin.sig"}, keys: []string{"keys/acme-infusion.pub", "keys/acme-infusion-qa.pub"}, threshold: 2, want: []verify.Reason{verify.ReasonThresholdNotMet}},
	}
}

func runFixtureCase(t *testing.T, dir string, tc fixtureCase) *verify.Result {
	t.Helper()
	pol := &verify.Policy{Threshold: tc.threshold}
	for _, k := range tc.keys {
		key, err := verify.LoadPublicKey(filepath.Join(dir, k))
		if err != nil {
			t.Fatal(err)
		}
		pol.Keys = append(pol.Keys, key)
	}
	if tc.keyless {
		tr, err := verify.LoadTrustedRoot(filepath.Join(dir, "keyless/trusted_root.json"))
		if err != nil {
			t.Fatal(err)
		}
		pol.TrustedRoot = tr
		pol.Identities = []verify.Identity{{Subject: fixtures.KeylessIdentity, Issuer: fixtures.KeylessIssuer}}
	}
	art, err := verify.HashFile(filepath.Join(dir, tc.blob))
	if err != nil {
		t.Fatal(err)
	}
	var sigs []verify.Signature
	for _, s := range tc.sigs {
		sig, err := verify.LoadSignature(filepath.Join(dir, s))
		if err != nil {
			t.Fatal(err)
		}
		sigs = append(sigs, sig)
	}
	res, err := verify.Blob(t.Context(), art, sigs, pol)
	if err != nil {
		t.Fatalf("Blob: %v", err)
	}
	return res
}

func checkVerdict(t *testing.T, tc fixtureCase, res *verify.Result) {
	t.Helper()
	if tc.want == nil {
		if !res.Verified || len(res.Reasons) != 0 {
			t.Fatalf("want verified, got %v: %s", res.Reasons, res.Message)
		}
		return
	}
	if res.Verified {
		t.Fatalf("want %v, got verified", tc.want)
	}
	if !slices.Equal(res.Reasons, tc.want) {
		t.Fatalf("reasons = %v, want %v (%s)", res.Reasons, tc.want, res.Message)
	}
}

func TestFixtureVerdicts(t *testing.T) {
	for _, tc := range fixtureCases() {
		t.Run(tc.name, func(t *testing.T) {
			checkVerdict(t, tc, runFixtureCase(t, fx, tc))
		})
	}
}

// Regenerating the fixtures (fresh keys, fresh virtual Sigstore) must give
// the same verdict for every case.
func TestRegenerateSameVerdicts(t *testing.T) {
	dir := regenerated(t)
	for _, tc := range fixtureCases() {
		t.Run(tc.name, func(t *testing.T) {
			checkVerdict(t, tc, runFixtureCase(t, dir, tc))
		})
	}
}

func TestVerifiedResultReportsSigner(t *testing.T) {
	res := runFixtureCase(t, fx, fixtureCases()[7])
	if len(res.TrustedSigners) != 1 || res.TrustedSigners[0].Identity != fixtures.KeylessIdentity || res.TrustedSigners[0].Issuer != fixtures.KeylessIssuer {
		t.Fatalf("signers = %+v", res.TrustedSigners)
	}
	sr := res.Signatures[0]
	if len(sr.LogEntries) != 1 || sr.LogEntries[0].IntegratedTime == nil {
		t.Fatalf("log entries = %+v", sr.LogEntries)
	}
	if len(sr.Timestamps) < 2 { // the log's integrated time and the TSA's
		t.Fatalf("timestamps = %v", sr.Timestamps)
	}
	if sr.Format != "sigstore-bundle-0.3" {
		t.Fatalf("format = %q", sr.Format)
	}
}

func TestBadInputs(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		run  func() error
		want string
	}{
		{"directory as blob", func() error { _, err := verify.HashFile(fx + "/firmware"); return err }, "is a directory"},
		{"missing blob", func() error { _, err := verify.HashFile(dir + "/nope"); return err }, "no such file"},
		{"symlink as blob", func() error {
			link := filepath.Join(dir, "link")
			if err := symlink(fx+"/firmware/infusion-pump-2.4.0.bin", link); err != nil {
				return err
			}
			_, err := verify.HashFile(link)
			return err
		}, "is a symbolic link"},
		{"private key given as public key", func() error { _, err := verify.LoadPublicKey(fx + "/keys/acme-infusion.key"); return err }, "not a PEM or DER public key"},
		{"firmware given as key", func() error { _, err := verify.LoadPublicKey(fx + "/firmware/infusion-pump-2.4.0.bin"); return err }, "larger than the 65536 byte limit"},
		{"bad digest", func() error { _, err := verify.ParseDigest("sha256:abc"); return err }, "want sha256:<64 hex digits>"},
		{"garbage trusted root", func() error { _, err := verify.LoadTrustedRoot(fx + "/keys/acme-infusion.pub"); return err }, "trusted root"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			var ie *verify.InputError
			if !errors.As(err, &ie) || ie.Code != verify.ReasonBadInput {
				t.Fatalf("want InputError bad-input, got %T %v", err, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestImageFixtures(t *testing.T) {
	for _, dir := range []string{fx, regenerated(t)} {
		key, err := verify.LoadPublicKey(filepath.Join(dir, "keys/acme-infusion.pub"))
		if err != nil {
			t.Fatal(err)
		}
		tr, err := verify.LoadTrustedRoot(filepath.Join(dir, "keyless/trusted_root.json"))
		if err != nil {
			t.Fatal(err)
		}
		keyed := &verify.Policy{Keys: []verify.Key{key}}
		keyless := &verify.Policy{TrustedRoot: tr, Identities: []verify.Identity{{Subject: fixtures.KeylessIdentity, Issuer: fixtures.KeylessIssuer}}}
		for _, tc := range []struct {
			ref  string
			pol  *verify.Policy
			want []verify.Reason
		}{
			{"oci-dir:" + dir + "/oci/pump-agent", keyed, nil},
			{"oci-dir:" + dir + "/oci/pump-agent:2.4.0", keyed, nil},
			{"oci-archive:" + dir + "/oci/pump-agent.tar", keyed, nil},
			{"oci-dir:" + dir + "/oci/pump-agent-keyless", keyless, nil},
			{"oci-dir:" + dir + "/oci/pump-agent-wrongkey", keyed, []verify.Reason{verify.ReasonUntrustedSigner}},
			{"oci-dir:" + dir + "/oci/pump-agent-unsigned", keyed, []verify.Reason{verify.ReasonNoSignature}},
			{"oci-dir:" + dir + "/oci/pump-agent-keyless", keyed, []verify.Reason{verify.ReasonUntrustedSigner}},
		} {
			t.Run(tc.ref, func(t *testing.T) {
				res, err := verify.Image(t.Context(), tc.ref, tc.pol)
				if err != nil {
					t.Fatal(err)
				}
				checkVerdict(t, fixtureCase{want: tc.want}, res)
			})
		}
	}
}

var regenDir string

// regenerated returns a directory of freshly generated fixtures, made once
// per test binary.
func regenerated(t *testing.T) string {
	t.Helper()
	if regenDir == "" {
		dir, err := os.MkdirTemp("", "wardgate-fixtures-")
		if err != nil {
			t.Fatal(err)
		}
		if err := fixtures.Generate(dir, fixtures.DefaultSeed); err != nil {
			t.Fatal(err)
		}
		regenDir = dir
	}
	return regenDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if regenDir != "" {
		os.RemoveAll(regenDir)
	}
	os.Exit(code)
}
