package cli_test

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/dsse"
)

// The findings of issue 12, each through the command line; each of these
// failed on main before the fix.

// hvacConfig trusts the buildctl key for the HVAC controller, without TUF,
// with max_metadata_age.
func hvacConfig(t *testing.T) string {
	t.Helper()
	key, err := filepath.Abs(fx + "/keys/buildctl.pub")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "trust.yaml")
	body := "version: 1\nmax_metadata_age: 180d\nsbom:\n  required: true\n  drift_allowance: {missing: 3}\nvendors:\n  buildctl:\n    products:\n      hvac-controller:\n" +
		"        device_classes: [hvac-controller]\n        authorities:\n          keys:\n            - path: " + key + "\n"
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func hvacArgs(config string, extra ...string) []string {
	return append([]string{"admit", fx + "/firmware/hvac-controller-1.1.0.bin", "--config", config, "--vendor", "buildctl", "--product", "hvac-controller",
		"--version", "1.1.0", "--signature", fx + "/sig/hvac-controller-1.1.0.bin.sig", "--no-log"}, extra...)
}

// Finding 2: an opaque firmware with no vendor SBOM met sbom.required with
// a scan that found nothing. Finding 3: max_metadata_age did nothing for a
// key signature without a trusted time.
func TestFindingEmptyScanAndUntimedSignature(t *testing.T) {
	config := hvacConfig(t)
	code, r := admitTUF(t, t.TempDir(), hvacArgs(config)...)
	if code != 1 || !slices.Equal(r.codes(), []string{"metadata-untimed", "sbom-missing"}) {
		t.Fatalf("exit %d %v", code, r.Decision.Violations)
	}
	for _, v := range r.Decision.Violations {
		if v.Code == "sbom-missing" && !strings.Contains(v.Message, "scanning it found no components") {
			t.Fatalf("sbom-missing message %q", v.Message)
		}
	}
	// With the vendor's SBOM, only the missing trusted time is left.
	code, r = admitTUF(t, t.TempDir(), hvacArgs(config, "--sbom", fx+"/sbom/hvac-controller-1.1.0.cdx.json")...)
	if code != 1 || !slices.Equal(r.codes(), []string{"metadata-untimed"}) {
		t.Fatalf("with SBOM: exit %d %v", code, r.Decision.Violations)
	}
}

// Finding 4: artifact.expectedDigest and metadata.expires, read by the
// default rules, now come from the vendor's TUF targets and fire through
// admit (the expected-digest rule of the signature rule set, the expiry
// rule of the metadata rule set).
func TestFindingExpectedDigestAndExpiresFire(t *testing.T) {
	state := t.TempDir()
	other := filepath.Join(t.TempDir(), "mri-console-7.2.0.bin")
	b, err := os.ReadFile(fx + "/firmware/mri-console-7.1.0.bin")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, b, 0o644); err != nil {
		t.Fatal(err)
	}
	args := mriArgs("../../../fixtures/trust.yaml", "7.2.0", "--no-scan")
	args[1] = other // 7.1.0's bytes under 7.2.0's name
	code, out, _ := run(t, append(args, "--state", state, "-o", "json")...)
	if code != 1 || !strings.Contains(out, `"code":"digest-mismatch","rule":"signature"`) || !strings.Contains(out, "but the release metadata names sha256:") {
		t.Fatalf("expected digest: exit %d %s", code, out)
	}
	code, out, _ = run(t, append(mriArgs("../../../fixtures/trust.yaml", "7.2.0", "--no-scan"), "--state", t.TempDir(), "-o", "json", "--evaluation-time", "2040-01-01T00:00:00Z")...)
	if code != 1 || !strings.Contains(out, `"code":"metadata-expired","rule":"metadata"`) || !strings.Contains(out, "the release metadata of") {
		t.Fatalf("expires: exit %d %s", code, out)
	}
}

