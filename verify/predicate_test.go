package verify_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/wardgate/wardgate/verify"
)

// TestPredicateTypesMatchCosign reads cosign's own predicate.go (from the
// module cache, at the version go.mod pins) and compares its
// PredicateTypeMap, key by key and value by value, with
// verify.PredicateTypes. Each constant is resolved from the source of the
// package that declares it.
func TestPredicateTypesMatchCosign(t *testing.T) {
	dir := goListDir(t, "github.com/sigstore/cosign/v2/cmd/cosign/cli/options")
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filepath.Join(dir, "predicate.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	imports := map[string]string{}
	for _, im := range f.Imports {
		p := strings.Trim(im.Path.Value, `"`)
		name := filepath.Base(p)
		if im.Name != nil {
			name = im.Name.Name
		}
		imports[name] = p
	}
	consts := func(dir string) map[string]string {
		out := map[string]string{}
		pkgs, err := parser.ParseDir(token.NewFileSet(), dir, func(fi fs.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, pkg := range pkgs {
			ast.Inspect(pkg, func(n ast.Node) bool {
				if vs, ok := n.(*ast.ValueSpec); ok {
					for i, name := range vs.Names {
						if i < len(vs.Values) {
							if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
								out[name.Name], _ = strconv.Unquote(lit.Value)
							}
						}
					}
				}
				return true
			})
		}
		return out
	}
	local := consts(dir)
	resolve := func(e ast.Expr) string {
		switch e := e.(type) {
		case *ast.Ident:
			if v, ok := local[e.Name]; ok {
				return v
			}
		case *ast.SelectorExpr:
			if v, ok := consts(goListDir(t, imports[e.X.(*ast.Ident).Name]))[e.Sel.Name]; ok {
				return v
			}
		}
		t.Fatalf("%s: cannot resolve", fset.Position(e.Pos()))
		return ""
	}
	got := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Names) != 1 || vs.Names[0].Name != "PredicateTypeMap" {
			return true
		}
		for _, el := range vs.Values[0].(*ast.CompositeLit).Elts {
			kv := el.(*ast.KeyValueExpr)
			got[resolve(kv.Key)] = resolve(kv.Value)
		}
		return false
	})
	if len(got) == 0 {
		t.Fatal("no PredicateTypeMap in cosign's predicate.go")
	}
	if !maps.Equal(got, verify.PredicateTypes) {
		t.Fatalf("cosign's map:\n%v\nwardgate's:\n%v", got, verify.PredicateTypes)
	}
}

// goListDir is the source directory of a package in the module graph.
func goListDir(t testing.TB, pkg string) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-find", "-f", "{{.Dir}}", pkg).Output()
	if err != nil || len(strings.TrimSpace(string(out))) == 0 {
		t.Skipf("go list %s: %v (the module cache is needed)", pkg, err)
	}
	return strings.TrimSpace(string(out))
}

func TestPredicateType(t *testing.T) {
	for in, want := range map[string]string{
		"slsaprovenance1":                "https://slsa.dev/provenance/v1",
		"slsaprovenance":                 "https://slsa.dev/provenance/v0.2",
		"spdxjson":                       "https://spdx.dev/Document",
		"https://example.com/my-type/v1": "https://example.com/my-type/v1",
	} {
		got, err := verify.PredicateType(in)
		if err != nil || got != want {
			t.Errorf("PredicateType(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := verify.PredicateType("slsa"); err == nil || !strings.Contains(err.Error(), `--type "slsa": not a predicate type URI nor one of cosign's names`) {
		t.Fatalf("slsa: %v", err)
	}
}
