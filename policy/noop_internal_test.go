package policy

import (
	"context"
	"fmt"
	"strings"

	"github.com/wardgate/wardgate/trust"
)

// NewNoopRulesEngine prepares an engine with the default decision module
// and, in place of the default rules, as many deny rules in the same
// packages, each with a constant violation and a body of one comparison
// that OPA's rule index answers by lookup and that never holds:
// input.artifact.name == "never-<package>-<n>". These are the cheapest
// rules OPA's evaluator can run, so an evaluation with them is the floor
// of one with the default rules: whatever rules do, they cannot cost less.
// It also returns the number of rules.
func NewNoopRulesEngine(ctx context.Context, c *trust.Config) (*Engine, int, error) {
	defaults, err := defaultModules(false)
	if err != nil {
		return nil, 0, err
	}
	var modules []module
	n := 0
	for _, m := range defaults {
		if m.pkg() == "wardgate" {
			modules = append(modules, m)
			continue
		}
		var src strings.Builder
		fmt.Fprintf(&src, "package %s\n\n", m.pkg())
		rules := 0
		for _, r := range m.mod.Rules {
			if r.Head.Name.String() != "deny" {
				continue
			}
			rules++
			fmt.Fprintf(&src, "deny contains {\"code\": \"noop-%d\", \"severity\": \"low\", \"message\": \"never\"} if {\n\tinput.artifact.name == \"never-%s-%d\"\n}\n\n", n, m.pkg(), rules)
			n++
		}
		if rules == 0 {
			continue
		}
		nm, err := parse("noop/"+m.path, []byte(src.String()))
		if err != nil {
			return nil, 0, err
		}
		modules = append(modules, nm)
	}
	q, err := prepare(ctx, modules, map[string]any{"trust": c.Data()})
	if err != nil {
		return nil, 0, err
	}
	return &Engine{query: q, timeout: DefaultTimeout}, n, nil
}