// Finding 7: `sbom generate registry:HOST/REPO:TAG` panicked in the cache.
func TestFindingSBOMGenerateRegistryTag(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	layer, err := crane.Layer(map[string][]byte{"etc/os-release": []byte("ID=alpine\nVERSION_ID=3.19.1\n")})
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	tag := strings.TrimPrefix(srv.URL, "http://") + "/acme/pump-agent:2.4.0"
	ref, err := name.ParseReference(tag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, "sbom", "generate", "registry:"+tag, "--cache-dir", t.TempDir())
	if code != 0 || !strings.Contains(out, "CycloneDX") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
}

// Finding 8: a short name went to index.docker.io.
func TestFindingShortImageName(t *testing.T) {
	code, _, errOut := run(t, "verify", "image", "oci/pump-agent", "--key", fx+"/keys/acme-infusion.pub")
	if code != 2 || !strings.Contains(errOut, `image reference "oci/pump-agent" names no registry`) {
		t.Fatalf("exit %d %s", code, errOut)
	}
	code, _, errOut = run(t, "sbom", "generate", "registry:oci/pump-agent", "--no-cache")
	if code != 2 || !strings.Contains(errOut, `"registry:oci/pump-agent" names no registry`) {
		t.Fatalf("sbom: exit %d %s", code, errOut)
	}
}

// Finding 9: with $WARDGATE_KEY_PASSWORD unset the service key was
// created with an empty password, silently, and setting the variable later
// failed with an opaque decryption error.
func TestFindingServiceKeyPassword(t *testing.T) {
	args := func(state string, extra ...string) []string {
		a := slices.DeleteFunc(pumpArgs("2.4.0", "--no-scan"), func(s string) bool { return s == "--no-log" })
		return append(append(a, "--state", state), extra...)
	}
	state := t.TempDir()
	t.Setenv("WARDGATE_KEY_PASSWORD", "")
	run := func(t *testing.T, args ...string) (int, string, string) {
		code, out, errOut := run(t, args...)
		return code, out, out + errOut // admit -o json reports its error in the output
	}
	code, _, errOut := run(t, args(state)...)
	key := filepath.Join(state, "signing.key")
	if code != 2 || !strings.Contains(errOut, "the service signing key "+key+" does not exist, and $WARDGATE_KEY_PASSWORD is not set") {
		t.Fatalf("no password: exit %d %s", code, errOut)
	}
	if _, err := os.Stat(key); !os.IsNotExist(err) {
		t.Fatalf("key created anyway: %v", err)
	}
	code, _, errOut = run(t, args(state, "--unencrypted-key")...)
	if code != 0 || !strings.Contains(errOut, "created the service signing key "+key+" WITHOUT a password (--unencrypted-key)") {
		t.Fatalf("--unencrypted-key: exit %d %s", code, errOut)
	}
	t.Setenv("WARDGATE_KEY_PASSWORD", "set later")
	code, _, errOut = run(t, args(state)...)
	if code != 2 || !strings.Contains(errOut, "signing key "+key+" has no password, but $WARDGATE_KEY_PASSWORD is set") {
		t.Fatalf("password set later: exit %d %s", code, errOut)
	}
	// An encrypted key and the wrong password: the file is named.
	enc := t.TempDir()
	t.Setenv("WARDGATE_KEY_PASSWORD", "right")
	if code, _, errOut := run(t, args(enc)...); code != 0 || !strings.Contains(errOut, "encrypted with $WARDGATE_KEY_PASSWORD") {
		t.Fatalf("encrypted: exit %d %s", code, errOut)
	}
	t.Setenv("WARDGATE_KEY_PASSWORD", "wrong")
	code, _, errOut = run(t, args(enc)...)
	if code != 2 || !strings.Contains(errOut, "signing key "+filepath.Join(enc, "signing.key")+" does not decrypt with the password in $WARDGATE_KEY_PASSWORD") {
		t.Fatalf("wrong password: exit %d %s", code, errOut)
	}
	// serve refuses the same way.
	t.Setenv("WARDGATE_KEY_PASSWORD", "")
	serveState := t.TempDir()
	code, _, errOut = run(t, "serve", "--config", "../../../fixtures/trust.yaml", "--state", serveState, "--listen", "127.0.0.1:0")
	if code != 2 || !strings.Contains(errOut, "does not exist, and $WARDGATE_KEY_PASSWORD is not set") {
		t.Fatalf("serve: exit %d %s", code, errOut)
	}
}

