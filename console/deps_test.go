package console_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestDeps: the console reads through its own interfaces; it imports no
// store, no server and no cobra. Only its adapter knows today's stores.
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
	con := imports("github.com/wardgate/wardgate/console")
	for _, bad := range []string{"github.com/spf13/cobra", "github.com/wardgate/wardgate/server", "github.com/wardgate/wardgate/gate", "github.com/wardgate/wardgate/store",
		"github.com/wardgate/wardgate/cmd/wardgate/cli"} {
		if slices.Contains(con, bad) {
			t.Errorf("console imports %s", bad)
		}
	}
	for _, bad := range []string{"github.com/spf13/cobra", "github.com/wardgate/wardgate/cmd/wardgate/cli"} {
		if slices.Contains(imports("github.com/wardgate/wardgate/console/adapter"), bad) {
			t.Errorf("console/adapter imports %s", bad)
		}
	}
}
