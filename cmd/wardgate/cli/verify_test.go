package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestVerifyBlobExitCodes(t *testing.T) {
	pump := fx + "/firmware/infusion-pump-2.4.0.bin"
	key := fx + "/keys/acme-infusion.pub"
	cases := []struct {
		name   string
		args   []string
		code   int
		stdout string // prefix of the first line
		stderr string // substring
	}{
		{"verified", []string{"verify", "blob", pump, "--key", key, "--signature", fx + "/sig/infusion-pump-2.4.0.bin.sig"}, 0, "VERIFIED  verified " + pump, ""},
		{"tampered", []string{"verify", "blob", fx + "/tampered/infusion-pump-2.4.0-flipped.bin", "--key", key, "--bundle", fx + "/sig/infusion-pump-2.4.0.bin.sigstore.json"}, 1, "FAILED    [digest-mismatch] ", ""},
		{"no signature", []string{"verify", "blob", pump, "--key", key}, 1, "FAILED    [no-signature] no signature found for " + pump, ""},
		{"directory", []string{"verify", "blob", fx + "/firmware", "--key", key, "--signature", fx + "/sig/infusion-pump-2.4.0.bin.sig"}, 2, "", "is a directory, not a file"},
		{"missing signature file", []string{"verify", "blob", pump, "--key", key, "--signature", "nope.sig"}, 2, "", "nope.sig: no such file"},
		{"no trusted signer", []string{"verify", "blob", pump, "--signature", fx + "/sig/infusion-pump-2.4.0.bin.sig"}, 2, "", "no trusted signer"},
		{"keyless without root", []string{"verify", "blob", pump, "--certificate-identity", "a@b", "--certificate-oidc-issuer", "https://i", "--bundle", fx + "/keyless/infusion-pump-2.4.0.bin.v0.3.sigstore.json"}, 2, "", "keyless verification needs --trusted-root"},
		{"identity without issuer", []string{"verify", "blob", pump, "--certificate-identity", "a@b"}, 2, "", "--certificate-identity given without --certificate-oidc-issuer"},
		{"threshold too high", []string{"verify", "blob", pump, "--key", key, "--threshold", "2"}, 2, "", "--threshold 2: must be between 1 and the number of trusted signers (1)"},
		{"bad output", []string{"verify", "blob", pump, "--key", key, "-o", "yaml"}, 2, "", "-o yaml: want text or json"},
		{"unknown flag", []string{"verify", "blob", pump, "--kee", key}, 2, "", "unknown flag: --kee"},
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
		})
	}
}

func TestVerifyBlobJSONGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"verify-keyless-json", []string{"verify", "blob", fx + "/firmware/infusion-pump-2.4.0.bin", "-o", "json",
			"--certificate-identity", "release@acme-infusion.example", "--certificate-oidc-issuer", "https://accounts.acme-infusion.example",
			"--trusted-root", fx + "/keyless/trusted_root.json", "--bundle", fx + "/keyless/infusion-pump-2.4.0.bin.v0.1.sigstore.json"}, 0},
		{"verify-threshold-json", []string{"verify", "blob", fx + "/firmware/infusion-pump-2.4.0.bin", "-o", "json", "--threshold", "2",
			"--key", fx + "/keys/acme-infusion.pub", "--key", fx + "/keys/acme-infusion-qa.pub",
			"--signature", fx + "/sig/infusion-pump-2.4.0.bin.sig", "--signature", fx + "/tampered/infusion-pump-2.4.0.bin.wrongkey.sig"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(t, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d: %s", code, tc.code, errOut)
			}
			var v map[string]any
			if err := json.Unmarshal([]byte(out), &v); err != nil {
				t.Fatalf("not JSON: %v", err)
			}
			golden(t, tc.name, out)
		})
	}
}

func TestVerifyBatch(t *testing.T) {
	dir := t.TempDir()
	abs, err := filepath.Abs(fx)
	if err != nil {
		t.Fatal(err)
	}
	list := strings.Join([]string{
		"# blob signature",
		abs + "/firmware/infusion-pump-2.4.0.bin " + abs + "/sig/infusion-pump-2.4.0.bin.sig",
		abs + "/firmware/infusion-pump-2.3.0.bin " + abs + "/sig/infusion-pump-2.3.0.bin.sigstore.json",
		"",
		abs + "/tampered/infusion-pump-2.4.0-flipped.bin " + abs + "/sig/infusion-pump-2.4.0.bin.sigstore.json",
	}, "\n")
	path := filepath.Join(dir, "list")
	if err := os.WriteFile(path, []byte(list), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, "verify", "blob", "--batch", path, "--key", fx+"/keys/acme-infusion.pub", "-o", "json")
	if code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 JSON lines, got %d: %s", len(lines), out)
	}
	wantLine := []int{2, 3, 5}
	wantOK := []bool{true, true, false}
	for i, l := range lines {
		var r struct {
			Line   int `json:"line"`
			Result struct {
				Verified bool     `json:"verified"`
				Reasons  []string `json:"reasons"`
			} `json:"result"`
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		if r.Line != wantLine[i] || r.Result.Verified != wantOK[i] {
			t.Fatalf("line %d: %+v", i, r)
		}
	}
	// All good: exit 0.
	if err := os.WriteFile(path, []byte(strings.Join(strings.Split(list, "\n")[:3], "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := run(t, "verify", "blob", "--batch", path, "--key", fx+"/keys/acme-infusion.pub"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	// A malformed line is exit 2, naming the line.
	if err := os.WriteFile(path, []byte("only-one-field\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = run(t, "verify", "blob", "--batch", path, "--key", fx+"/keys/acme-infusion.pub")
	if code != 2 || !strings.Contains(errOut, path+":1: want \"BLOB_PATH SIGNATURE_OR_BUNDLE_PATH\"") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := run(t, "version", "-o", "json")
	if code != 0 {
		t.Fatal(code)
	}
	var v struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.Version == "" {
		t.Fatalf("%v %q", err, out)
	}
}
