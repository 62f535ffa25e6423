package attest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/wardgate/wardgate/store"
)

var hasher = rfc6962.DefaultHasher

// The log's rows are the store's; these are their names in attest.
type (
	// Item is one envelope to append, with what it is about (for export
	// filters) and the content-addressed blobs it refers to.
	Item = store.LogItem
	// Blob is a content-addressed document stored once and referred to by
	// digest from any number of entries.
	Blob = store.Blob
	// Entry is an appended envelope.
	Entry = store.LogEntry
	// Checkpoint is a signed tree head.
	Checkpoint = store.Checkpoint
	// Filter selects entries for listing and export.
	Filter = store.LogFilter
)

// ErrNotFound is wrapped when an entry or blob does not exist.
var ErrNotFound = store.ErrNotFound

// DefaultExports is how many evidence exports of one Log run at once
// unless WithExports says otherwise; others wait (within their context).
const DefaultExports = 2

// Log is the append-only log of verdict envelopes: an RFC 6962 Merkle tree
// with C2SP signed-note checkpoints. The tree, its proofs and the signing
// are Log's; the rows (entries, interior nodes, the latest checkpoint,
// blobs) are kept by a store.LogStore. Appends are group-committed by the
// store: entries, new nodes and the new checkpoint in one write, so a crash
// leaves the log as it was or with the whole batch. Log is the Sequencer
// of its appends: the store hands it the stored head inside the write, so
// appends from several processes on one store stay one sequence.
type Log struct {
	st      store.LogStore
	signer  *Signer
	origin  string
	ns      note.Signer
	exports chan struct{}

	mu   sync.Mutex // guards tree (the tree as of the last Sequence) and last
	tree *compact.Range
	// last is the time of the newest entry this Log knows of: no entry it
	// sequences is dated before it, so the log's times never go backwards
	// (a clock set back, or a tool's older Item.Time).
	last time.Time

	cpMu sync.RWMutex
	cp   Checkpoint // the newest checkpoint known durable
}

var _ store.Sequencer = (*Log)(nil)

type logConfig struct{ exports int }

// LogOption configures OpenLog.
type LogOption func(*logConfig) error

// WithExports bounds how many exports (Export) run at once; the others
// wait for a turn within their context. Exports read on the store's
// reader connections, never the writer's, and this bound keeps them from
// taking all of those.
func WithExports(n int) LogOption {
	return func(c *logConfig) error {
		if n < 1 {
			return fmt.Errorf("log: %d concurrent exports: want at least 1", n)
		}
		c.exports = n
		return nil
	}
}

