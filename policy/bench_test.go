package policy_test

import (
	"testing"
)

// BenchmarkEvaluate evaluates the typical evidence document with every
// default rule: the query is prepared once, outside the loop.
func BenchmarkEvaluate(b *testing.B) {
	e := newEngine(b)
	ev := typical(b)
	b.ReportAllocs()
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
}
