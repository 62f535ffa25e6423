package policy_test

import (
	"fmt"
	"testing"

	"github.com/wardgate/wardgate/evidence"
	"github.com/wardgate/wardgate/internal/proccpu"
	"github.com/wardgate/wardgate/policy"
)

// BenchmarkEvaluate evaluates the typical evidence document with every
// default rule: the query is prepared once, outside the loop. Each
// iteration is a whole Evaluate: validation, conversion of the evidence to
// OPA's input, evaluation and decoding of the decision.
//
// decisions/s is from wall time. cpu-decisions/s is from the CPU time the
// process used (user and system, every thread: GC included), so on a shared
// machine it says what one core does when it is not also running something
// else; go test -cpu 1 makes the two comparable.
func BenchmarkEvaluate(b *testing.B) {
	benchEvaluate(b, newEngine(b), typical(b))
}

// BenchmarkEvaluateLargeSBOM is BenchmarkEvaluate with 300 SBOM components
// (the typical eight and 292 more, as an embedded-Linux firmware carries):
// how the per-component rules scale.
func BenchmarkEvaluateLargeSBOM(b *testing.B) {
	ev := typical(b)
	for i := len(ev.SBOM.Components); i < 300; i++ {
		ev.SBOM.Components = append(ev.SBOM.Components, evidence.Component{
			Name:     fmt.Sprintf("lib%03d", i),
			Version:  fmt.Sprintf("1.%d.0", i),
			PURL:     fmt.Sprintf("pkg:generic/lib%03d@1.%d.0", i, i),
			Licenses: []string{[]string{"MIT", "BSD-3-Clause", "Apache-2.0", "GPL-2.0-only", "LGPL-2.1-or-later"}[i%5]},
		})
	}
	benchEvaluate(b, newEngine(b), ev)
}

// BenchmarkEvaluateNoopRules is BenchmarkEvaluate with the default decision
// module and, instead of the default rules, as many rules that OPA answers
// by an index lookup and that never fire (policy.NewNoopRulesEngine): the
// floor of an evaluation with OPA's evaluator on this input, whatever the
// rules do. Validation, conversion of the evidence and decoding are those
// of BenchmarkEvaluate.
func BenchmarkEvaluateNoopRules(b *testing.B) {
	e, n, err := policy.NewNoopRulesEngine(b.Context(), loadTrust(b, "testdata/trust.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	if n < 20 {
		b.Fatalf("%d no-op rules; the default rule sets have more", n)
	}
	benchEvaluate(b, e, typical(b))
}

// benchEvaluate runs Evaluate on ev in the benchmark loop; every decision
// must allow.
func benchEvaluate(b *testing.B, e *policy.Engine, ev evidence.Evidence) {
	b.ReportAllocs()
	cpu0 := proccpu.Time()
	for b.Loop() {
		d, err := e.Evaluate(b.Context(), ev)
		if err != nil {
			b.Fatal(err)
		}
		if !d.Allow {
			b.Fatalf("evidence denied: %v", d.Codes())
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
	if cpu := proccpu.Time() - cpu0; cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "cpu-decisions/s")
	}
}
