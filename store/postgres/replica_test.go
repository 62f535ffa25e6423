package postgres_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/wardgate/wardgate/attest"
	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/store"
	"github.com/wardgate/wardgate/store/storetest"
)

func newSigner(t testing.TB) *attest.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := signature.LoadECDSASignerVerifier(k, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	s, err := attest.NewSigner(sv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Two replicas (two stores, each with its own pools, as two processes
// have) append to one verdict log at once through attest's real Merkle
// log: the entries form one gap-free sequence, each envelope exactly
// once, and every checkpoint either replica handed out is a prefix of the
// final tree (a consistency proof from it verifies).
func TestReplicasOneSequence(t *testing.T) {
	t.Parallel()
	dsn := freshSchema(t)
	signer := newSigner(t)
	const origin = "wardgate/replica-test"
	replicas := []*attest.Log{}
	for range 2 {
		l, err := attest.OpenLog(t.Context(), openDB(t, dsn), signer, origin)
		if err != nil {
			t.Fatal(err)
		}
		replicas = append(replicas, l)
	}
	const perReplica = 60
	type seen struct {
		entry store.LogEntry
		cp    store.Checkpoint
	}
	var mu sync.Mutex
	var got []seen
	var wg sync.WaitGroup
	for r, l := range replicas {
		for i := range perReplica {
			done := l.Expect()
			wg.Go(func() {
				defer done()
				env := fmt.Appendf(nil, `{"replica":%d,"verdict":%d}`, r, i)
				sum := sha256.Sum256(env)
				e, err := l.Append(t.Context(), store.LogItem{Envelope: env, Artifact: fmt.Sprintf("sha256:%x", sum), Device: fmt.Sprint("dev-", i%4), Time: time.Now().UTC()})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				got = append(got, seen{e, l.Checkpoint()})
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	// A third process opens the log afterwards: it reads the final head.
	final, err := attest.OpenLog(t.Context(), openDB(t, dsn), signer, origin)
	if err != nil {
		t.Fatal(err)
	}
	head := final.Checkpoint()
	const n = 2 * perReplica
	if head.Size != n {
		t.Fatalf("final checkpoint of size %d, want %d", head.Size, n)
	}
	byIndex := map[uint64][]byte{}
	for _, s := range got {
		if prev, dup := byIndex[s.entry.Index]; dup {
			t.Fatalf("index %d given twice: %s and %s", s.entry.Index, prev, s.entry.Envelope)
		}
		byIndex[s.entry.Index] = s.entry.Envelope
	}
	var stored int
	if err := final.Entries(t.Context(), store.LogFilter{}, func(e store.LogEntry) error {
		if uint64(stored) != e.Index {
			return fmt.Errorf("entry %d where %d was due: a hole", e.Index, stored)
		}
		if !bytes.Equal(byIndex[e.Index], e.Envelope) {
			return fmt.Errorf("entry %d is %s, appended as %s", e.Index, e.Envelope, byIndex[e.Index])
		}
		p, err := final.InclusionProof(t.Context(), e.Index, head.Size)
		if err != nil {
			return err
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, e.Index, head.Size, e.LeafHash, p, head.Root); err != nil {
			return fmt.Errorf("entry %d: %w", e.Index, err)
		}
		stored++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if stored != n {
		t.Fatalf("%d entries stored, want %d", stored, n)
	}
	for _, s := range got {
		cp := s.cp
		if cp.Size <= s.entry.Index {
			t.Fatalf("entry %d answered with a checkpoint of size %d", s.entry.Index, cp.Size)
		}
		p, err := final.ConsistencyProof(t.Context(), cp.Size, head.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, cp.Size, head.Size, p, cp.Root, head.Root); err != nil {
			t.Fatalf("checkpoint of size %d is not a prefix of the final tree: %v", cp.Size, err)
		}
	}
}

// Two replicas handed the same telemetry batch at once (a sensor that
// retried against another replica): it is ingested once. The second
// waits on the first's source row, and adds nothing once the first
// commits.
func TestReplicasIngestOnce(t *testing.T) {
	t.Parallel()
	dsn := freshSchema(t)
	a, b := openDB(t, dsn), openDB(t, dsn)
	ev := egress.Event{Time: storetest.At(0), DeviceName: "pump-1", ActionType: egress.ActionConnectionSuccess}
	release, scanning := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		added, err := a.Ingest(t.Context(), egressSource, func(add func(*egress.Event) error) error {
			if err := add(&ev); err != nil {
				return err
			}
			close(scanning)
			<-release // the source row is inserted, not committed
			return nil
		})
		if err == nil && !added {
			err = errors.New("the first ingest added nothing")
		}
		first <- err
	}()
	select {
	case <-scanning: // the first holds the source's row
	case err := <-first:
		t.Fatalf("the first ingest ended before its scan: %v", err)
	}
	second := make(chan error, 1)
	go func() {
		added, err := b.Ingest(t.Context(), egressSource, func(add func(*egress.Event) error) error { return add(&ev) })
		if err == nil && added {
			err = errors.New("the second ingest of the same batch added it again")
		}
		second <- err
	}()
	// Wait until the second is blocked on the first's row.
	waitFor(t, dsn, `SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO telemetry_sources%'`)
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := a.Events(t.Context(), func(*egress.Event) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("%d events stored, %v; want 1", n, err)
	}
}

// waitFor polls a boolean query on its own connection until it is true,
// for up to 20 seconds.
func waitFor(t *testing.T, dsn, query string) {
	t.Helper()
	c, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var ok bool
		if err := c.QueryRow(t.Context(), query).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		if ok {
			return
		}
	}
	t.Fatalf("not true after 20 s: %s", query)
}
