package server

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardgate/wardgate/attest"
	"github.com/wardgate/wardgate/store"
)

// Issue 13, item 1, through the API: while auditors export the evidence of
// a log of a few thousand entries, five exports at once on a reader pool of
// two connections, every admission is still answered allow within its
// budget (2 s).
func TestExportsDoNotStopAdmissions(t *testing.T) {
	// Five export slots, so that the store's own bound on exports is what
	// keeps its two reader connections from being all taken.
	e := newEnvStore(t, []store.Option{store.WithReadConns(2)}, func(_ *Deps, o *[]Option) {
		*o = append(*o, WithLimits(Limits{MaxUploadBytes: 4 << 20, MaxTelemetryBytes: 4 << 20, MaxJSONBytes: 4096, EvaluateWait: 200 * time.Millisecond,
			ReadTimeout: 2 * time.Second, Exports: 5, ExportWait: time.Minute}))
	})
	e.evaluate(RoleCI)
	// A log of 2,000 more signed verdicts.
	s := e.log.Signer()
	items := make([]attest.Item, 0, 500)
	for i := range 2000 {
		st, err := attest.NewStatement(attest.Verdict{SubjectName: "fw.bin", SubjectDigest: map[string]string{"sha256": strings.TrimPrefix(e.digest, "sha256:")},
			Passed: true, DeviceID: fmt.Sprintf("OLD-%d", i), Time: time.Date(2026, 11, 1, 0, 0, i, 0, time.UTC)}, "test")
		if err != nil {
			t.Fatal(err)
		}
		env, err := s.SignStatement(t.Context(), st)
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, attest.Item{Envelope: env, Artifact: e.digest, Device: fmt.Sprintf("OLD-%d", i)})
		if len(items) == cap(items) {
			if _, err := e.log.AppendBatch(t.Context(), items); err != nil {
				t.Fatal(err)
			}
			items = items[:0]
		}
	}
	var running atomic.Int32
	var wg sync.WaitGroup
	for i := range 5 {
		running.Add(1)
		wg.Go(func() {
			defer running.Add(-1)
			if r := e.do("GET", "/v1/evidence", RoleAuditor, "", nil); r.status != 200 || r.header.Get("X-Wardgate-Entries") == "" {
				t.Errorf("export %d: %d %s", i, r.status, r.body)
			}
		})
	}
	const budget = 2 * time.Second // DefaultLimits.AdmitTimeout
	n := 0
	for running.Load() > 0 {
		start := time.Now()
		done := make(chan resp, 1)
		go func() {
			done <- e.postJSON("/v1/admissions", RoleUpdateServer, map[string]any{"digest": e.digest, "device": map[string]string{"id": fmt.Sprintf("NEW-%d", n), "class": "infusion-pump"}})
		}()
		var r resp
		select {
		case r = <-done:
		case <-time.After(budget + 2*time.Second):
			t.Fatalf("admission %d during the exports: no answer after %s (budget %s)", n, time.Since(start).Round(time.Millisecond), budget)
		}
		var a AdmissionResponse
		r.json(t, &a)
		if r.status != 200 || !a.Allow {
			t.Fatalf("admission %d during the exports, after %s: %d %s", n, time.Since(start).Round(time.Millisecond), r.status, r.body)
		}
		n++
		time.Sleep(5 * time.Millisecond)
	}
	wg.Wait()
	if n < 5 {
		t.Fatalf("only %d admissions ran while the exports did: the test proves nothing", n)
	}
}
