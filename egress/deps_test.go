package egress_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestDeps keeps egress a domain package: no HTTP server, no cobra, no
// wardgate server, no storage driver (that is store/sqlite's).
func TestDeps(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not on PATH")
	}
	out, err := exec.CommandContext(t.Context(), "go", "list", "-deps", "github.com/wardgate/wardgate/egress").Output()
	if err != nil {
		t.Fatal(err)
	}
	deps := strings.Fields(string(out))
	for _, bad := range []string{"github.com/spf13/cobra", "github.com/wardgate/wardgate/server", "modernc.org/sqlite", "database/sql"} {
		if slices.Contains(deps, bad) {
			t.Errorf("egress depends on %s", bad)
		}
	}
	// net/http arrives only through publicsuffix's use of cookiejar's
	// interface; egress itself must not import it.
	out, err = exec.CommandContext(t.Context(), "go", "list", "-f", "{{join .Imports \"\\n\"}}", "github.com/wardgate/wardgate/egress").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range strings.Fields(string(out)) {
		if strings.HasPrefix(imp, "net/http") {
			t.Errorf("egress imports %s", imp)
		}
	}
}