// Finding 4, provenance: the evidence's provenance comes from a verified
// SLSA provenance attestation given with the release (signed by one of the
// product's authorities, bound to the artifact's digest).
func TestFindingProvenanceFromAttestation(t *testing.T) {
	fw, err := os.ReadFile(fx + "/firmware/infusion-pump-2.4.0.bin")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(fw)
	st, err := json.Marshal(map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       []any{map[string]any{"name": "infusion-pump-2.4.0.bin", "digest": map[string]string{"sha256": hex.EncodeToString(sum[:])}}},
		"predicateType": "https://slsa.dev/provenance/v1",
		"predicate": map[string]any{
			"buildDefinition": map[string]any{
				"buildType":          "https://acme-infusion.example/firmware-build/v1",
				"externalParameters": map[string]any{"ref": "refs/tags/v2.4.0"},
				"resolvedDependencies": []any{map[string]any{"uri": "git+https://git.acme-infusion.example/pump@refs/tags/v2.4.0",
					"digest": map[string]string{"gitCommit": "3f2a9c1e5b7d4f6a8c0e2b4d6f8a0c2e4b6d8f0a"}}},
			},
			"runDetails": map[string]any{"builder": map[string]any{"id": "https://ci.acme-infusion.example/builders/firmware"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	sign := func(keyFile string) string {
		t.Helper()
		pemKey, err := os.ReadFile(keyFile)
		if err != nil {
			t.Fatal(err)
		}
		priv, err := cryptoutils.UnmarshalPEMToPrivateKey(pemKey, cryptoutils.SkipPassword)
		if err != nil {
			t.Fatal(err)
		}
		sv, err := signature.LoadSigner(priv, crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		env, err := dsse.WrapSigner(sv, "application/vnd.in-toto+json").SignMessage(bytes.NewReader(st))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), "infusion-pump-2.4.0.provenance.json")
		if err := os.WriteFile(p, env, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	att := sign(fx + "/keys/acme-infusion.key")
	code, out, errOut := run(t, append(pumpArgs("2.4.0", "--no-scan", "--signature", att), "--state", t.TempDir())...)
	var r struct {
		Allow    bool `json:"allow"`
		Evidence struct {
			Provenance map[string]any `json:"provenance"`
		} `json:"evidence"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v: %s %s", err, out, errOut)
	}
	want := map[string]any{"predicateType": "https://slsa.dev/provenance/v1", "verified": true, "builderId": "https://ci.acme-infusion.example/builders/firmware",
		"buildType": "https://acme-infusion.example/firmware-build/v1", "sourceUri": "git+https://git.acme-infusion.example/pump@refs/tags/v2.4.0",
		"sourceDigest": "gitCommit:3f2a9c1e5b7d4f6a8c0e2b4d6f8a0c2e4b6d8f0a"}
	if code != 0 || !r.Allow || !reflect.DeepEqual(r.Evidence.Provenance, want) {
		t.Fatalf("exit %d, provenance %v", code, r.Evidence.Provenance)
	}
	// Signed by a key nobody trusts for the product: no provenance.
	code, out, _ = run(t, append(pumpArgs("2.4.0", "--no-scan", "--signature", sign(fx+"/keys/rogue.key")), "--state", t.TempDir())...)
	r.Evidence.Provenance = nil
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Evidence.Provenance != nil {
		t.Fatalf("exit %d, provenance %v, %v", code, r.Evidence.Provenance, err)
	}
}

// pumpKeyLine is the line of fixtureTrust's text that trusts the pump's
// release key ($1).
var pumpKeyLine = regexp.MustCompile(`(?m)^(            - path: .*/keys/acme-infusion\.pub\n)`)

// fixtureTrust is fixtures/trust.yaml written to a temporary directory
// (its paths made absolute), after edit, which must change it: the one
// way tests write a modified trust configuration.
func fixtureTrust(t *testing.T, edit func(string) string) string {
	t.Helper()
	b, err := os.ReadFile("../../../fixtures/trust.yaml")
	if err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(fx)
	if err != nil {
		t.Fatal(err)
	}
	body := strings.ReplaceAll(string(b), " testdata/", " "+abs+"/")
	if edited := edit(body); edited != body {
		body = edited
	} else {
		t.Fatal("fixtureTrust: the edit changed nothing")
	}
	p := filepath.Join(t.TempDir(), "trust.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Finding 1: the version of a release was an unsigned claim the ledger
// checked against nothing: the pump firmware admitted as 9.9.9, then the
// product's other releases were admitted below it, and the same file under
// another version. Versions now never go back (rollback, naming the
// highest admitted release), a file is one version (version-conflict), and
// a downgrade the trust configuration allows is admitted with its reason
// in the decision and in the signed verdict.
func TestFindingVersionsNeverGoBack(t *testing.T) {
	state := t.TempDir()
	t.Setenv("WARDGATE_KEY_PASSWORD", "pw")
	logged := func(args []string) []string {
		return slices.DeleteFunc(args, func(s string) bool { return s == "--no-log" })
	}
	// The 2.4.0 file claimed as 9.9.9: signed by both authorities, so
	// admitted; nothing but the ledger can know better without TUF.
	if code, r := admit(t, state, logged(replace(pumpArgs("2.4.0", "--no-scan"), "--version", "9.9.9"))); code != 0 {
		t.Fatalf("9.9.9: exit %d %+v", code, r)
	}
	code, r := admit(t, state, logged(pumpArgs("2.4.0", "--no-scan")))
	if code != 1 || !slices.Equal(r.codes(), []string{"rollback", "version-conflict"}) {
		t.Fatalf("2.4.0 after 9.9.9: exit %d %+v", code, r.Decision.Violations)
	}
	for _, v := range r.Decision.Violations {
		if v.Code == "rollback" && !strings.HasPrefix(v.Message, "version 2.4.0 is older than 9.9.9, the highest release of acme-infusion/infusion-pump admitted (on ") {
			t.Fatalf("rollback message %q", v.Message)
		}
		if v.Code == "version-conflict" && !strings.Contains(v.Message, "as version 9.9.9 of acme-infusion/infusion-pump, and is now presented as version 2.4.0") {
			t.Fatalf("version-conflict message %q", v.Message)
		}
	}
	// Another file below the highest: rollback alone.
	code, r = admit(t, state, logged(pumpArgs("2.3.0", "--no-scan")))
	if code != 1 || !slices.Equal(r.codes(), []string{"rollback"}) || !strings.Contains(r.Decision.Violations[0].Message, "older than 9.9.9") {
		t.Fatalf("2.3.0 after 9.9.9: exit %d %+v", code, r.Decision.Violations)
	}
	// The trust configuration allows going back to 2.3.0, with a reason.
	reason := "9.9.9 was a mislabelled 2.4.0 (CI ticket OPS-4411); back to the last good release"
	config := fixtureTrust(t, func(s string) string {
		return strings.Replace(s, "        device_classes: [infusion-pump]\n", "        device_classes: [infusion-pump]\n        allow_downgrade:\n          - version: 2.3.0\n            reason: \""+reason+"\"\n", 1)
	})
	code, out, errOut := run(t, append(logged(replace(pumpArgs("2.3.0", "--no-scan"), "--config", config)), "--state", state)...)
	var ok struct {
		Allow    bool `json:"allow"`
		Decision struct {
			Warnings []struct{ Code, Message string } `json:"warnings"`
		} `json:"decision"`
	}
	if err := json.Unmarshal([]byte(out), &ok); err != nil {
		t.Fatalf("%v: %s %s", err, out, errOut)
	}
	// (downgraded-component warns too: the SBOM diff against 9.9.9.)
	wantMsg := "; downgrade allowed by the trust configuration: " + reason
	hasReason := func(ws []struct{ Code, Message string }) bool {
		return slices.ContainsFunc(ws, func(w struct{ Code, Message string }) bool {
			return w.Code == "rollback" && strings.HasPrefix(w.Message, "version 2.3.0 is older than 9.9.9") && strings.HasSuffix(w.Message, wantMsg)
		})
	}
	if code != 0 || !ok.Allow || !hasReason(ok.Decision.Warnings) {
		t.Fatalf("allowed downgrade: exit %d %+v", code, ok)
	}
	// The signed verdict carries the reason.
	code, out, errOut = run(t, "attest", "log", "--state", state, "-o", "json")
	var lg struct {
		Entries []struct {
			Version  string                           `json:"version"`
			Result   string                           `json:"result"`
			Warnings []struct{ Code, Message string } `json:"warnings"`
		} `json:"entries"`
	}
	if err := json.Unmarshal([]byte(out), &lg); err != nil || code != 0 {
		t.Fatalf("attest log: exit %d %v %s", code, err, errOut)
	}
	last := lg.Entries[len(lg.Entries)-1]
	if len(lg.Entries) != 4 || last.Version != "2.3.0" || last.Result != "PASSED" || !hasReason(last.Warnings) {
		t.Fatalf("log entries = %+v", lg.Entries)
	}
}

// Finding 6: admit --evaluation-time 2020-01-01 appended a log entry dated
// 2020 after entries dated now, and attest export --since left it out. The
// log dates entries itself now; the evaluation time is the verdict's.
func TestFindingEvaluationTimeDoesNotDateTheLog(t *testing.T) {
	state := t.TempDir()
	t.Setenv("WARDGATE_KEY_PASSWORD", "pw")
	args := func(extra ...string) []string {
		a := slices.DeleteFunc(pumpArgs("2.4.0", "--no-scan"), func(s string) bool { return s == "--no-log" })
		return append(a, extra...)
	}
	start := time.Now().UTC().Truncate(time.Second)
	if code, r := admit(t, state, args()); code != 0 {
		t.Fatalf("admit: exit %d %+v", code, r)
	}
	// Evaluated as of 2020, the signature is from the future: denied, and
	// logged all the same.
	if code, r := admit(t, state, args("--evaluation-time", "2020-01-01T00:00:00Z")); code != 1 || !slices.Equal(r.codes(), []string{"metadata-future"}) {
		t.Fatalf("admit as of 2020: exit %d %+v", code, r.Decision.Violations)
	}
	code, out, errOut := run(t, "attest", "log", "--state", state, "-o", "json")
	var lg struct {
		Entries []struct {
			Time string `json:"time"`
		} `json:"entries"`
	}
	if err := json.Unmarshal([]byte(out), &lg); err != nil || code != 0 || len(lg.Entries) != 2 {
		t.Fatalf("attest log: exit %d %v %s %s", code, err, out, errOut)
	}
	for i, e := range lg.Entries {
		at, err := time.Parse(time.RFC3339, e.Time)
		if err != nil || at.Before(start) {
			t.Fatalf("entry %d dated %s, before the test started (%s): %v", i, e.Time, start, err)
		}
	}
	if lg.Entries[1].Time < lg.Entries[0].Time {
		t.Fatalf("log times go backwards: %+v", lg.Entries)
	}
	pack := filepath.Join(t.TempDir(), "pack.tar.gz")
	code, out, errOut = run(t, "attest", "export", "--state", state, "--out", pack, "--since", start.Format(time.RFC3339))
	if code != 0 || !strings.Contains(out, "2 of 2 entries") {
		t.Fatalf("export --since: exit %d %s %s", code, out, errOut)
	}
}
