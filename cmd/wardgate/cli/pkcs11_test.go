package cli_test

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardgate/wardgate/attest"
)

// softHSMModule is Debian's softhsm2 PKCS#11 module (.ci/run installs it).
const softHSMModule = "/usr/lib/softhsm/libsofthsm2.so"

// softHSMToken initialises a fresh SoftHSM2 token in a temporary directory
// and returns the pkcs11: URI of a key named service in it.
func softHSMToken(t *testing.T) string {
	t.Helper()
	if !attest.PKCS11 {
		t.Skip("built without -tags pkcs11key (make test sets it): no PKCS#11 support to test")
	}
	util, err := exec.LookPath("softhsm2-util")
	if err != nil {
		t.Skip("softhsm2-util not found: apt-get install -y softhsm2 (.ci/run does)")
	}
	if _, err := os.Stat(softHSMModule); err != nil {
		t.Skipf("SoftHSM2 module: %v", err)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.MkdirAll(filepath.Join(dir, "tokens"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+filepath.Join(dir, "tokens")+"\nobjectstore.backend = file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	out, err := exec.Command(util, "--init-token", "--free", "--label", "wardgate", "--pin", "4321", "--so-pin", "8765").CombinedOutput()
	if err != nil {
		t.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	return "pkcs11:token=wardgate;object=service?module-path=" + softHSMModule + "&pin-value=4321"
}

// TestPKCS11ServiceKey: a service key generated in a SoftHSM2 token signs
// the verdicts of admit; the exported evidence pack verifies with the
// public key keygen wrote, the verdict verifies with wardgate verify
// attestation given the pkcs11: URI as --key, and the real cosign accepts
// the verdict envelope with that public key.
func TestPKCS11ServiceKey(t *testing.T) {
	uri := softHSMToken(t)
	dir, state := t.TempDir(), t.TempDir()
	prefix := filepath.Join(dir, "service")
	code, out, errOut := run(t, "attest", "keygen", "--key", uri, "--out", prefix)
	if code != 0 || out != "created the key "+uri+" and wrote its public key "+prefix+".pub\n" {
		t.Fatalf("keygen: %d %q %s", code, out, errOut)
	}
	// A second key under the same label is refused.
	if code, _, errOut := run(t, "attest", "keygen", "--key", uri, "--out", prefix+"2"); code != 2 || !strings.Contains(errOut, "already holds a key with this object label") {
		t.Fatalf("second keygen: %d %s", code, errOut)
	}
	pub := prefix + ".pub"
	fw := fx + "/firmware/infusion-pump-2.4.0.bin"
	args := []string{"admit", fw, "--config", "../../../fixtures/trust.yaml",
		"--vendor", "acme-infusion", "--product", "infusion-pump", "--version", "2.4.0",
		"--signature", fx + "/sig/infusion-pump-2.4.0.bin.sig",
		"--bundle", fx + "/keyless/infusion-pump-2.4.0.bin.v0.3.sigstore.json",
		"--sbom", fx + "/sbom/infusion-pump-2.4.0.cdx.json", "--state", state, "--signing-key", uri, "-o", "json"}
	code, out, errOut = run(t, args...)
	if code != 0 {
		t.Fatalf("admit: %d %s %s", code, out, errOut)
	}
	var ao struct {
		Allow    bool `json:"allow"`
		LogEntry *struct {
			Index int `json:"index"`
		} `json:"logEntry"`
	}
	if err := json.Unmarshal([]byte(out), &ao); err != nil || !ao.Allow || ao.LogEntry == nil {
		t.Fatalf("admit output: %v %s", err, out)
	}
	pack := filepath.Join(dir, "pack")
	if code, _, errOut := run(t, "attest", "export", "--state", state, "--signing-key", uri, "--out", pack); code != 0 {
		t.Fatalf("export: %s", errOut)
	}
	code, out, errOut = run(t, "attest", "verify", pack, "--key", pub)
	if code != 0 || !strings.HasPrefix(out, "INTACT    "+pack+": 1 entries") {
		t.Fatalf("attest verify: %d %q %s", code, out, errOut)
	}
	// The verdict envelope, as logged.
	env := filepath.Join(dir, "verdict.intoto.json")
	if err := os.WriteFile(env, firstEnvelope(t, pack), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = run(t, "verify", "attestation", fw, "--bundle", env, "--key", uri, "--type", attest.VSAPredicateType)
	if code != 0 || !strings.HasPrefix(out, "VERIFIED  ") {
		t.Fatalf("verify attestation with the pkcs11: key: %d %q %s", code, out, errOut)
	}
	cosign := cosignBinary(t)
	code, cout := runCosign(t, cosign, "verify-blob-attestation", "--key", pub, "--signature", env, "--type", attest.VSAPredicateType, "--insecure-ignore-tlog", fw)
	if code != 0 {
		t.Fatalf("cosign verify-blob-attestation: exit %d\n%s", code, cout)
	}
	// And cosign refuses it for another artifact.
	if code, cout := runCosign(t, cosign, "verify-blob-attestation", "--key", pub, "--signature", env, "--type", attest.VSAPredicateType, "--insecure-ignore-tlog", fx+"/firmware/infusion-pump-2.3.0.bin"); code == 0 {
		t.Fatalf("cosign accepted the verdict for another artifact:\n%s", cout)
	}
}

// firstEnvelope reads the first logged envelope of an evidence pack.
func firstEnvelope(t *testing.T, pack string) []byte {
	t.Helper()
	f, err := os.Open(filepath.Join(pack, "index.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	if !sc.Scan() {
		t.Fatal("empty index.jsonl")
	}
	var line attest.IndexLine
	if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	env, err := base64.StdEncoding.DecodeString(line.Envelope)
	if err != nil {
		t.Fatal(err)
	}
	return env
}
