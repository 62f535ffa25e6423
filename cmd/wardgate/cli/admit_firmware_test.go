package cli_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/wardgate/wardgate/internal/fwtest"
)

// releaseKey is a fresh release signing key whose public key is
// DIR/release.pub, the key firmwareTrust trusts.
func releaseKey(t *testing.T, dir string) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	fwtest.Write(t, filepath.Join(dir, "release.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
	return key
}

// firmwareTrust writes DIR/NAME, a trust configuration (extra added at the
// top level) in which vendor acme's product pump, for infusion pumps, is
// signed by DIR/release.pub and needs no SBOM.
func firmwareTrust(t *testing.T, dir, name, extra string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	fwtest.Write(t, p, []byte("version: 1\n"+extra+"sbom:\n  required: false\nvendors:\n  acme:\n    products:\n      pump:\n        device_classes: [infusion-pump]\n        authorities:\n          keys:\n            - path: release.pub\n"), 0o644)
	return p
}

// TestAdmitTrojanedExecutable: the next release of a squashfs firmware has
// the same package versions but a different bin/busybox (the 3CX pattern).
// admit reports executable-changed-same-version from the file diff against
// the admitted release: a warning by default, a deny (beside syft's
// component-hash-changed of the file) when the trust configuration
// enforces it.
func TestAdmitTrojanedExecutable(t *testing.T) {
	fwtest.Need(t, "mksquashfs")
	dir := t.TempDir()
	key := releaseKey(t, dir)
	trustYAML := func(name, extra string) string { return firmwareTrust(t, dir, name, extra) }
	warnTrust := trustYAML("trust.yaml", "")
	enforceTrust := trustYAML("trust-enforce.yaml", "rules:\n  executable-changed-same-version: enforce\n")
	release := func(root, version string) []string {
		img := fwtest.Squashfs(t, root, "gzip")
		b, err := os.ReadFile(img)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		sig, err := ecdsa.SignASN1(rand.Reader, key, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		fwtest.Write(t, img+".sig", []byte(base64.StdEncoding.EncodeToString(sig)), 0o644)
		return []string{"admit", img, "--vendor", "acme", "--product", "pump", "--version", version, "--signature", img + ".sig", "--no-log", "-o", "json"}
	}
	state := t.TempDir()
	root := fwtest.Rootfs(t, true)
	code, r := admit(t, state, append(release(root, "1.0.0"), "--config", warnTrust))
	if code != 0 || !r.Allow {
		t.Fatalf("release 1.0.0: exit %d, %+v", code, r)
	}
	// 1.0.1: the same packages, a different executable inside busybox.
	false_, err := os.ReadFile("/bin/false")
	if err != nil {
		t.Skipf("no /bin/false: %v", err)
	}
	fwtest.Write(t, filepath.Join(root, "bin/busybox"), false_, 0o755)
	next := release(root, "1.0.1")
	code, out, errOut := run(t, append(next, "--config", warnTrust, "--state", state)...)
	var full struct {
		Allow    bool `json:"allow"`
		Decision struct {
			Warnings []struct{ Code string } `json:"warnings"`
		} `json:"decision"`
		Evidence struct {
			Files *struct {
				FromVersion string         `json:"fromVersion"`
				Summary     map[string]int `json:"summary"`
				Changes     []struct {
					Code, Path, Package, Version string
				} `json:"changes"`
			} `json:"files"`
		} `json:"evidence"`
	}
	if err := json.Unmarshal([]byte(out), &full); err != nil {
		t.Fatalf("exit %d: %v\n%s\n%s", code, err, out, errOut)
	}
	f := full.Evidence.Files
	if f == nil || f.FromVersion != "1.0.0" || f.Summary["executable-changed-same-version"] != 1 || len(f.Changes) != 1 ||
		f.Changes[0].Path != "bin/busybox" || f.Changes[0].Package != "busybox" || f.Changes[0].Version != "1.36.1-r29" {
		t.Fatalf("evidence files %+v", f)
	}
	// syft's SBOM lists bin/busybox as a file component too, whose hash
	// changed: component-hash-changed denies on its own.
	if !slices.ContainsFunc(full.Decision.Warnings, func(w struct{ Code string }) bool { return w.Code == "executable-changed-same-version" }) {
		t.Fatalf("warn by default: exit %d, allow %v, warnings %+v\n%s", code, full.Allow, full.Decision.Warnings, out)
	}
	// Enforced: the same release is denied.
	code, r = admit(t, state, append(next, "--config", enforceTrust))
	if code != 1 || r.Allow || !slices.Equal(r.codes(), []string{"component-hash-changed", "executable-changed-same-version"}) {
		t.Fatalf("enforced: exit %d, codes %v, error %q", code, r.codes(), r.Error)
	}
}
