package attest

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkSignAndAppend: build, sign and durably append one verdict, from
// as many goroutines as cores (the gate's shape: concurrent decisions, group
// commit). Reports verdicts/s.
func BenchmarkSignAndAppend(b *testing.B) {
	s := newSigner(b)
	l, err := openLogDir(b, b.TempDir(), s)
	if err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(16) // verdicts wait on fsync, not CPU
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			v := verdict(i, true)
			st, err := NewStatement(v, "bench")
			if err != nil {
				b.Fatal(err)
			}
			env, err := s.SignStatement(context.Background(), st)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := l.Append(context.Background(), Item{Envelope: env, Artifact: "sha256:" + v.SubjectDigest["sha256"], Time: v.Time}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verdicts/s")
}

// BenchmarkInclusionProof proves a random entry of a large log. The log is
// $WARDGATE_BENCH_LOG (with its key in $WARDGATE_BENCH_KEY, as written by
// bench/tools/mklog) when set, else a fresh 65,536-entry log.
func BenchmarkInclusionProof(b *testing.B) {
	ctx := context.Background()
	var l *Log
	if p := os.Getenv("WARDGATE_BENCH_LOG"); p != "" {
		s, err := LoadSigner(ctx, os.Getenv("WARDGATE_BENCH_KEY"))
		if err != nil {
			b.Fatal(err)
		}
		if l, err = openLogDir(b, filepath.Dir(p), s); err != nil {
			b.Fatal(err)
		}
	} else {
		s := newSigner(b)
		var err error
		if l, err = openLogDir(b, b.TempDir(), s); err != nil {
			b.Fatal(err)
		}
		env, _ := envelopeFor(b, s, 1)
		items := make([]Item, 4096)
		for i := range items {
			items[i] = Item{Envelope: append(append([]byte{}, env...), byte(i)), Artifact: "a"}
		}
		for range 16 {
			if _, err := l.AppendBatch(ctx, items); err != nil {
				b.Fatal(err)
			}
		}
	}
	size := l.Checkpoint().Size
	rng := rand.New(rand.NewPCG(1, 2))
	b.ReportMetric(float64(size), "entries")
	b.ResetTimer()
	for b.Loop() {
		if _, err := l.InclusionProof(ctx, rng.Uint64N(size), size); err != nil {
			b.Fatal(err)
		}
	}
}
