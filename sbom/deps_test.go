package sbom

import (
	"go/build"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestDeps keeps sbom a domain package. It imports no cobra itself (syft
// brings cobra transitively through anchore/clio, which sbom does not
// use), and nothing of wardgate's server or CLI at any depth.
//
// Only wardgate's own packages can import wardgate's packages, so the walk
// follows the module's own imports, read from its sources with go/build
// (the build constraints of this platform, test files left out), and never
// loads syft's graph: `go list -deps` spent about 3 s of CPU on it, as much
// as the rest of the package's tests.
func TestDeps(t *testing.T) {
	const module = "github.com/wardgate/wardgate"
	allowed := []string{module + "/sbom", module + "/evidence", module + "/firmware", module + "/internal/buildinfo"}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	imports := func(path string) []string {
		t.Helper()
		p, err := build.Default.ImportDir(filepath.Join(root, strings.TrimPrefix(path, module)), 0)
		if err != nil {
			t.Fatalf("read package %s: %v", path, err)
		}
		return p.Imports
	}
	direct := imports(module + "/sbom")
	if slices.Contains(direct, "github.com/spf13/cobra") {
		t.Error("sbom imports cobra")
	}
	seen := map[string]bool{module + "/sbom": true}
	for queue := direct; len(queue) > 0; queue = queue[1:] {
		dep := queue[0]
		if seen[dep] || !strings.HasPrefix(dep, module+"/") {
			continue
		}
		seen[dep] = true
		if !slices.Contains(allowed, dep) {
			t.Errorf("sbom depends on %s", dep)
		}
		queue = append(queue, imports(dep)...)
	}
	// The walk reached the module's packages sbom does use: a walk that
	// found nothing would pass whatever sbom imported.
	for _, want := range []string{module + "/firmware", module + "/internal/buildinfo"} {
		if !seen[want] {
			t.Errorf("the walk did not reach %s", want)
		}
	}
}
