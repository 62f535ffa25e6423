package postgres_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"sync/atomic"
	"testing"

	"github.com/wardgate/wardgate/attest"
	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/store"
	_ "github.com/wardgate/wardgate/store/sqlite" // the baseline, side by side
	"github.com/wardgate/wardgate/store/storetest"
)

// The cost of each store write, on PostgreSQL and, side by side as the
// baseline, on the embedded SQLite store (a state directory in a temporary
// directory):
//
//	go test ./store/postgres -run '^$' -bench . -count 6 | tee out.txt; benchstat out.txt
//
// Each benchmark opens a fresh store (a fresh schema on PostgreSQL).
// Serial benchmarks give one write's latency; Parallel ones (8 writers per
// CPU) what group commit makes of concurrent admissions.
func backends(b *testing.B) map[string]func(b *testing.B) store.Store {
	out := map[string]func(b *testing.B) store.Store{
		"sqlite": func(b *testing.B) store.Store { return openStore(b, b.TempDir()) },
	}
	if serverDSN := os.Getenv("WARDGATE_TEST_POSTGRES"); serverDSN != "" {
		out["postgres"] = func(b *testing.B) store.Store { return openStore(b, schemaDSN(b, serverDSN)) }
	} else {
		b.Log("WARDGATE_TEST_POSTGRES is not set: benchmarking the SQLite baseline only")
	}
	return out
}

