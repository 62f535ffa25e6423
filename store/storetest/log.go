package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wardgate/wardgate/store"
)

// chain is a Sequencer for the suite: stateless, it continues the log from
// whatever head it is given (as a replica that has not seen the other
// replicas' appends must), with each leaf as node (0, index) and the root
// as a hash chain. It is not a Merkle tree (that is attest's): it shows
// what the store does with what a sequencer returns.
type chain struct {
	origin string
	// shift, when set, numbers the entries wrongly.
	shift uint64
	// fail, when set, fails the sequencing.
	fail error
}

func (c *chain) Sequence(ctx context.Context, head store.Checkpoint, nodes store.NodeReader, items []store.LogItem) (store.LogBatch, error) {
	if c.fail != nil {
		return store.LogBatch{}, c.fail
	}
	if head.Size > 0 {
		// The stored tree is readable inside the append.
		last, err := nodes.LogNodes(ctx, []store.NodeID{{Level: 0, Index: head.Size - 1}})
		if err != nil {
			return store.LogBatch{}, fmt.Errorf("read the last leaf: %w", err)
		}
		if len(last[0]) != sha256.Size {
			return store.LogBatch{}, errors.New("the last leaf is not a hash")
		}
	}
	var b store.LogBatch
	root := head.Root
	if head.Note == nil {
		empty := sha256.Sum256(nil)
		root = empty[:]
	}
	for i, it := range items {
		idx := head.Size + uint64(i) + c.shift
		leaf := sha256.Sum256(it.Envelope)
		var refs []string
		for _, bl := range it.Blobs {
			refs = append(refs, bl.Digest())
			b.Blobs = append(b.Blobs, bl)
		}
		b.Entries = append(b.Entries, store.LogEntry{Index: idx, LeafHash: leaf[:], Envelope: it.Envelope, Artifact: it.Artifact, Device: it.Device, Time: it.Time.UTC(), Refs: refs})
		b.Nodes = append(b.Nodes, store.LogNode{ID: store.NodeID{Level: 0, Index: idx}, Hash: leaf[:]})
		r := sha256.Sum256(append(slices.Clone(root), leaf[:]...))
		root = r[:]
	}
	size := head.Size + uint64(len(items))
	if head.Note != nil && len(items) == 0 {
		return store.LogBatch{Checkpoint: head}, nil
	}
	b.Checkpoint = store.Checkpoint{Origin: c.origin, Size: size, Root: root, Note: fmt.Appendf(nil, "%s\n%d\n%x\n", c.origin, size, root)}
	return b, nil
}

func item(i int) store.LogItem {
	return store.LogItem{Envelope: fmt.Appendf(nil, `{"payload":"verdict %d"}`, i), Artifact: Digest("abc"[i%3]), Device: fmt.Sprintf("dev-%d", i%5), Time: At(i)}
}

