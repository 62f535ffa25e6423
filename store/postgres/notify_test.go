package postgres_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wardgate/wardgate/store"
	"github.com/wardgate/wardgate/store/storetest"
)

// The listener's connection is killed by the server: the feed redials,
// says so with a reset (what was committed meanwhile may be lost), and
// delivers what is committed after.
func TestChangeFeedReconnects(t *testing.T) {
	t.Parallel()
	dsn := freshSchema(t)
	a, b := openDB(t, dsn), openDB(t, dsn)
	ch := b.Subscribe(t.Context())
	want := func(kind store.ChangeKind, key string) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case c := <-ch:
				if c.Kind == store.ChangeSync {
					continue
				}
				if c.Kind != kind || c.Key != key {
					t.Fatalf("change %+v, want %s %s", c, kind, key)
				}
				return
			case <-deadline:
				t.Fatalf("no %s change within 10 s", kind)
			}
		}
	}
	want(store.ChangeReset, "")
	if err := a.Publish(t.Context(), store.Change{Kind: store.ChangeTrust, Key: "one"}); err != nil {
		t.Fatal(err)
	}
	want(store.ChangeTrust, "one")
	admin(t, serverDSN(t), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = $1`,
		`LISTEN `+pgx.Identifier{b.Channel()}.Sanitize())
	want(store.ChangeReset, "")
	if err := a.PutEvaluation(t.Context(), store.Evaluation{Digest: storetest.Digest('f'), Vendor: "acme", Product: "pump", Version: "1", RecordedAt: storetest.At(0), Record: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	want(store.ChangeEvaluation, storetest.Digest('f'))
}

// BenchmarkChangeDelivery is the time from a change announced on one
// store (a replica) to its delivery on another's subscription: the
// replicas' cache staleness in the usual case (one op: one Publish, then
// the wait for it on the other side).
//
//	WARDGATE_TEST_POSTGRES=… go test ./store/postgres -run '^$' -bench ChangeDelivery -count 5
func BenchmarkChangeDelivery(b *testing.B) {
	dsn := freshSchema(b)
	a, other := openDB(b, dsn), openDB(b, dsn)
	ch := other.Subscribe(b.Context())
	for c := range ch {
		if c.Kind == store.ChangeReset {
			break
		}
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		key := fmt.Sprintf("bench-%d", i)
		if err := a.Publish(b.Context(), store.Change{Kind: store.ChangeTrust, Key: key}); err != nil {
			b.Fatal(err)
		}
		for c := range ch {
			if c.Kind == store.ChangeTrust && c.Key == key {
				break
			}
		}
	}
}
