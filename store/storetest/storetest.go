// Package storetest holds the behaviour every store backend must show, as
// one suite each backend runs against itself (on real files or a real
// server, never a fake).
//
// Imports: the standard library (testing), store and egress. Test helper
// only: no production code imports it.
package storetest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/store"
)

// Digest returns a valid digest made of one repeated hex character.
func Digest(c byte) string { return "sha256:" + strings.Repeat(string(c), 64) }

// IngestAll ingests evs as one batch named digest, which must be new.
func IngestAll(t testing.TB, s egress.EventStore, digest string, evs []egress.Event) {
	t.Helper()
	added, err := s.Ingest(t.Context(), egress.Source{Name: digest, Digest: digest}, func(add func(*egress.Event) error) error {
		for i := range evs {
			if err := add(&evs[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || !added {
		t.Fatalf("ingest %s: %v, %v", digest, added, err)
	}
}

// At returns 2026-11-28T12:00:00Z plus the given minutes.
func At(minutes int) time.Time {
	return time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC).Add(time.Duration(minutes) * time.Minute)
}

// Location makes a new, empty store location for one test and returns a
// function that opens it: called twice, it gives two handles on the same
// store (two processes, or two replicas); called after Close, the store as
// it was left. The suite closes what it opens.
// The options are the backend's, for this location's handles.
type Location func(t *testing.T, opts ...store.Option) (open func() store.Store)

// Run runs the whole suite.
func Run(t *testing.T, loc Location) {
	t.Run("ledger", func(t *testing.T) { RunLedger(t, loc) })
	t.Run("evaluations", func(t *testing.T) { runEvaluations(t, loc) })
	t.Run("blobs", func(t *testing.T) { runBlobs(t, loc) })
	t.Run("log", func(t *testing.T) { runLog(t, loc) })
	t.Run("telemetry", func(t *testing.T) { runTelemetry(t, loc) })
	t.Run("event order", func(t *testing.T) { runEventOrder(t, loc) })
	t.Run("groups", func(t *testing.T) { runGroups(t, loc) })
	t.Run("installations", func(t *testing.T) { runInstallations(t, loc) })
	t.Run("tokens", func(t *testing.T) { runTokens(t, loc) })
	t.Run("audit", func(t *testing.T) { runAudit(t, loc) })
	t.Run("ping and close", func(t *testing.T) { runPingClose(t, loc) })
	t.Run("changes", func(t *testing.T) { RunChanges(t, loc) })
}

// fresh opens a new store and closes it when the test ends.
func fresh(t *testing.T, loc Location) store.Store {
	t.Helper()
	return opened(t, loc(t))
}

func opened(t *testing.T, open func() store.Store) store.Store {
	t.Helper()
	s := open()
	t.Cleanup(func() { s.Close() })
	return s
}

func cancelled(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	return ctx
}

func runPingClose(t *testing.T, loc Location) {
	open := loc(t)
	s := open()
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if err := s.Audit(ctx, audit(0)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// After Close, a write fails at once, whatever its context.
	if err := s.Audit(t.Context(), audit(1)); err == nil {
		t.Fatal("Audit after Close succeeded")
	}
	// What was committed before Close is there on the next open.
	s2 := opened(t, open)
	got, err := s2.AuditLog(t.Context(), store.AuditFilter{})
	if err != nil || len(got) != 1 || got[0].RequestID != "req-0" {
		t.Fatalf("after reopen: %+v, %v", got, err)
	}
	if err := s2.Audit(cancelled(t), audit(2)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Audit with a cancelled context: %v, want context.Canceled", err)
	}
}