// OpenLog opens the log kept in st, writing its first checkpoint if it has
// none. origin names the log in its checkpoints; empty means
// "wardgate/<key id prefix>".
func OpenLog(ctx context.Context, st store.LogStore, signer *Signer, origin string, opts ...LogOption) (*Log, error) {
	cfg := logConfig{exports: DefaultExports}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if origin == "" {
		origin = "wardgate/" + signer.KeyID()[:16]
	}
	ns, err := signer.NoteSigner(origin)
	if err != nil {
		return nil, err
	}
	l := &Log{st: st, signer: signer, origin: origin, ns: ns, exports: make(chan struct{}, cfg.exports)}
	head, err := st.LogHead(ctx)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if _, head, err = st.AppendLog(ctx, l, nil); err != nil {
			return nil, fmt.Errorf("log: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("log: %w", err)
	}
	if err := l.check(ctx, head); err != nil {
		return nil, fmt.Errorf("log: %w", err)
	}
	if head.Size > 0 {
		e, err := st.LogEntry(ctx, head.Size-1)
		if err != nil {
			return nil, fmt.Errorf("log: newest entry: %w", err)
		}
		l.last = e.Time
	}
	l.publish(head)
	return l, nil
}

// check verifies the stored log against its checkpoint: its origin, its
// size (the last entry is there, none after it) and its root (recomputed
// from the stored nodes).
func (l *Log) check(ctx context.Context, head Checkpoint) error {
	if head.Origin != l.origin {
		return fmt.Errorf("log origin is %q, not %q: another log, or another key", head.Origin, l.origin)
	}
	if _, err := l.st.LogEntry(ctx, head.Size); !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("log has entries beyond its checkpoint's size %d: %v", head.Size, err)
	}
	if head.Size > 0 {
		if _, err := l.st.LogEntry(ctx, head.Size-1); err != nil {
			return fmt.Errorf("log has fewer entries than its checkpoint's size %d: %w", head.Size, err)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	r, err := l.load(ctx, l.st, head)
	if err != nil {
		return err
	}
	l.tree = r
	return nil
}

var factory = &compact.RangeFactory{Hash: hasher.HashChildren}

// load rebuilds the compact range of the tree at head from stored nodes
// and checks its root against head's.
func (l *Log) load(ctx context.Context, nodes store.NodeReader, head Checkpoint) (*compact.Range, error) {
	ids := compact.RangeNodes(0, head.Size, nil)
	hashes, err := nodes.LogNodes(ctx, nodeIDs(ids))
	if err != nil {
		return nil, err
	}
	r, err := factory.NewRange(0, head.Size, hashes)
	if err != nil {
		return nil, err
	}
	got, err := r.GetRootHash(nil)
	if err != nil {
		return nil, err
	}
	if head.Size > 0 && !bytes.Equal(got, head.Root) {
		return nil, fmt.Errorf("stored tree root %x disagrees with checkpoint root %x", got, head.Root)
	}
	return r, nil
}

func nodeIDs(ids []compact.NodeID) []store.NodeID {
	out := make([]store.NodeID, len(ids))
	for i, id := range ids {
		out[i] = store.NodeID{Level: id.Level, Index: id.Index}
	}
	return out
}

// Origin is the log's checkpoint origin line.
func (l *Log) Origin() string { return l.origin }

// Signer is the log's signer.
func (l *Log) Signer() *Signer { return l.signer }

func (l *Log) signCheckpoint(size uint64, root []byte) (Checkpoint, error) {
	body := log.Checkpoint{Origin: l.origin, Size: size, Hash: root}.Marshal()
	signed, err := note.Sign(&note.Note{Text: string(body)}, l.ns)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("sign checkpoint: %w", err)
	}
	return Checkpoint{Origin: l.origin, Size: size, Root: root, Note: signed}, nil
}

// Checkpoint returns the newest checkpoint this Log knows durable.
func (l *Log) Checkpoint() Checkpoint {
	l.cpMu.RLock()
	defer l.cpMu.RUnlock()
	return l.cp
}

// publish makes cp the log's checkpoint unless a newer one is known.
func (l *Log) publish(cp Checkpoint) {
	l.cpMu.Lock()
	if cp.Size >= l.cp.Size || l.cp.Note == nil {
		l.cp = cp
	}
	l.cpMu.Unlock()
}

// Append appends one envelope and returns its entry once it is durable.
// Concurrent appends are group-committed by the store, so throughput does
// not pay one fsync per verdict. Append honours ctx in every wait: past
// its deadline it returns ctx's error at once (the entry may still be
// written with the batch it was in).
func (l *Log) Append(ctx context.Context, it Item) (Entry, error) {
	es, err := l.AppendBatch(ctx, []Item{it})
	if err != nil {
		return Entry{}, err
	}
	return es[0], nil
}

// AppendBatch appends items in one write: all or none.
func (l *Log) AppendBatch(ctx context.Context, items []Item) ([]Entry, error) {
	if len(items) == 0 {
		return nil, errors.New("log: nothing to append")
	}
	for _, it := range items {
		if len(it.Envelope) == 0 {
			return nil, errors.New("log: empty envelope")
		}
		if len(it.Envelope) > MaxStatementBytes {
			return nil, fmt.Errorf("log: envelope of %d bytes is over the %d byte limit", len(it.Envelope), MaxStatementBytes)
		}
	}
	es, cp, err := l.st.AppendLog(ctx, l, items)
	if err != nil {
		return nil, fmt.Errorf("log append: %w", err)
	}
	l.publish(cp)
	return es, nil
}

// Expect announces an Append that is on its way (a decision being made):
// while announced appends are coming, the group commit waits for them (up
// to groupcommit.DefaultLinger) rather than committing without them. Call
// the returned func once the Append has returned or will not be made.
func (l *Log) Expect() (done func()) { return l.st.ExpectLog() }

// Sequence implements store.Sequencer: it is called by the store inside
// the write that appends items, with the log's head as stored. When the
// head is not the tree this Log holds (another process appended, or a
// write of this one failed after its sequencing), the tree is rebuilt
// from the stored nodes first.
func (l *Log) Sequence(ctx context.Context, head Checkpoint, nodes store.NodeReader, items []Item) (store.LogBatch, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if head.Note == nil { // never written: the first checkpoint
		l.tree = factory.NewEmptyRange(0)
		if len(items) == 0 {
			cp, err := l.signCheckpoint(0, hasher.EmptyRoot())
			return store.LogBatch{Checkpoint: cp}, err
		}
		head = Checkpoint{Origin: l.origin, Root: hasher.EmptyRoot()}
	}
	if head.Origin != l.origin {
		return store.LogBatch{}, fmt.Errorf("log origin is %q, not %q: another log, or another key", head.Origin, l.origin)
	}
	if len(items) == 0 {
		return store.LogBatch{Checkpoint: head}, nil
	}
	if !l.holds(head) {
		r, err := l.load(ctx, nodes, head)
		if err != nil {
			return store.LogBatch{}, fmt.Errorf("reload the tree at size %d: %w", head.Size, err)
		}
		l.tree = r
	}
	// Work on a copy: the write may still fail, and then the next
	// Sequence sees the head it left.
	r, err := factory.NewRange(0, l.tree.End(), slices.Clone(l.tree.Hashes()))
	if err != nil {
		return store.LogBatch{}, err
	}
	b := store.LogBatch{Entries: make([]Entry, 0, len(items))}
	visit := func(id compact.NodeID, hash []byte) {
		b.Nodes = append(b.Nodes, store.LogNode{ID: store.NodeID{Level: id.Level, Index: id.Index}, Hash: hash})
	}
	now, last := time.Now().UTC(), l.last
	for _, it := range items {
		idx := r.End()
		leaf := hasher.HashLeaf(it.Envelope)
		var refs []string
		for _, bl := range it.Blobs {
			refs = append(refs, bl.Digest())
			b.Blobs = append(b.Blobs, bl)
		}
		t := it.Time.UTC()
		if it.Time.IsZero() {
			t = now
		}
		if t.Before(last) {
			t = last
		}
		last = t
		if err := r.Append(leaf, visit); err != nil {
			return store.LogBatch{}, fmt.Errorf("tree: %w", err)
		}
		b.Entries = append(b.Entries, Entry{Index: idx, LeafHash: leaf, Envelope: it.Envelope, Artifact: it.Artifact, Device: it.Device, Time: t, Refs: refs})
	}
	root, err := r.GetRootHash(nil)
	if err != nil {
		return store.LogBatch{}, fmt.Errorf("root: %w", err)
	}
	if b.Checkpoint, err = l.signCheckpoint(r.End(), root); err != nil {
		return store.LogBatch{}, err
	}
	l.tree, l.last = r, last
	return b, nil
}

// holds reports whether the Log's tree is the tree at head; l.mu is held.
func (l *Log) holds(head Checkpoint) bool {
	if l.tree == nil || l.tree.End() != head.Size {
		return false
	}
	if head.Size == 0 {
		return true
	}
	root, err := l.tree.GetRootHash(nil)
	return err == nil && bytes.Equal(root, head.Root)
}

// InclusionProof proves entry index is in the tree of the given size.
func (l *Log) InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error) {
	return l.inclusionProof(ctx, index, size, nil)
}

