package rollout_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestDeps keeps rollout a domain package: no HTTP, no cobra, no server
// or gate (the gate calls rollout, never the other way round).
func TestDeps(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not on PATH")
	}
	out, err := exec.CommandContext(t.Context(), "go", "list", "-deps", "github.com/wardgate/wardgate/rollout").Output()
	if err != nil {
		t.Fatal(err)
	}
	deps := strings.Fields(string(out))
	// cobra arrives through attest's sigstore dependencies; rollout itself
	// must not import it (checked below).
	for _, bad := range []string{"github.com/wardgate/wardgate/server", "github.com/wardgate/wardgate/gate"} {
		if slices.Contains(deps, bad) {
			t.Errorf("rollout depends on %s", bad)
		}
	}
	out, err = exec.CommandContext(t.Context(), "go", "list", "-f", "{{join .Imports \"\\n\"}}", "github.com/wardgate/wardgate/rollout").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range strings.Fields(string(out)) {
		if strings.HasPrefix(imp, "net/http") || strings.HasPrefix(imp, "github.com/spf13/cobra") {
			t.Errorf("rollout imports %s", imp)
		}
	}
}