func openStore(b *testing.B, loc string) store.Store {
	b.Helper()
	s, err := store.Open(context.Background(), loc)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func each(b *testing.B, fn func(b *testing.B, s store.Store)) {
	bs := backends(b)
	for _, name := range []string{"sqlite", "postgres"} {
		open, ok := bs[name]
		if !ok {
			continue
		}
		b.Run(name, func(b *testing.B) { fn(b, open(b)) })
	}
}

func BenchmarkRecordRelease(b *testing.B) {
	each(b, func(b *testing.B, s store.Store) {
		r := storetest.Release("1.0.0", 'a', true, 0)
		b.ReportAllocs()
		for b.Loop() {
			if err := s.RecordRelease(b.Context(), r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func logItem(i int) store.LogItem {
	return store.LogItem{Envelope: fmt.Appendf(nil, `{"payloadType":"application/vnd.in-toto+json","payload":"verdict %d"}`, i),
		Artifact: storetest.Digest('a'), Device: fmt.Sprint("dev-", i%100), Time: storetest.At(i)}
}

func BenchmarkAppendLog(b *testing.B) {
	each(b, func(b *testing.B, s store.Store) {
		var seq counter
		i := 0
		b.ReportAllocs()
		for b.Loop() {
			i++
			if _, _, err := s.AppendLog(b.Context(), seq, []store.LogItem{logItem(i)}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkAppendLogParallel(b *testing.B) {
	each(b, func(b *testing.B, s store.Store) {
		var seq counter
		b.ReportAllocs()
		b.SetParallelism(8)
		b.ResetTimer() // the store's opening is not the write's cost
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				i++
				if _, _, err := s.AppendLog(context.Background(), seq, []store.LogItem{logItem(i)}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func BenchmarkAuditParallel(b *testing.B) {
	each(b, func(b *testing.B, s store.Store) {
		b.ReportAllocs()
		b.SetParallelism(8)
		b.ResetTimer() // the store's opening is not the write's cost
		b.RunParallel(func(pb *testing.PB) {
			rec := store.AuditRecord{Time: storetest.At(0), RequestID: "req", Token: "update-server-1", Role: "update-server",
				Action: "POST /v1/admissions", Target: storetest.Digest('a'), Status: 200, Outcome: "allow"}
			for pb.Next() {
				if err := s.Audit(context.Background(), rec); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func BenchmarkRecordInstallationParallel(b *testing.B) {
	each(b, func(b *testing.B, s store.Store) {
		b.ReportAllocs()
		b.SetParallelism(8)
		var n atomic.Int64
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				// Distinct devices: every installation is a new row.
				in := egress.Installation{Device: fmt.Sprint("dev-", n.Add(1)), Digest: storetest.Digest('a'), Product: "pump", Version: "1.0.0", Time: storetest.At(0)}
				if err := s.RecordInstallation(context.Background(), in); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkIngest1000 ingests batches of 1,000 events (one source each);
// events/s is the figure to quote.
func BenchmarkIngest1000(b *testing.B) {
	each(b, func(b *testing.B, s store.Store) {
		const perBatch = 1000
		ev := egress.Event{Time: storetest.At(0), DeviceName: "pump-17", DeviceID: "d17", ActionType: egress.ActionConnectionSuccess,
			RemoteIP: netip.MustParseAddr("52.1.1.1"), RemotePort: 443, RemoteURL: "telemetry.vendor.example", RemoteIPType: "Public",
			LocalIP: netip.MustParseAddr("10.0.0.17"), LocalPort: 50123, Protocol: "Tcp", Process: "updater", SentBytes: 1200, ReceivedBytes: 5300}
		batch := 0
		b.ReportAllocs()
		for b.Loop() {
			batch++
			src := egress.Source{Name: fmt.Sprint("batch-", batch), Digest: fmt.Sprintf("sha256:%064x", batch)}
			added, err := s.Ingest(b.Context(), src, func(add func(*egress.Event) error) error {
				for range perBatch {
					if err := add(&ev); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil || !added {
				b.Fatal(added, err)
			}
		}
		b.ReportMetric(float64(perBatch*b.N)/b.Elapsed().Seconds(), "events/s")
	})
}

// BenchmarkAppendLogTwoReplicas: 16 writers at once, half on each of two
// stores (two replicas) of one database, every append serialised on the
// log's checkpoint row across both. Compare with AppendLogParallel (one
// replica).
func BenchmarkAppendLogTwoReplicas(b *testing.B) {
	server := os.Getenv("WARDGATE_TEST_POSTGRES")
	if server == "" {
		b.Skip("WARDGATE_TEST_POSTGRES is not set: no PostgreSQL server for two replicas")
	}
	dsn := schemaDSN(b, server)
	replicas := []store.Store{openStore(b, dsn), openStore(b, dsn)}
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		s := replicas[next.Add(1)%2]
		var seq counter
		i := 0
		for pb.Next() {
			i++
			if _, _, err := s.AppendLog(context.Background(), seq, []store.LogItem{logItem(i)}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkAttestAppendReplicas: 16 writers at once spread over 1, 2 and 3
// replicas (stores of one database, each with attest's Merkle log and the
// same key), as `wardgate serve` replicas append verdicts: each replica
// group-commits its writers' appends, and the replicas take turns at the
// log's checkpoint row; a replica whose turn follows another's continues
// the tree from the stored nodes. ns/op is the log's time per verdict,
// all replicas together.
func BenchmarkAttestAppendReplicas(b *testing.B) {
	server := os.Getenv("WARDGATE_TEST_POSTGRES")
	if server == "" {
		b.Skip("WARDGATE_TEST_POSTGRES is not set: no PostgreSQL server for replicas")
	}
	signer := newSigner(b)
	for _, n := range []int{1, 2, 3} {
		b.Run(fmt.Sprint("replicas=", n), func(b *testing.B) {
			dsn := schemaDSN(b, server)
			var logs []*attest.Log
			for range n {
				l, err := attest.OpenLog(context.Background(), openStore(b, dsn), signer, "wardgate/bench")
				if err != nil {
					b.Fatal(err)
				}
				logs = append(logs, l)
			}
			var next, seq atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				l := logs[int(next.Add(1))%n]
				for pb.Next() {
					i := int(seq.Add(1))
					if _, err := l.Append(context.Background(), logItem(i)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
