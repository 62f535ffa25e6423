package server

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/egress/bus"
	"github.com/wardgate/wardgate/internal/natstest"
)

// BenchmarkBusQuarantineDelay: the delay from a compromising event
// published on the bus to the quarantine being visible at admission
// (POST /v1/admissions over HTTP answers quarantined). Each iteration is
// one sample on a fresh gate (built outside the timer) that already holds
// the fleet fixture's clean telemetry (9,521 lines through the bus); the
// timed part publishes the fixture's 12 compromising lines and polls
// admissions until one is denied. Reports p50 and p99 over the samples.
func BenchmarkBusQuarantineDelay(b *testing.B) {
	tel, err := os.ReadFile(fleet + "defender.jsonl")
	if err != nil {
		b.Fatal(err)
	}
	var clean, bad []string
	for _, l := range strings.SplitAfter(string(tel), "\n") {
		if strings.Contains(l, "raw.githubusercontent.com") {
			bad = append(bad, l)
		} else if l != "" {
			clean = append(clean, l)
		}
	}
	ns := natstest.Start(b)
	var samples []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		e := newEnv(b)
		e.evaluate(RoleCI)
		e.ingestInstallations()
		nc, err := bus.Dial(ns.URL, "bench")
		if err != nil {
			b.Fatal(err)
		}
		js, err := jetstream.New(nc)
		if err != nil {
			b.Fatal(err)
		}
		_ = js.DeleteStream(b.Context(), bus.DefaultStream) // a fresh queue per sample
		c, err := bus.New(b.Context(), js, e.srv.IngestTelemetry)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(b.Context())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		n := uint64(0)
		for j := 0; j < len(clean); j += 2000 {
			if _, err := js.Publish(b.Context(), bus.Subject(egress.FormatDefenderJSON), []byte(strings.Join(clean[j:min(j+2000, len(clean))], ""))); err != nil {
				b.Fatal(err)
			}
			n++
		}
		for c.Stats().Batches < n {
			time.Sleep(time.Millisecond)
		}
		if a := e.admit("HOSP-IOT-PUMP-30", "infusion-pump", "2.3.0"); !a.Allow {
			b.Fatalf("clean telemetry denied: %+v", a)
		}
		b.StartTimer()
		t0 := time.Now()
		if _, err := js.Publish(b.Context(), bus.Subject(egress.FormatDefenderJSON), []byte(strings.Join(bad, ""))); err != nil {
			b.Fatal(err)
		}
		for {
			a := e.admit("HOSP-IOT-PUMP-30", "infusion-pump", "2.3.0")
			if !a.Allow {
				if a.RiskState != "quarantined" || !slices.Equal(codes(a.Decision), []string{"quarantined"}) {
					b.Fatalf("denied, not quarantined: %+v", a)
				}
				break
			}
			if time.Since(t0) > 30*time.Second {
				b.Fatal("no quarantine within 30s")
			}
		}
		samples = append(samples, time.Since(t0))
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		nc.Close()
		b.StartTimer()
	}
	slices.Sort(samples)
	q := func(p float64) time.Duration { return samples[min(len(samples)-1, int(p*float64(len(samples))))] }
	b.ReportMetric(float64(q(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(q(0.99).Microseconds())/1000, "p99-ms")
}
