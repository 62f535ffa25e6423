package policy_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardgate/wardgate/policy"
)

// Policy tests run with the capabilities evaluation has: a test that
// reaches for the network does not compile, so it cannot phone home while
// `wardgate policy test` runs it.
func TestRunTestsDeniesNetworkBuiltins(t *testing.T) {
	dir := t.TempDir()
	src := "package wardgate.rules.phone_home_test\n\nimport rego.v1\n\ntest_fetch if {\n\tresp := http.send({\"method\": \"GET\", \"url\": \"http://example.invalid/\"})\n\tresp.status_code == 200\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "net_test.rego"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := policy.RunTests(t.Context(), dir)
	if err == nil || !strings.Contains(err.Error(), "net_test.rego:6") || !strings.Contains(err.Error(), "undefined function http.send") {
		t.Fatalf("err = %v", err)
	}
}
