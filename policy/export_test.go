package policy_test

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/wardgate/wardgate/policy"
)

var opaExport = flag.String("opa-export", "", "write the default policies, the trust data, the typical evidence and wardgate's decision on it to this directory, for opa eval (bench/policy-vs-opa.sh)")

// TestOPAExport writes what `opa eval` needs to decide on the typical
// evidence the way the engine does: DIR/rego/*.rego (the default policies,
// without tests), DIR/data.json ({"trust": ...} from testdata/trust.yaml,
// the engine's data document), DIR/input.json (the evidence as the engine
// gives it to OPA), DIR/now_ns (evaluatedAt, the engine's pinned clock) and
// DIR/wardgate.json (the engine's decision: allow and codes). Skipped
// unless -opa-export is set.
func TestOPAExport(t *testing.T) {
	if *opaExport == "" {
		t.Skip("set -opa-export DIR")
	}
	dir := *opaExport
	if err := os.MkdirAll(filepath.Join(dir, "rego"), 0o755); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("rego/*.rego")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.rego") {
			continue
		}
		write(t, filepath.Join(dir, f), readFile(t, f))
	}
	cfg := loadTrust(t, "testdata/trust.yaml")
	write(t, filepath.Join(dir, "data.json"), mustJSON(t, map[string]any{"trust": cfg.Data()}))
	ev := typical(t)
	write(t, filepath.Join(dir, "input.json"), mustJSON(t, ev))
	write(t, filepath.Join(dir, "now_ns"), []byte(strconv.FormatInt(ev.EvaluatedAt.UnixNano(), 10)+"\n"))
	d := evaluate(t, newEngine(t), ev)
	codes := func(vs []policy.Violation) []string {
		out := []string{}
		for _, v := range vs {
			out = append(out, string(v.Code))
		}
		return out
	}
	write(t, filepath.Join(dir, "wardgate.json"), mustJSON(t, map[string]any{
		"allow":      d.Allow,
		"violations": codes(d.Violations),
		"warnings":   codes(d.Warnings),
	}))
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}
