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

// A quarantine raised by telemetry from the bus denies the next admission
// through the HTTP gate, as one posted to /v1/telemetry does.
func TestBusTelemetryQuarantines(t *testing.T) {
	e := newEnv(t)
	e.evaluate(RoleCI)
	e.ingestInstallations()
	if a := e.admit("HOSP-IOT-PUMP-30", "infusion-pump", "2.3.0"); !a.Allow || a.RiskState != "clean" {
		t.Fatalf("before telemetry: %+v", a)
	}
	ns := natstest.Start(t)
	nc, err := bus.Dial(ns.URL, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	c, err := bus.New(t.Context(), js, e.srv.IngestTelemetry, bus.WithMaxBytes(4<<20))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	tel, err := os.ReadFile(fleet + "defender.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	// The fixture is over NATS's 1 MiB payload: publish it in batches of
	// lines, as a sensor would.
	lines := strings.SplitAfter(string(tel), "\n")
	n := 0
	for i := 0; i < len(lines); i += 2000 {
		if _, err := js.Publish(t.Context(), bus.Subject(egress.FormatDefenderJSON), []byte(strings.Join(lines[i:min(i+2000, len(lines))], ""))); err != nil {
			t.Fatal(err)
		}
		n++
	}
	deadline := time.Now().Add(30 * time.Second)
	for c.Stats().Batches < uint64(n) {
		if time.Now().After(deadline) {
			t.Fatalf("bus stats %+v, want %d batches", c.Stats(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	a := e.admit("HOSP-IOT-PUMP-30", "infusion-pump", "2.3.0")
	if a.Allow || !a.Evaluated || a.RiskState != "quarantined" || !slices.Equal(codes(a.Decision), []string{"quarantined"}) ||
		!strings.Contains(a.Decision.Violations[0].Message, "raw.githubusercontent.com") {
		t.Fatalf("after bus telemetry: %+v", a)
	}
	// The same telemetry posted to the API is recognised: one path, one key.
	r := e.do("POST", "/v1/telemetry", RoleSensor, "application/x-ndjson", strings.NewReader(strings.Join(lines[:min(2000, len(lines))], "")), TelemetryFormatHeader, "defender-json")
	var tr TelemetryResponse
	r.json(t, &tr)
	if r.status != 200 || tr.Added || tr.Stored != 0 {
		t.Fatalf("API after bus: %d %s", r.status, r.body)
	}
	if s := c.Stats(); s.Dead != 0 || s.Duplicates != 0 || s.Retried != 0 {
		t.Fatalf("bus stats %+v", s)
	}
}