func runLog(t *testing.T, loc Location) {
	t.Run("first checkpoint", func(t *testing.T) {
		s := fresh(t, loc)
		seq := &chain{origin: "test/log"}
		if _, err := s.LogHead(t.Context()); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("LogHead of a new log: %v, want ErrNotFound", err)
		}
		for range 2 {
			es, cp, err := s.AppendLog(t.Context(), seq, nil)
			if err != nil || len(es) != 0 || cp.Size != 0 || string(cp.Note) != "test/log\n0\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n" {
				t.Fatalf("AppendLog with no items: %v %+v %v", es, cp, err)
			}
		}
		if h, err := s.LogHead(t.Context()); err != nil || h.Size != 0 || h.Origin != "test/log" {
			t.Fatalf("LogHead = %+v, %v", h, err)
		}
	})
	t.Run("commits reported", func(t *testing.T) {
		s := fresh(t, loc)
		r, ok := s.(store.CommitReporter)
		if !ok {
			t.Skipf("%T reports no commits", s)
		}
		total := func() (commits, writes uint64) {
			for _, c := range r.CommitStats() {
				var n uint64
				for _, b := range c.Buckets {
					n += b
				}
				if n != c.Commits || c.Failed > c.Commits || c.Max > c.Sum {
					t.Fatalf("%s: %+v: the buckets do not add up to the commits", c.Writer, c.Stats)
				}
				commits += c.Commits
				writes += c.Requests
			}
			return commits, writes
		}
		c0, w0 := total()
		if _, _, err := s.AppendLog(t.Context(), &chain{origin: "test/log"}, []store.LogItem{item(0), item(1), item(2)}); err != nil {
			t.Fatal(err)
		}
		if c1, w1 := total(); c1 != c0+1 || w1 != w0+1 {
			t.Fatalf("after one append: %d commits of %d writes, was %d of %d: want one more of each", c1, w1, c0, w0)
		}
	})
	t.Run("group-committed appends are sequenced", func(t *testing.T) {
		open := loc(t)
		a, b := opened(t, open), opened(t, open) // two appenders on one log
		seq := &chain{origin: "test/log"}
		const n = 60
		var mu sync.Mutex
		got := map[uint64]store.LogEntry{}
		var wg sync.WaitGroup
		for i := range n {
			s := a
			if i%3 == 0 {
				s = b
			}
			done := s.ExpectLog()
			wg.Go(func() {
				defer done()
				it := item(i)
				es, cp, err := s.AppendLog(t.Context(), seq, []store.LogItem{it})
				if err != nil {
					t.Error(err)
					return
				}
				if len(es) != 1 || !bytes.Equal(es[0].Envelope, it.Envelope) || cp.Size <= es[0].Index {
					t.Errorf("append %d: %+v, checkpoint size %d", i, es, cp.Size)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if prev, dup := got[es[0].Index]; dup {
					t.Errorf("index %d given twice: %s and %s", es[0].Index, prev.Envelope, es[0].Envelope)
				}
				got[es[0].Index] = es[0]
			})
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		for i := range uint64(n) {
			if _, ok := got[i]; !ok {
				t.Fatalf("no entry at index %d: the log has a hole", i)
			}
		}
		a.Close()
		b.Close()
		s := opened(t, open)
		h, err := s.LogHead(t.Context())
		if err != nil || h.Size != n {
			t.Fatalf("LogHead after reopen = %+v, %v; want size %d", h, err, n)
		}
		var listed []uint64
		if err := s.LogEntries(t.Context(), store.LogFilter{}, func(e store.LogEntry) error {
			if want := got[e.Index]; !bytes.Equal(e.Envelope, want.Envelope) || !bytes.Equal(e.LeafHash, want.LeafHash) || !e.Time.Equal(want.Time) || e.Device != want.Device {
				return fmt.Errorf("entry %d read back as %+v, appended as %+v", e.Index, e, want)
			}
			listed = append(listed, e.Index)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(listed) != n || !slices.IsSorted(listed) {
			t.Fatalf("LogEntries listed %v", listed)
		}
	})
	t.Run("out of sequence", func(t *testing.T) {
		s := fresh(t, loc)
		good := &chain{origin: "test/log"}
		if _, _, err := s.AppendLog(t.Context(), good, []store.LogItem{item(0)}); err != nil {
			t.Fatal(err)
		}
		_, _, err := s.AppendLog(t.Context(), &chain{origin: "test/log", shift: 1}, []store.LogItem{item(1)})
		if !errors.Is(err, store.ErrSequence) {
			t.Fatalf("an append at the wrong index: %v, want ErrSequence", err)
		}
		_, _, err = s.AppendLog(t.Context(), &chain{origin: "other/log"}, []store.LogItem{item(1)})
		if !errors.Is(err, store.ErrSequence) {
			t.Fatalf("an append under another origin: %v, want ErrSequence", err)
		}
		boom := errors.New("signer unavailable")
		if _, _, err := s.AppendLog(t.Context(), &chain{origin: "test/log", fail: boom}, []store.LogItem{item(1)}); !errors.Is(err, boom) {
			t.Fatalf("a failed sequencing: %v, want %v", err, boom)
		}
		if _, _, err := s.AppendLog(cancelled(t), good, []store.LogItem{item(1)}); !errors.Is(err, context.Canceled) {
			t.Fatalf("an append with a cancelled context: %v, want context.Canceled", err)
		}
		if h, err := s.LogHead(t.Context()); err != nil || h.Size != 1 {
			t.Fatalf("after the refused appends: %+v, %v; want size 1", h, err)
		}
		if _, err := s.LogEntry(t.Context(), 1); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("LogEntry(1): %v, want ErrNotFound", err)
		}
		es, _, err := s.AppendLog(t.Context(), good, []store.LogItem{item(1)})
		if err != nil || es[0].Index != 1 {
			t.Fatalf("append after the refused ones: %+v, %v", es, err)
		}
	})
	t.Run("filters, blobs and callbacks", func(t *testing.T) {
		// One reader connection: a LogEntries callback that reads again
		// (an export computing proofs) must not wait on itself.
		s := opened(t, loc(t, store.WithReadConns(1)))
		seq := &chain{origin: "test/log"}
		trust := store.Blob{MediaType: "application/vnd.wardgate.trust+yaml", Data: []byte("version: 1\n")}
		var items []store.LogItem
		for i := range 600 {
			it := item(i)
			if i == 7 {
				it.Blobs = []store.Blob{trust}
			}
			items = append(items, it)
		}
		if _, _, err := s.AppendLog(t.Context(), seq, items); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		count := func(f store.LogFilter) []uint64 {
			t.Helper()
			var out []uint64
			if err := s.LogEntries(ctx, f, func(e store.LogEntry) error {
				if _, err := s.LogNodes(ctx, []store.NodeID{{Level: 0, Index: e.Index}}); err != nil {
					return err
				}
				if _, err := s.LogEntry(ctx, e.Index); err != nil {
					return err
				}
				out = append(out, e.Index)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			return out
		}
		if got := count(store.LogFilter{}); len(got) != 600 || got[599] != 599 {
			t.Fatalf("all entries: %d, last %v", len(got), got[len(got)-1])
		}
		if got := count(store.LogFilter{Limit: 300}); len(got) != 300 || got[299] != 299 {
			t.Fatalf("Limit 300: %d entries", len(got))
		}
		if got := count(store.LogFilter{Artifact: Digest('b'), Device: "dev-1"}); len(got) != 40 || got[0] != 1 || got[1] != 16 {
			t.Fatalf("artifact and device: %d entries %v", len(got), got[:2])
		}
		if got := count(store.LogFilter{Since: At(100), Until: At(109)}); !slices.Equal(got, []uint64{100, 101, 102, 103, 104, 105, 106, 107, 108, 109}) {
			t.Fatalf("since and until: %v", got)
		}
		e, err := s.LogEntry(ctx, 7)
		if err != nil || !slices.Equal(e.Refs, []string{trust.Digest()}) {
			t.Fatalf("entry 7: refs %v, %v", e.Refs, err)
		}
		if b, err := s.Blob(ctx, trust.Digest()); err != nil || !bytes.Equal(b.Data, trust.Data) || b.MediaType != trust.MediaType {
			t.Fatalf("blob of entry 7: %+v, %v", b, err)
		}
		if _, err := s.LogNodes(ctx, []store.NodeID{{Level: 3, Index: 0}}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("LogNodes of a node never written: %v, want ErrNotFound", err)
		}
	})
}
