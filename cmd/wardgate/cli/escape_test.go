package cli_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/attest"
	"github.com/wardgate/wardgate/store"
)

// `attest log` prints device IDs and artifacts escaped: an entry whose
// device holds a newline and ANSI escapes (logged before identifiers were
// checked, or by another tool) adds no line and no escape to the table.
func TestAttestLogEscapesIdentifiers(t *testing.T) {
	state := t.TempDir()
	seedLog(t, state, 1)
	s, err := attest.LoadSigner(context.Background(), filepath.Join(state, "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(context.Background(), state)
	if err != nil {
		t.Fatal(err)
	}
	l, err := attest.OpenLog(context.Background(), db, s, "")
	if err != nil {
		t.Fatal(err)
	}
	evil := "pump-2\n     9  2026-11-01T00:00:00Z  PASSED  forged\x1b[2J\u202e"
	at := time.Date(2026, 11, 1, 1, 0, 0, 0, time.UTC)
	st, err := attest.NewStatement(attest.Verdict{SubjectName: "fw.bin", SubjectDigest: map[string]string{"sha256": strings.Repeat("a", 64)},
		Passed: true, DeviceID: evil, Time: at}, "test")
	if err != nil {
		t.Fatal(err)
	}
	env, err := s.SignStatement(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(context.Background(), attest.Item{Envelope: env, Artifact: "sha256:" + strings.Repeat("a", 64), Device: evil, Time: at}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	code, out, errOut := run(t, "attest", "log", "--state", state)
	if code != 0 {
		t.Fatalf("log: %d %s", code, errOut)
	}
	table, _, _ := strings.Cut(out, "\n\n") // the checkpoint note follows
	if rows := strings.Split(strings.TrimSpace(table), "\n"); len(rows) != 3 {
		t.Fatalf("want a header and 2 rows, got %d lines:\n%s", len(rows), table)
	}
	if strings.ContainsAny(out, "\x1b\u202e") || !strings.Contains(out, `"pump-2\n     9  2026-11-01T00:00:00Z  PASSED  forged\x1b[2J\u202e"`) {
		t.Fatalf("device not escaped:\n%q", out)
	}
}
