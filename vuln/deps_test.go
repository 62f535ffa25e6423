package vuln

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps vuln a leaf of wardgate: it depends on no other wardgate
// package (gate converts its results into evidence), and on no HTTP server
// or CLI framework of its own.
func TestDeps(t *testing.T) {
	direct, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, imp := range strings.Fields(string(direct)) {
		if imp == "github.com/spf13/cobra" || imp == "net/http" {
			t.Errorf("vuln imports %s", imp)
		}
	}
	all, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, dep := range strings.Fields(string(all)) {
		if strings.HasPrefix(dep, "github.com/wardgate/wardgate/") && dep != "github.com/wardgate/wardgate/vuln" {
			t.Errorf("vuln depends on %s", dep)
		}
	}
}
