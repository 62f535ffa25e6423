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
		{"verified", []string{"verify", "blob", pump, "--key", key, "--signature", fx + "/sig/infusion-pump-2.4.0.bin.sig"}, 0, "VERIFIED  " + pump + " (sha256:1bb9998cc1c40e0f1bfd1a8a4a0d357548b295e01cb1e5fe91b541a676f1d187): 1 of 1 required trusted signers\n", ""},
		{"tampered", []string{"verify", "blob", fx + "/tampered/infusion-pump-2.4.0-flipped.bin", "--key", key, "--bundle", fx + "/sig/infusion-pump-2.4.0.bin.sigstore.json"}, 1, "FAILED    [digest-mismatch] ", ""},
		{"no signature", []string{"verify", "blob", pump, "--key", key}, 1, "FAILED    [no-signature] no signature found for " + pump, ""},
		{"directory", []string{"verify", "blob", fx + "/firmware", "--key", key, "--signature", fx + "/sig/infusion-pump-2.4.0.bin.sig"}, 2, "", "is a directory, not a file"},
		{"missing signature file", []string{"verify", "blob", pump, "--key", key, "--signature", "nope.sig"}, 2, "", "nope.sig: no such file"},
		{"no trusted signer", []string{"verify", "blob", pump, "--signature", fx + "/sig/infusion-pump-2.4.0.bin.sig"}, 2, "", "no trusted signer"},
		{"keyless without root", []string{"verify", "blob", pump, "--certificate-identity", "a@b", "--certificate-oidc-issuer", "https://i", "--bundle", fx + "/keyless/infusion-pump-2.4.0.bin.v0.3.sigstore.json"}, 2, "", "keyless verification needs --trusted-root"},
		{"identity without issuer", []string{"verify", "blob", pump, "--certificate-identity", "a@b"}, 2, "", "--certificate-identity given without --certificate-oidc-issuer"},
		{"threshold zero", []string{"verify", "blob", pump, "--key", key, "--threshold", "0"}, 2, "", "--threshold 0: must be at least 1"},
		{"new bundle format noted", []string{"verify", "blob", pump, "--key", key, "--signature", fx + "/sig/infusion-pump-2.4.0.bin.sig", "--new-bundle-format"}, 0, "VERIFIED  ", "wardgate: note: --new-bundle-format changes nothing"},
		{"offline needs a log entry", []string{"verify", "blob", pump, "--key", key, "--signature", fx + "/sig/infusion-pump-2.4.0.bin.sig", "--offline"}, 1, "FAILED    [tlog-invalid] ", ""},
		{"offline with ignored log", []string{"verify", "blob", pump, "--key", key, "--signature", fx + "/sig/infusion-pump-2.4.0.bin.sig", "--offline", "--insecure-ignore-tlog"}, 0, "VERIFIED  ", ""},
		{"signed timestamps required", []string{"verify", "blob", pump, "--key", key, "--signature", fx + "/sig/infusion-pump-2.4.0.bin.sig", "--use-signed-timestamps"}, 1, "FAILED    [timestamp-invalid] ", ""},
		{"wrong key", []string{"verify", "blob", pump, "--key", fx + "/keys/rogue.pub", "--signature", fx + "/sig/infusion-pump-2.4.0.bin.sig"}, 1, "FAILED    [untrusted-signer] ", ""},
		{"kms unknown provider form", []string{"verify", "blob", pump, "--key", "gcpkms://projects/p", "--signature", fx + "/sig/infusion-pump-2.4.0.bin.sig"}, 2, "", "key gcpkms://projects/p: kms specification should be in the format gcpkms://projects/[PROJECT_ID]"},
		{"azure reference", []string{"verify", "blob", pump, "--key", "azurekms://", "--signature", fx + "/sig/infusion-pump-2.4.0.bin.sig"}, 2, "", "key azurekms://: kms specification should be in the format azurekms://"},
		{"aws reference", []string{"verify", "blob", pump, "--key", "awskms://", "--signature", fx + "/sig/infusion-pump-2.4.0.bin.sig"}, 2, "", "key awskms://: kms specification should be in the format awskms://[ENDPOINT]/[ID/ALIAS/ARN]"},
		{"vault reference", []string{"verify", "blob", pump, "--key", "hashivault://a/b", "--signature", fx + "/sig/infusion-pump-2.4.0.bin.sig"}, 2, "", "key hashivault://a/b: kms specification should be in the format hashivault://<key>"},
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
	// Paths in the list are relative to the list's directory: the list
	// sits in fixtures/testdata's parent's copy, here a symlink-free copy
	// of the four files it names.
	for _, f := range []string{"firmware/infusion-pump-2.4.0.bin", "sig/infusion-pump-2.4.0.bin.sig", "firmware/infusion-pump-2.3.0.bin", "sig/infusion-pump-2.3.0.bin.sigstore.json"} {
		data, err := os.ReadFile(filepath.Join(abs, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	list := strings.Join([]string{
		"# blob signature",
		"firmware/infusion-pump-2.4.0.bin sig/infusion-pump-2.4.0.bin.sig",
		"firmware/infusion-pump-2.3.0.bin   sig/infusion-pump-2.3.0.bin.sigstore.json",
		"",
		abs + "/tampered/infusion-pump-2.4.0-flipped.bin " + abs + "/sig/infusion-pump-2.4.0.bin.sigstore.json",
		"only-one-field",
		"firmware/missing.bin sig/infusion-pump-2.4.0.bin.sig",
	}, "\n")
	path := filepath.Join(dir, "list")
	if err := os.WriteFile(path, []byte(list), 0o644); err != nil {
		t.Fatal(err)
	}
	key := fx + "/keys/acme-infusion.pub"
	// Run from another directory: the relative paths must still resolve.
	code, out, errOut := run(t, "verify", "blob", "--batch", path, "--key", key, "-o", "json")
	if code != 2 {
		t.Fatalf("exit %d, want 2 (two lines could not be verified): %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 6 {
		t.Fatalf("want 5 JSON lines and a summary, got %d: %s", len(lines), out)
	}
	type line struct {
		Line   int    `json:"line"`
		Error  string `json:"error"`
		Reason string `json:"reason"`
		Result *struct {
			Verified bool     `json:"verified"`
			Reasons  []string `json:"reasons"`
		} `json:"result"`
	}
	want := []struct {
		line     int
		verified bool
		err      string
	}{{2, true, ""}, {3, true, ""}, {5, false, ""}, {6, false, path + ":6: want \"BLOB_PATH SIGNATURE_OR_BUNDLE_PATH\", got 1 fields"}, {7, false, "line 7: lstat " + dir + "/firmware/missing.bin: no such file or directory"}}
	for i, w := range want {
		var r line
		if err := json.Unmarshal([]byte(lines[i]), &r); err != nil {
			t.Fatal(err)
		}
		if r.Line != w.line || r.Error != w.err || (w.err == "" && (r.Result == nil || r.Result.Verified != w.verified)) || (w.err != "" && r.Reason != "bad-input") {
			t.Fatalf("line %d: %s", i, lines[i])
		}
	}
	if lines[5] != `{"summary":{"lines":5,"verified":2,"failed":1,"errors":2}}` {
		t.Fatalf("summary line: %s", lines[5])
	}
	code, out, _ = run(t, "verify", "blob", "--batch", path, "--key", key)
	if code != 2 || !strings.HasSuffix(out, "ERROR     "+path+":6: want \"BLOB_PATH SIGNATURE_OR_BUNDLE_PATH\", got 1 fields\n"+
		"ERROR     line 7: lstat "+dir+"/firmware/missing.bin: no such file or directory\n"+
		"summary: 5 lines: 2 verified, 1 failed, 2 could not be verified\n") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	// Failures but no errors: exit 1. All good: exit 0.
	if err := os.WriteFile(path, []byte(strings.Join(strings.Split(list, "\n")[:5], "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := run(t, "verify", "blob", "--batch", path, "--key", key); code != 1 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if err := os.WriteFile(path, []byte(strings.Join(strings.Split(list, "\n")[:3], "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := run(t, "verify", "blob", "--batch", path, "--key", key); code != 0 || !strings.HasSuffix(out, "summary: 2 lines: 2 verified, 0 failed, 0 could not be verified\n") {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
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
