package attest

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardgate/wardgate/store"
	"github.com/wardgate/wardgate/store/sqlite"
)

// Issue 13, item 1: concurrent evidence exports of a large log took every
// pooled connection (a cursor over the entries, and nested node reads for
// the proofs) and every append waited behind them, past its budget. Here,
// with a reader pool of two, five exports of a 2,000-entry log run at once
// while verdicts are appended with the admission budget (2 s): every
// append completes within it, and every export completes and verifies.
func TestExportsDoNotStarveAppends(t *testing.T) {
	const (
		entries = 2000
		exports = 5
		budget  = 2 * time.Second
	)
	s := newSigner(t)
	dir := t.TempDir()
	st, err := sqlite.Open(t.Context(), dir, store.WithReadConns(2))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l, err := OpenLog(t.Context(), st, s, "")
	if err != nil {
		t.Fatal(err)
	}
	items := make([]Item, 500)
	for b := range entries / len(items) {
		for i := range items {
			env, v := envelopeFor(t, s, b*len(items)+i)
			items[i] = Item{Envelope: env, Artifact: "sha256:" + v.SubjectDigest["sha256"], Device: v.DeviceID, Time: v.Time}
		}
		if _, err := l.AppendBatch(t.Context(), items); err != nil {
			t.Fatal(err)
		}
	}
	var running atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, exports)
	for i := range exports {
		running.Add(1)
		wg.Go(func() {
			defer running.Add(-1)
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			out := filepath.Join(t.TempDir(), "pack")
			if _, err := l.Export(ctx, out, ExportOptions{}); err != nil {
				errs <- fmt.Errorf("export %d: %w", i, err)
				return
			}
			pub, err := s.PublicKeyPEM()
			if err != nil {
				errs <- err
				return
			}
			rep, err := VerifyPack(t.Context(), out, pub, nil)
			if err != nil || !rep.Intact || rep.Entries < entries {
				errs <- fmt.Errorf("export %d: %v; intact %v, %d entries, %d problems", i, err, rep.Intact, rep.Entries, len(rep.Problems))
			}
		})
	}
	// Appends, one after another, while the exports run.
	var during, slowest time.Duration
	n := 0
	for running.Load() > 0 {
		env, v := envelopeFor(t, s, entries+n)
		ctx, cancel := context.WithTimeout(t.Context(), budget)
		start := time.Now()
		done := make(chan error, 1)
		go func() {
			_, err := l.Append(ctx, Item{Envelope: env, Artifact: "sha256:" + v.SubjectDigest["sha256"], Device: v.DeviceID, Time: v.Time})
			done <- err
		}()
		var err error
		select {
		case err = <-done:
		case <-time.After(budget + time.Second):
			err = errors.New("Append ignored its context")
		}
		el := time.Since(start)
		cancel()
		if err != nil {
			t.Fatalf("append %d during the exports, after %s (budget %s): %v", n, el.Round(time.Millisecond), budget, err)
		}
		slowest = max(slowest, el)
		during += el
		n++
		time.Sleep(5 * time.Millisecond)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n < 5 {
		t.Fatalf("only %d appends ran while the exports did: the test proves nothing", n)
	}
	t.Logf("%d appends during %d exports; slowest %s, mean %s", n, exports, slowest.Round(time.Millisecond), (during / time.Duration(n)).Round(time.Millisecond))
}
