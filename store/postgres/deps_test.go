package postgres_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The backend knows its driver, the store and what the store keeps;
// nothing of the pipeline, the server or the command line.
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/wardgate/wardgate/store/postgres").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const mod = "github.com/wardgate/wardgate/"
	forbidden := []string{mod + "attest", mod + "policy", mod + "verify", mod + "sbom", mod + "gate", mod + "server", mod + "cmd/", "github.com/spf13/cobra"}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") || (strings.HasSuffix(f, "/") && strings.HasPrefix(dep, f)) {
				t.Errorf("store/postgres depends on %s", dep)
			}
		}
	}
}
