package bus_test

import (
	"context"
	"os"
	"testing"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/egress/bus"
)

// TestSmokeExternalNATS runs one batch through the NATS server named by
// WARDGATE_TEST_NATS (nats://HOST:PORT), on streams and a durable of its
// own, deleted afterwards.
func TestSmokeExternalNATS(t *testing.T) {
	url := os.Getenv("WARDGATE_TEST_NATS")
	if url == "" {
		t.Skip("WARDGATE_TEST_NATS is not set (nats://HOST:PORT of a JetStream server): skipping the external NATS smoke test")
	}
	r := newRig(t)
	r.url = url
	bs, want := batches(t, r.inv, 1, 200)
	_, js := r.connect()
	stream, dead := "WARDGATE_SMOKE_"+t.Name(), "WARDGATE_SMOKE_DEAD_"+t.Name()
	t.Cleanup(func() {
		ctx := context.Background() // t.Context is done by now
		_ = js.DeleteStream(ctx, stream)
		_ = js.DeleteStream(ctx, dead)
	})
	for _, s := range []string{stream, dead} {
		_ = js.DeleteStream(t.Context(), s)
	}
	c := r.consumer(js, bus.WithStreams(stream, dead), bus.WithDurable("smoke"))
	r.publish(js, bus.Subject(egress.FormatDefenderJSON), bs[0])
	stop := run(c)
	settled(t, js, c)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := r.storedEvents(); got != want {
		t.Fatalf("stored %d events, want %d", got, want)
	}
}
