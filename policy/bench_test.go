package policy_test

import (
	"fmt"
	"testing"

	"github.com/wardgate/wardgate/evidence"
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
	e := newEngine(b)
	ev := typical(b)
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		d, err := e.Evaluate(b.Context(), ev)
		if err != nil {
			b.Fatal(err)
		}
		if !d.Allow {
			b.Fatalf("typical evidence denied: %v", d.Codes())
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "cpu-decisions/s")
	}
}

// BenchmarkEvaluateLargeSBOM is BenchmarkEvaluate with 300 SBOM components
// (the typical eight and 292 more, as an embedded-Linux firmware carries):
// how the per-component rules scale.
func BenchmarkEvaluateLargeSBOM(b *testing.B) {
	e := newEngine(b)
	ev := typical(b)
	for i := len(ev.SBOM.Components); i < 300; i++ {
		ev.SBOM.Components = append(ev.SBOM.Components, evidence.Component{
			Name:     fmt.Sprintf("lib%03d", i),
			Version:  fmt.Sprintf("1.%d.0", i),
			PURL:     fmt.Sprintf("pkg:generic/lib%03d@1.%d.0", i, i),
			Licenses: []string{[]string{"MIT", "BSD-3-Clause", "Apache-2.0", "GPL-2.0-only", "LGPL-2.1-or-later"}[i%5]},
		})
	}
	b.ReportAllocs()
	cpu0 := cpuTime()
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
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "cpu-decisions/s")
	}
}
