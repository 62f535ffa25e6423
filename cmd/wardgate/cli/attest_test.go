package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/attest"
	"github.com/wardgate/wardgate/store"
)

// seedLog writes a service key into state and appends n signed verdicts.
func seedLog(t *testing.T, state string, n int) {
	t.Helper()
	t.Setenv(attest.PasswordEnv, "")
	if code, _, errOut := run(t, "attest", "keygen", "--out", filepath.Join(state, "signing")); code != 0 {
		t.Fatalf("keygen: %s", errOut)
	}
	s, err := attest.LoadSigner(context.Background(), filepath.Join(state, "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), state)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l, err := attest.OpenLog(context.Background(), st, s, "")
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		st, err := attest.NewStatement(attest.Verdict{SubjectName: "fw.bin", SubjectDigest: map[string]string{"sha256": strings.Repeat("a", 64)},
			Passed: i%2 == 0, ReasonCodes: map[bool][]string{true: nil, false: {"rollback"}}[i%2 == 0], DeviceID: "pump-1",
			Vendor: "acme-infusion", Product: "infusion-pump", Version: fmt.Sprintf("2.%d.0", i),
			Time: time.Date(2026, 11, 1, 0, i, 0, 0, time.UTC)}, "test")
		if err != nil {
			t.Fatal(err)
		}
		env, err := s.SignStatement(context.Background(), st)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Append(context.Background(), attest.Item{Envelope: env, Artifact: "sha256:" + strings.Repeat("a", 64), Device: "pump-1", Time: time.Date(2026, 11, 1, 0, i, 0, 0, time.UTC)}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAttestCommands(t *testing.T) {
	state := t.TempDir()
	seedLog(t, state, 4)
	code, out, errOut := run(t, "attest", "log", "--state", state, "-o", "json")
	if code != 0 {
		t.Fatalf("log: %d %s", code, errOut)
	}
	var lg struct {
		Checkpoint struct{ Size int } `json:"checkpoint"`
		Entries    []struct {
			Index   int      `json:"index"`
			Result  string   `json:"result"`
			Reasons []string `json:"reasons"`
			Vendor  string   `json:"vendor"`
			Product string   `json:"product"`
			Version string   `json:"version"`
		} `json:"entries"`
	}
	if err := json.Unmarshal([]byte(out), &lg); err != nil {
		t.Fatal(err)
	}
	if lg.Checkpoint.Size != 4 || len(lg.Entries) != 4 || lg.Entries[1].Result != "FAILED" || lg.Entries[1].Reasons[0] != "rollback" ||
		lg.Entries[1].Vendor != "acme-infusion" || lg.Entries[1].Product != "infusion-pump" || lg.Entries[1].Version != "2.1.0" {
		t.Fatalf("log = %+v", lg)
	}
	code, out, _ = run(t, "attest", "log", "--state", state)
	if code != 0 || !strings.Contains(out, "     1  2026-11-01T00:01:00Z  FAILED  acme-infusion/infusion-pump 2.1.0  sha256:"+strings.Repeat("a", 64)+"  pump-1 [rollback]\n") {
		t.Fatalf("log text: %d\n%s", code, out)
	}
	pack := filepath.Join(t.TempDir(), "pack.tar.gz")
	if code, out, errOut := run(t, "attest", "export", "--state", state, "--out", pack); code != 0 || !strings.Contains(out, "4 of 4 entries") {
		t.Fatalf("export: %d %s %s", code, out, errOut)
	}
	pub := filepath.Join(state, "signing.pub")
	if code, out, _ := run(t, "attest", "verify", pack, "--key", pub); code != 0 || !strings.HasPrefix(out, "INTACT    ") {
		t.Fatalf("verify: %d %s", code, out)
	}
	// Tampered: exit 1 with the reason; unreadable: exit 2.
	dir := filepath.Join(t.TempDir(), "pack")
	if code, _, errOut := run(t, "attest", "export", "--state", state, "--out", dir); code != 0 {
		t.Fatal(errOut)
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pub"), []byte("replaced"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ = run(t, "attest", "verify", dir, "--key", pub)
	if code != 1 || !strings.HasPrefix(out, "TAMPERED  "+dir+": 1 problem\n") || !strings.Contains(out, "[file-digest] key.pub: SHA-256 is") {
		t.Fatalf("tampered: %d %s", code, out)
	}
	// Another public key: one fact, "signed by another key", not three
	// signature problems.
	other := filepath.Join(t.TempDir(), "other")
	if code, _, errOut := run(t, "attest", "keygen", "--out", other); code != 0 {
		t.Fatal(errOut)
	}
	code, out, _ = run(t, "attest", "verify", pack, "--key", other+".pub")
	if code != 1 || !strings.HasPrefix(out, "WRONG KEY "+pack+": signed by another key; nothing in it can be checked with the key given\n  [key-mismatch] manifest.json: pack says it was signed by key ") || strings.Count(out, "\n") != 2 {
		t.Fatalf("wrong key: %d %s", code, out)
	}
	code, _, errOut = run(t, "attest", "verify", filepath.Join(state, "wardgate.db"), "--key", pub)
	if code != 2 || !strings.Contains(errOut, "pack unreadable") {
		t.Fatalf("unreadable: %d %s", code, errOut)
	}
	if code, _, errOut := run(t, "attest", "verify", dir); code != 2 || !strings.Contains(errOut, "--key is required") {
		t.Fatalf("no key: %d %s", code, errOut)
	}
}
