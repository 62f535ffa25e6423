// Package depcheck enforces wardgate's dependency direction: domain packages
// know nothing of cobra, the HTTP server or the command line, and evidence
// depends on the standard library alone.
package depcheck

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const mod = "github.com/wardgate/wardgate"

func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}}", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

func exists(pkg string) bool {
	return exec.Command("go", "list", pkg).Run() == nil
}

// directImports lists the packages pkg imports itself (not its libraries').
func directImports(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", "{{join .Imports \"\\n\"}}", pkg).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// cobra reaches the graph through cosign's and syft's own packages; what is
// forbidden is a domain package importing it, or anything of wardgate's
// server or command line, directly or not.
func TestDomainPackagesStayDomain(t *testing.T) {
	forbidden := []string{mod + "/server", mod + "/cmd/"}
	for _, p := range []string{"verify", "sbom", "policy", "attest", "evidence", "egress", "store", "gate", "trust", "tuf", "vuln"} {
		pkg := mod + "/" + p
		if !exists(pkg) {
			continue
		}
		t.Run(p, func(t *testing.T) {
			for _, line := range deps(t, pkg) {
				path, _, _ := strings.Cut(line, " ")
				for _, f := range forbidden {
					if path == f || strings.HasPrefix(path, f) {
						t.Errorf("%s depends on %s", pkg, path)
					}
				}
			}
			for _, imp := range directImports(t, pkg) {
				if imp == "github.com/spf13/cobra" || strings.HasPrefix(imp, "github.com/spf13/cobra/") {
					t.Errorf("%s imports %s", pkg, imp)
				}
			}
		})
	}
}

func TestEvidenceIsStdlibOnly(t *testing.T) {
	pkg := mod + "/evidence"
	if !exists(pkg) {
		t.Skip("no evidence package yet")
	}
	for _, line := range deps(t, pkg) {
		path, std, _ := strings.Cut(line, " ")
		if std != "true" && path != pkg {
			t.Errorf("evidence depends on non-standard package %s", path)
		}
	}
}

// The TUF client converts nothing itself: the gate turns its Release into
// evidence, so tuf imports no other wardgate package.
func TestTUFImportsNoWardgatePackage(t *testing.T) {
	pkg := mod + "/tuf"
	for _, line := range deps(t, pkg) {
		path, _, _ := strings.Cut(line, " ")
		if path != pkg && strings.HasPrefix(path, mod+"/") {
			t.Errorf("tuf depends on %s", path)
		}
	}
}

// TestPackageBoundaries: what each of these packages must not reach, in
// its whole dependency graph (deps) or by its own imports (imports): a
// library may bring net/http or cobra into the graph, the package itself
// may not use them. A rule ending in "/" forbids every package under it
// (the package itself excepted); any other rule forbids that package and
// those under it.
func TestPackageBoundaries(t *testing.T) {
	for _, r := range []struct {
		pkg           string
		deps, imports []string
	}{
		// No storage driver: that is store/sqlite's. net/http arrives only
		// through publicsuffix's use of cookiejar's interface.
		{"egress", []string{"github.com/spf13/cobra", mod + "/server", "modernc.org/sqlite", "database/sql"}, []string{"net/http"}},
		// No NATS server (tests embed it), no SQLite, no HTTP test server.
		{"egress/bus", []string{"github.com/spf13/cobra", mod + "/server", mod + "/cmd/wardgate/cli",
			"github.com/nats-io/nats-server/v2/server", "modernc.org/sqlite", "net/http/httptest"}, nil},
		// The gate calls rollout, never the other way round.
		{"rollout", []string{mod + "/server", mod + "/gate"}, []string{"net/http", "github.com/spf13/cobra"}},
		// cmd -> server -> gate: the server serves, the command line
		// parses; the gate (admission included) knows no HTTP.
		{"server", []string{mod + "/cmd/"}, []string{"github.com/spf13/cobra"}},
		{"gate", []string{mod + "/server", mod + "/cmd/"}, []string{"net/http", "github.com/spf13/cobra"}},
		// The PostgreSQL backend knows its driver, the store and what the
		// store keeps; nothing of the pipeline, the server or the command
		// line.
		{"store/postgres", []string{mod + "/attest", mod + "/policy", mod + "/verify", mod + "/sbom", mod + "/gate",
			mod + "/server", mod + "/cmd/", "github.com/spf13/cobra"}, nil},
		// vuln is a leaf of wardgate: the gate turns its matches into
		// evidence.
		{"vuln", []string{mod + "/"}, []string{"net/http", "github.com/spf13/cobra"}},
	} {
		pkg := mod + "/" + r.pkg
		t.Run(r.pkg, func(t *testing.T) {
			for _, line := range deps(t, pkg) {
				path, _, _ := strings.Cut(line, " ")
				if path != pkg && forbids(r.deps, path) {
					t.Errorf("%s depends on %s", pkg, path)
				}
			}
			for _, imp := range directImports(t, pkg) {
				if forbids(r.imports, imp) {
					t.Errorf("%s imports %s", pkg, imp)
				}
			}
		})
	}
}

// forbids reports whether a rule of rules covers path.
func forbids(rules []string, path string) bool {
	return slices.ContainsFunc(rules, func(r string) bool {
		if strings.HasSuffix(r, "/") {
			return strings.HasPrefix(path, r)
		}
		return path == r || strings.HasPrefix(path, r+"/")
	})
}

func TestForbids(t *testing.T) {
	for _, c := range []struct {
		rules []string
		path  string
		want  bool
	}{
		{[]string{"net/http"}, "net/http", true},
		{[]string{"net/http"}, "net/http/httptest", true},
		{[]string{"net/http"}, "net/httpx", false},
		{[]string{mod + "/cmd/"}, mod + "/cmd/wardgate/cli", true},
		{[]string{mod + "/cmd/"}, mod + "/cmdx", false},
		{[]string{mod + "/"}, "github.com/spf13/cobra", false},
		{nil, "net/http", false},
	} {
		if got := forbids(c.rules, c.path); got != c.want {
			t.Errorf("forbids(%q, %q) = %v, want %v", c.rules, c.path, got, c.want)
		}
	}
}
