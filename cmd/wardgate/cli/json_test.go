package cli_test

import (
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/wardgate/wardgate/cmd/wardgate/cli"
)

// Every command has -o json; these are the ones whose text output is a
// bare value or a line per input.
func TestJSONOutputs(t *testing.T) {
	state := t.TempDir()
	code, out, errOut := run(t, "token", "create", "--role", "sensor", "--name", "sensor-1", "--state", state, "-o", "json")
	var tok struct{ Token, Role, Name string }
	if code != 0 || json.Unmarshal([]byte(out), &tok) != nil || !strings.HasPrefix(tok.Token, "wgt_") || tok.Role != "sensor" || tok.Name != "sensor-1" {
		t.Fatalf("token create: %d %q %s", code, out, errOut)
	}
	code, out, _ = run(t, "token", "revoke", "sensor-1", "--state", state, "-o", "json")
	if code != 0 || strings.TrimSpace(out) != `{"name":"sensor-1","revoked":true}` {
		t.Fatalf("token revoke: %d %q", code, out)
	}
	fleet := "../../../fixtures/fleet/testdata/"
	code, out, errOut = run(t, "egress", "ingest", "--state", state, "--inventory", fleet+"inventory.json", fleet+"defender.jsonl", fleet+"defender.jsonl", "-o", "json")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 {
		t.Fatalf("egress ingest: %d %q %s", code, out, errOut)
	}
	var first, second struct {
		Kind   string `json:"kind"`
		Added  bool   `json:"added"`
		Stored int64  `json:"stored"`
		Stats  *struct {
			Events    int64 `json:"events"`
			Malformed int64 `json:"malformed"`
		} `json:"stats"`
	}
	if json.Unmarshal([]byte(lines[0]), &first) != nil || json.Unmarshal([]byte(lines[1]), &second) != nil {
		t.Fatalf("not JSON Lines: %q", out)
	}
	if first.Kind != "telemetry" || !first.Added || first.Stats == nil || first.Stats.Events != 9533 || first.Stored != 9533 || first.Stats.Malformed != 0 {
		t.Fatalf("first ingest: %+v", first)
	}
	if second.Added || second.Stored != 0 {
		t.Fatalf("re-ingest must be a no-op: %+v", second)
	}
	code, out, _ = run(t, "policy", "test", "../../../policy/rego", "-o", "json")
	var rep struct {
		Passed  int               `json:"passed"`
		Failed  int               `json:"failed"`
		Results []json.RawMessage `json:"results"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || rep.Failed != 0 || rep.Passed == 0 || len(rep.Results) != rep.Passed {
		t.Fatalf("policy test: %d %q", code, out)
	}
}

// TestEveryCommandTakesOutputJSON keeps the README's promise: every command
// has -o/--output, and json is one of its values.
func TestEveryCommandTakesOutputJSON(t *testing.T) {
	var walk func(c *cobra.Command)
	n := 0
	walk = func(c *cobra.Command) {
		if c.Runnable() && c.Name() != "help" && c.Name() != "completion" && !strings.HasPrefix(c.CommandPath(), "wardgate completion") {
			n++
			f := c.Flags().Lookup("output")
			if f == nil || f.Shorthand != "o" {
				t.Errorf("%s has no -o/--output", c.CommandPath())
			} else if !strings.Contains(f.Usage, "json") {
				t.Errorf("%s: -o does not take json: %q", c.CommandPath(), f.Usage)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(cli.NewRootCmd(io.Discard, io.Discard))
	if n < 20 {
		t.Fatalf("only %d commands walked", n)
	}
}
