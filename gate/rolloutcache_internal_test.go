package gate

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/wardgate/wardgate/egress"
)

// Announcements of installations recorded elsewhere (stale) read the view
// again in the background: none before the first read, one at once, and
// those arriving during a read coalesced into exactly one more.
func TestRolloutCacheStaleCoalesces(t *testing.T) {
	var mu sync.Mutex
	reads := 0
	var rows []egress.Installation
	gateCh := make(chan struct{}) // a read after the first waits for a token
	read := func(ctx context.Context) ([]egress.Installation, error) {
		mu.Lock()
		reads++
		n, out := reads, append([]egress.Installation(nil), rows...)
		mu.Unlock()
		if n > 1 {
			<-gateCh
		}
		return out, nil
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return reads
	}
	c := newRolloutCache(read, time.Hour)
	c.stale() // never read: nothing to refresh, the first read sees it
	time.Sleep(50 * time.Millisecond)
	if n := count(); n != 0 {
		t.Fatalf("%d reads before the first admission", n)
	}
	if err := c.ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d reads after the first ensure, want 1", n)
	}
	d := "sha256:0000000000000000000000000000000000000000000000000000000000000001"
	mu.Lock()
	rows = []egress.Installation{{Device: "Pump-1", Digest: d, Time: time.Unix(100, 0)}}
	mu.Unlock()
	c.stale() // starts a read, which waits
	waitReads := func(want int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); count() < want; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d reads, want %d", count(), want)
			}
		}
	}
	waitReads(2)
	c.stale() // during the read: coalesced
	c.stale()
	c.stale()
	gateCh <- struct{}{} // the second read ends; one more starts
	waitReads(3)
	gateCh <- struct{}{}
	time.Sleep(kickGap + 100*time.Millisecond)
	if n := count(); n != 3 {
		t.Fatalf("%d reads, want 3 (the first, one per announcement outside a read, one for those during it)", n)
	}
	if at, ok := (installView{c: c, digest: d}).InstalledAt("pump-1"); !ok || !at.Equal(time.Unix(100, 0)) {
		t.Fatalf("view after the reads: %v %v", at, ok)
	}
}
