package sbom

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestDeps keeps sbom a domain package. It imports no cobra itself (syft
// brings cobra transitively through anchore/clio, which sbom does not
// use), and nothing of wardgate's server or CLI at any depth.
func TestDeps(t *testing.T) {
	direct, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, ".").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	if slices.Contains(strings.Fields(string(direct)), "github.com/spf13/cobra") {
		t.Error("sbom imports cobra")
	}
	all, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, dep := range strings.Fields(string(all)) {
		if strings.HasPrefix(dep, "github.com/wardgate/wardgate/") && dep != "github.com/wardgate/wardgate/sbom" && dep != "github.com/wardgate/wardgate/evidence" && dep != "github.com/wardgate/wardgate/firmware" && dep != "github.com/wardgate/wardgate/internal/buildinfo" {
			t.Errorf("sbom depends on %s", dep)
		}
	}
}
