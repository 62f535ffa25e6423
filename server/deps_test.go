package server

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestDeps keeps the direction cmd -> server -> gate: the server does not
// import cobra or the command packages, and the gate (admission included)
// does not import the server or net/http. (cobra reaches the server's
// dependency graph through cosign and syft; what matters is who imports
// it.)
func TestDeps(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not on PATH")
	}
	imports := func(pkg string) []string {
		out, err := exec.CommandContext(t.Context(), "go", "list", "-f", `{{join .Imports "\n"}}`, pkg).Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.Fields(string(out))
	}
	server, gate := imports("github.com/wardgate/wardgate/server"), imports("github.com/wardgate/wardgate/gate")
	for _, bad := range []string{"github.com/spf13/cobra", "github.com/wardgate/wardgate/cmd/wardgate/cli"} {
		if slices.Contains(server, bad) {
			t.Errorf("server imports %s", bad)
		}
	}
	for _, bad := range []string{"net/http", "github.com/wardgate/wardgate/server", "github.com/spf13/cobra"} {
		if slices.Contains(gate, bad) {
			t.Errorf("gate imports %s", bad)
		}
	}
}
