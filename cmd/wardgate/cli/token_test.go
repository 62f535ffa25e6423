package cli_test

import (
	"encoding/json"
	"strings"
	"testing"
)

func token(t *testing.T, state, role string) string {
	t.Helper()
	code, out, errOut := run(t, "token", "create", "--role", role, "--name", "t-"+role, "--state", state)
	if code != 0 || !strings.HasPrefix(out, "wgt_") || !strings.Contains(errOut, "shown only this once") {
		t.Fatalf("token create: %d %q %q", code, out, errOut)
	}
	return strings.TrimSpace(out)
}

func TestTokenCommands(t *testing.T) {
	state := t.TempDir()
	secret := token(t, state, "sensor")
	code, out, _ := run(t, "token", "list", "--state", state, "-o", "json")
	var ts []struct{ Name, Role string }
	if code != 0 || json.Unmarshal([]byte(out), &ts) != nil || len(ts) != 1 || ts[0].Name != "t-sensor" || ts[0].Role != "sensor" || strings.Contains(out, secret) {
		t.Fatalf("list: %d %s", code, out)
	}
	if code, _, errOut := run(t, "token", "create", "--role", "root", "--state", state); code != 2 || !strings.Contains(errOut, "--role") {
		t.Fatalf("bad role: %d %s", code, errOut)
	}
	if code, _, _ := run(t, "token", "revoke", "t-sensor", "--state", state); code != 0 {
		t.Fatalf("revoke: %d", code)
	}
	if code, _, errOut := run(t, "token", "revoke", "nobody", "--state", state); code != 2 || !strings.Contains(errOut, "no token named") {
		t.Fatalf("revoke unknown: %d %s", code, errOut)
	}
}