// nodeCache keeps upper tree nodes across the proofs of one export: proofs
// of neighbouring entries share all but their lowest nodes.
type nodeCache struct {
	m   map[compact.NodeID][]byte
	max int
}

// cacheLevel is the lowest level kept: nodes below it change every few
// entries and are cheaper to read than to keep.
const cacheLevel = 4

// nodeHashes reads tree nodes; with a cache, nodes at cacheLevel and above
// are kept for the next proof.
func (l *Log) nodeHashes(ctx context.Context, ids []compact.NodeID, cache *nodeCache) ([][]byte, error) {
	out := make([][]byte, len(ids))
	var miss []compact.NodeID
	var at []int
	for i, id := range ids {
		if cache != nil && id.Level >= cacheLevel {
			if h, ok := cache.m[id]; ok {
				out[i] = h
				continue
			}
		}
		miss = append(miss, id)
		at = append(at, i)
	}
	if len(miss) == 0 {
		return out, nil
	}
	hs, err := l.st.LogNodes(ctx, nodeIDs(miss))
	if err != nil {
		return nil, err
	}
	for j, h := range hs {
		out[at[j]] = h
		if id := miss[j]; cache != nil && id.Level >= cacheLevel && len(cache.m) < cache.max {
			cache.m[id] = h
		}
	}
	return out, nil
}

func (l *Log) inclusionProof(ctx context.Context, index, size uint64, cache *nodeCache) ([][]byte, error) {
	if index >= size {
		return nil, fmt.Errorf("inclusion proof: index %d is not below size %d", index, size)
	}
	if cur := l.Checkpoint().Size; size > cur {
		return nil, fmt.Errorf("inclusion proof: size %d is beyond the log's %d", size, cur)
	}
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, err
	}
	hashes, err := l.nodeHashes(ctx, nodes.IDs, cache)
	if err != nil {
		return nil, err
	}
	return nodes.Rehash(hashes, hasher.HashChildren)
}

// ConsistencyProof proves the tree of size1 is a prefix of the tree of size2.
func (l *Log) ConsistencyProof(ctx context.Context, size1, size2 uint64) ([][]byte, error) {
	if size1 > size2 {
		return nil, fmt.Errorf("consistency proof: %d is after %d", size1, size2)
	}
	if cur := l.Checkpoint().Size; size2 > cur {
		return nil, fmt.Errorf("consistency proof: size %d is beyond the log's %d", size2, cur)
	}
	nodes, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, err
	}
	hashes, err := l.nodeHashes(ctx, nodes.IDs, nil)
	if err != nil {
		return nil, err
	}
	return nodes.Rehash(hashes, hasher.HashChildren)
}

// Entries streams the entries matching f in index order. fn may call the
// Log again (the store holds no connection while it runs).
func (l *Log) Entries(ctx context.Context, f Filter, fn func(Entry) error) error {
	return l.st.LogEntries(ctx, f, fn)
}

// Entry returns one entry by index.
func (l *Log) Entry(ctx context.Context, index uint64) (Entry, error) {
	return l.st.LogEntry(ctx, index)
}

// Blob returns a stored blob by digest.
func (l *Log) Blob(ctx context.Context, digest string) (Blob, error) {
	return l.st.Blob(ctx, digest)
}
