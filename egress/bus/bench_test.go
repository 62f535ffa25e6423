package bus_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/egress/bus"
)

// BenchmarkBusIngest: sustained events/s from publish to committed. Each
// iteration publishes the fleet fixture's Defender telemetry (9,533
// lines) as batches of 1,000 lines on a real JetStream server (in
// process, file store) and waits until a Consumer has committed every
// batch to a real SQLite store; the batches are made unique per
// iteration (a trailing marker line) so none is a duplicate.
func BenchmarkBusIngest(b *testing.B) {
	r := newRig(b)
	bs, want := batches(b, r.inv, 10, 1000)
	_, js := r.connect()
	c := r.consumer(js)
	stop := run(c)
	defer func() {
		if err := stop(); err != nil {
			b.Fatal(err)
		}
	}()
	subject := bus.Subject(egress.FormatDefenderJSON)
	var events uint64
	i := 0
	start := time.Now()
	for b.Loop() {
		i++
		for _, body := range bs {
			msg := append(append([]byte{}, body...), fmt.Sprintf("#bench %d\n", i)...)
			if _, err := js.PublishAsync(subject, msg); err != nil {
				b.Fatal(err)
			}
		}
		events += uint64(want)
		for c.Stats().Events < events {
			time.Sleep(200 * time.Microsecond)
		}
	}
	el := time.Since(start)
	if s := c.Stats(); s.Dead != 0 || s.Duplicates != 0 {
		b.Fatalf("stats %+v", s)
	}
	b.ReportMetric(float64(events)/el.Seconds(), "events/s")
}

// BenchmarkDirectIngest is BenchmarkBusIngest's baseline: the same
// batches through egress.Ingest into the same kind of store, no bus.
func BenchmarkDirectIngest(b *testing.B) {
	r := newRig(b)
	bs, want := batches(b, r.inv, 10, 1000)
	var events uint64
	i := 0
	start := time.Now()
	for b.Loop() {
		i++
		for j, body := range bs {
			msg := append(append([]byte{}, body...), fmt.Sprintf("#bench %d\n", i)...)
			src := egress.Source{Name: "bench", Digest: fmt.Sprintf("bench-%d-%d", i, j)}
			res, err := r.ingest(b.Context(), src, bytes.NewReader(msg), egress.FormatDefenderJSON)
			if err != nil || !res.Added {
				b.Fatalf("%+v %v", res, err)
			}
			events += uint64(res.Stored)
		}
	}
	if events != uint64(i)*uint64(want) {
		b.Fatalf("stored %d events, want %d", events, uint64(i)*uint64(want))
	}
	b.ReportMetric(float64(events)/time.Since(start).Seconds(), "events/s")
}
