package postgres_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/transparency-dev/merkle/compact"

	"github.com/wardgate/wardgate/attest"
	"github.com/wardgate/wardgate/store"
	"github.com/wardgate/wardgate/store/postgres"
)

// probe is a replica's log that checks, at every append, what the store
// read with the lock: exactly the compact range at the head when another
// replica appended since this one's last write, nothing when the head is
// its own.
type probe struct {
	t    *testing.T
	log  *attest.Log
	want func(head store.Checkpoint) []store.NodeID
}

func (p *probe) Sequence(ctx context.Context, head store.Checkpoint, nodes store.NodeReader, items []store.LogItem) (store.LogBatch, error) {
	got := slices.SortedFunc(maps.Keys(postgres.Prefetched(nodes)), cmpNode)
	want := slices.SortedFunc(slices.Values(p.want(head)), cmpNode)
	if !slices.Equal(got, want) {
		p.t.Errorf("at size %d the append read nodes %v, want %v", head.Size, got, want)
	}
	return p.log.Sequence(ctx, head, nodes, items)
}

func cmpNode(a, b store.NodeID) int {
	if a.Level != b.Level {
		return int(a.Level) - int(b.Level)
	}
	return int(a.Index) - int(b.Index)
}

func rangeNodes(head store.Checkpoint) []store.NodeID {
	var out []store.NodeID
	for _, id := range compact.RangeNodes(0, head.Size, nil) {
		out = append(out, store.NodeID{Level: id.Level, Index: id.Index})
	}
	return out
}

// An append reads the tree at the head in the round trip that takes the
// log's lock: after another replica's appends, the nodes a sequencer
// rebuilds its tree from (and only those); after its own, none. The log
// the appends make stays one verifiable log.
func TestAppendReadsHeadNodesWithTheLock(t *testing.T) {
	t.Parallel()
	dsn := freshSchema(t)
	signer := newSigner(t)
	const origin = "wardgate/head-nodes-test"
	other, err := attest.OpenLog(t.Context(), openDB(t, dsn), signer, origin)
	if err != nil {
		t.Fatal(err)
	}
	db := openDB(t, dsn)
	mine, err := attest.OpenLog(t.Context(), db, signer, origin)
	if err != nil {
		t.Fatal(err)
	}
	item := func(s string) store.LogItem {
		return store.LogItem{Envelope: []byte(s), Artifact: "sha256:" + fmt.Sprintf("%064x", len(s))}
	}
	n := 0
	for step := 1; step <= 9; step++ {
		var batch []store.LogItem
		for range step {
			n++
			batch = append(batch, item(fmt.Sprint("other ", n)))
		}
		if _, err := other.AppendBatch(t.Context(), batch); err != nil {
			t.Fatal(err)
		}
		// The head is the other replica's: its compact range is read.
		p := &probe{t: t, log: mine, want: rangeNodes}
		if _, _, err := db.AppendLog(t.Context(), p, []store.LogItem{item(fmt.Sprint("mine ", step))}); err != nil {
			t.Fatal(err)
		}
		// The head is this replica's own: nothing is read.
		p.want = func(store.Checkpoint) []store.NodeID { return nil }
		if _, _, err := db.AppendLog(t.Context(), p, []store.LogItem{item(fmt.Sprint("mine again ", step))}); err != nil {
			t.Fatal(err)
		}
	}
	// 45 entries of the other replica, 18 of this one, in one tree whose
	// root the stored nodes rebuild (reopening checks it).
	head, err := db.LogHead(t.Context())
	if err != nil || head.Size != 45+18 {
		t.Fatalf("head %d, %v", head.Size, err)
	}
	if _, err := attest.OpenLog(t.Context(), openDB(t, dsn), signer, origin); err != nil {
		t.Fatalf("reopen: %v", err)
	}
}
