package bus_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestDeps keeps bus a domain package: no HTTP server, no cobra, no
// wardgate server or command, no NATS server (tests embed it), no SQLite.
func TestDeps(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not on PATH")
	}
	out, err := exec.CommandContext(t.Context(), "go", "list", "-deps", "github.com/wardgate/wardgate/egress/bus").Output()
	if err != nil {
		t.Fatal(err)
	}
	deps := strings.Fields(string(out))
	for _, bad := range []string{"github.com/spf13/cobra", "github.com/wardgate/wardgate/server", "github.com/wardgate/wardgate/cmd/wardgate/cli",
		"github.com/nats-io/nats-server/v2/server", "modernc.org/sqlite", "net/http/httptest"} {
		if slices.Contains(deps, bad) {
			t.Errorf("egress/bus depends on %s", bad)
		}
	}
}
