package attest

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	_ "modernc.org/sqlite" // the SQLite driver, pure Go

	"github.com/wardgate/wardgate/internal/groupcommit"
)

var hasher = rfc6962.DefaultHasher

// Item is one envelope to append, with what it is about (for export
// filters) and the content-addressed blobs it refers to.
type Item struct {
	Envelope []byte
	Artifact string // sha256:<hex> of the subject
	Device   string // device ID, if the verdict was for one device
	// Time is zero in every append of wardgate itself: the log dates each
	// entry with its own clock when it appends it. Tools that build a log
	// (tests, benchmarks, bench/tools/mklog) may set it. Either way an
	// entry is never dated before the entry appended before it: the log's
	// times never go backwards, so export filters by time see it in order.
	Time  time.Time
	Blobs []Blob // trust configuration, policies, SBOMs, diffs used
}

// Blob is a content-addressed document stored once and referred to by
// digest from any number of entries.
type Blob struct {
	MediaType string
	Data      []byte
}

// Digest is the blob's "sha256:<hex>".
func (b Blob) Digest() string {
	s := sha256.Sum256(b.Data)
	return "sha256:" + hex.EncodeToString(s[:])
}

// Entry is an appended envelope.
type Entry struct {
	Index    uint64    `json:"index"`
	LeafHash []byte    `json:"leafHash"`
	Envelope []byte    `json:"envelope"`
	Artifact string    `json:"artifact"`
	Device   string    `json:"device,omitempty"`
	Time     time.Time `json:"time"`
	Refs     []string  `json:"refs,omitempty"`
}

// Checkpoint is a signed tree head.
type Checkpoint struct {
	Origin string `json:"origin"`
	Size   uint64 `json:"size"`
	Root   []byte `json:"root"`
	Note   []byte `json:"note"` // the C2SP signed note
}

// Log is the append-only log of verdict envelopes: an RFC 6962 Merkle tree
// whose leaves, interior nodes and latest signed checkpoint live in one
// SQLite file. Every append is one transaction (entries, new nodes and the
// new checkpoint together), committed with synchronous=FULL in WAL mode: a
// crash leaves the log as it was or with the whole batch.
type Log struct {
	db *sql.DB
	// The two inserts of every append, prepared once, not per batch.
	insNode, insEntry *sql.Stmt
	signer            *Signer
	origin            string
	ns                note.Signer

	mu     sync.Mutex // guards tree, last and appends
	tree   *compact.Range
	last   time.Time // time of the newest entry
	cp     Checkpoint
	reqs   chan appendReq
	coming groupcommit.Announcer
	done   chan struct{}
	close  sync.Once
}

const schema = `
CREATE TABLE IF NOT EXISTS entries(
	idx INTEGER PRIMARY KEY,
	leaf BLOB NOT NULL,
	envelope BLOB NOT NULL,
	artifact TEXT NOT NULL,
	device TEXT NOT NULL DEFAULT '',
	time INTEGER NOT NULL,
	refs TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS entries_artifact ON entries(artifact);
CREATE INDEX IF NOT EXISTS entries_device ON entries(device);
CREATE INDEX IF NOT EXISTS entries_time ON entries(time);
CREATE TABLE IF NOT EXISTS nodes(level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY(level, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoint(id INTEGER PRIMARY KEY CHECK (id = 1), origin TEXT NOT NULL, size INTEGER NOT NULL, root BLOB NOT NULL, note BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS blobs(digest TEXT PRIMARY KEY, media_type TEXT NOT NULL, data BLOB NOT NULL);
`

// OpenLog opens (creating if needed) the log in path. origin names the log
// in its checkpoints; empty means "wardgate/<key id prefix>".
func OpenLog(ctx context.Context, path string, signer *Signer, origin string) (*Log, error) {
	if origin == "" {
		origin = "wardgate/" + signer.KeyID()[:16]
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("log: %w", err)
	}
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("log %s: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("log %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, fmt.Errorf("log %s: %w", path, err)
	}
	ns, err := signer.NoteSigner(origin)
	if err != nil {
		db.Close()
		return nil, err
	}
	l := &Log{db: db, signer: signer, origin: origin, ns: ns, reqs: make(chan appendReq), done: make(chan struct{})}
	if l.insNode, err = db.PrepareContext(ctx, `INSERT INTO nodes(level, idx, hash) VALUES (?, ?, ?)`); err == nil {
		l.insEntry, err = db.PrepareContext(ctx, `INSERT INTO entries(idx, leaf, envelope, artifact, device, time, refs) VALUES (?, ?, ?, ?, ?, ?, ?)`)
	}
	if err == nil {
		err = l.load(ctx)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("log %s: %w", path, err)
	}
	go l.batcher()
	return l, nil
}

// Close stops the appender and closes the database.
func (l *Log) Close() error {
	l.close.Do(func() { close(l.done) })
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.db.Close()
}

// Origin is the log's checkpoint origin line.
func (l *Log) Origin() string { return l.origin }

var factory = &compact.RangeFactory{Hash: hasher.HashChildren}

// load rebuilds the compact range from stored nodes and checks it against
// the stored checkpoint: the tree and its entries must agree.
func (l *Log) load(ctx context.Context) error {
	var size uint64
	var origin string
	var root, nt []byte
	err := l.db.QueryRowContext(ctx, `SELECT origin, size, root, note FROM checkpoint WHERE id = 1`).Scan(&origin, &size, &root, &nt)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		l.tree = factory.NewEmptyRange(0)
		return l.checkpointEmpty(ctx)
	case err != nil:
		return err
	}
	if origin != l.origin {
		return fmt.Errorf("log origin is %q, not %q: another log, or another key", origin, l.origin)
	}
	var count uint64
	if err := l.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM entries`).Scan(&count); err != nil {
		return err
	}
	if count != size {
		return fmt.Errorf("log has %d entries but its checkpoint says %d", count, size)
	}
	ids := compact.RangeNodes(0, size, nil)
	hashes, err := l.nodeHashes(ctx, ids, nil)
	if err != nil {
		return err
	}
	r, err := factory.NewRange(0, size, hashes)
	if err != nil {
		return err
	}
	got, err := r.GetRootHash(nil)
	if err != nil {
		return err
	}
	if size > 0 && !equal(got, root) {
		return fmt.Errorf("stored tree root %x disagrees with checkpoint root %x", got, root)
	}
	l.tree = r
	l.cp = Checkpoint{Origin: origin, Size: size, Root: root, Note: nt}
	if size > 0 {
		var last int64
		if err := l.db.QueryRowContext(ctx, `SELECT MAX(time) FROM entries`).Scan(&last); err != nil {
			return err
		}
		l.last = time.Unix(0, last).UTC()
	}
	return nil
}

func (l *Log) checkpointEmpty(ctx context.Context) error {
	cp, err := l.signCheckpoint(0, hasher.EmptyRoot())
	if err != nil {
		return err
	}
	if _, err := l.db.ExecContext(ctx, `INSERT INTO checkpoint(id, origin, size, root, note) VALUES (1, ?, 0, ?, ?)`, l.origin, cp.Root, cp.Note); err != nil {
		return err
	}
	l.cp = cp
	return nil
}

func equal(a, b []byte) bool { return string(a) == string(b) }

// nodeHashes reads tree nodes; with a cache, nodes at cacheLevel and above
// are kept for the next proof.
func (l *Log) nodeHashes(ctx context.Context, ids []compact.NodeID, cache *nodeCache) ([][]byte, error) {
	out := make([][]byte, len(ids))
	for i, id := range ids {
		cacheable := cache != nil && id.Level >= cacheLevel
		if cacheable {
			if h, ok := cache.m[id]; ok {
				out[i] = h
				continue
			}
		}
		if err := l.db.QueryRowContext(ctx, `SELECT hash FROM nodes WHERE level = ? AND idx = ?`, id.Level, id.Index).Scan(&out[i]); err != nil {
			return nil, fmt.Errorf("tree node (%d,%d): %w", id.Level, id.Index, err)
		}
		if cacheable && len(cache.m) < cache.max {
			cache.m[id] = out[i]
		}
	}
	return out, nil
}

func (l *Log) signCheckpoint(size uint64, root []byte) (Checkpoint, error) {
	body := log.Checkpoint{Origin: l.origin, Size: size, Hash: root}.Marshal()
	signed, err := note.Sign(&note.Note{Text: string(body)}, l.ns)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("sign checkpoint: %w", err)
	}
	return Checkpoint{Origin: l.origin, Size: size, Root: root, Note: signed}, nil
}

// Checkpoint returns the latest signed checkpoint.
func (l *Log) Checkpoint() Checkpoint {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cp
}

type appendReq struct {
	ctx   context.Context
	item  Item
	reply chan appendResp
}

type appendResp struct {
	entry Entry
	err   error
}

// maxBatch bounds one group commit.
const maxBatch = 512

// Append appends one envelope and returns its entry once it is durable.
// Concurrent appends are grouped into one transaction (group commit), so
// throughput does not pay one fsync per verdict.
func (l *Log) Append(ctx context.Context, it Item) (Entry, error) {
	if len(it.Envelope) == 0 {
		return Entry{}, errors.New("log: empty envelope")
	}
	if len(it.Envelope) > MaxStatementBytes {
		return Entry{}, fmt.Errorf("log: envelope of %d bytes is over the %d byte limit", len(it.Envelope), MaxStatementBytes)
	}
	req := appendReq{ctx: ctx, item: it, reply: make(chan appendResp, 1)}
	select {
	case l.reqs <- req:
	case <-ctx.Done():
		return Entry{}, ctx.Err()
	case <-l.done:
		return Entry{}, errors.New("log: closed")
	}
	r := <-req.reply
	return r.entry, r.err
}

// Expect announces an Append that is on its way (a decision being made):
// while announced appends are coming, the group commit waits for them (up
// to groupcommit.DefaultLinger) rather than committing without them. Call
// the returned func once the Append has returned or will not be made.
func (l *Log) Expect() (done func()) { return l.coming.Announce() }

// Expecting is the number of announced appends not yet done.
func (l *Log) Expecting() int { return l.coming.Count() }

func (l *Log) batcher() {
	c := groupcommit.Collector[appendReq]{Reqs: l.reqs, Done: l.done, Max: maxBatch, Linger: groupcommit.DefaultLinger, Expected: l.coming.Count}
	var buf []appendReq
	for {
		batch, ok := c.Next(buf)
		if !ok {
			return
		}
		buf = batch
		live := batch[:0]
		for _, r := range batch {
			if err := r.ctx.Err(); err != nil {
				r.reply <- appendResp{err: err}
				continue
			}
			live = append(live, r)
		}
		if len(live) == 0 {
			continue
		}
		items := make([]Item, len(live))
		for i, r := range live {
			items[i] = r.item
		}
		entries, err := l.AppendBatch(context.Background(), items)
		for i, r := range live {
			if err != nil {
				r.reply <- appendResp{err: err}
			} else {
				r.reply <- appendResp{entry: entries[i]}
			}
		}
	}
}

// AppendBatch appends items in one transaction: all or none.
func (l *Log) AppendBatch(ctx context.Context, items []Item) ([]Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	saved := append([][]byte(nil), l.tree.Hashes()...)
	savedEnd, savedLast := l.tree.End(), l.last
	restore := func() {
		if r, err := factory.NewRange(0, savedEnd, saved); err == nil {
			l.tree = r
		}
		l.last = savedLast
	}
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("log append: %w", err)
	}
	defer tx.Rollback()
	entries := make([]Entry, len(items))
	nodeStmt := tx.StmtContext(ctx, l.insNode)
	defer nodeStmt.Close()
	entryStmt := tx.StmtContext(ctx, l.insEntry)
	defer entryStmt.Close()
	var visitErr error
	visit := func(id compact.NodeID, hash []byte) {
		if visitErr != nil {
			return
		}
		_, visitErr = nodeStmt.ExecContext(ctx, id.Level, id.Index, hash)
	}
	for i, it := range items {
		idx := l.tree.End()
		leaf := hasher.HashLeaf(it.Envelope)
		var refs []string
		for _, b := range it.Blobs {
			d := b.Digest()
			refs = append(refs, d)
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO blobs(digest, media_type, data) VALUES (?, ?, ?)`, d, b.MediaType, b.Data); err != nil {
				restore()
				return nil, fmt.Errorf("log append: blob: %w", err)
			}
		}
		t := it.Time.UTC()
		if t.IsZero() {
			t = time.Now().UTC()
		}
		if t.Before(l.last) {
			t = l.last // a clock set back, or a tool's older time
		}
		l.last = t
		if _, err := entryStmt.ExecContext(ctx, idx, leaf, it.Envelope, it.Artifact, it.Device, t.UnixNano(), strings.Join(refs, " ")); err != nil {
			restore()
			return nil, fmt.Errorf("log append: %w", err)
		}
		if err := l.tree.Append(leaf, visit); err != nil || visitErr != nil {
			restore()
			return nil, fmt.Errorf("log append: tree: %w", errors.Join(err, visitErr))
		}
		entries[i] = Entry{Index: idx, LeafHash: leaf, Envelope: it.Envelope, Artifact: it.Artifact, Device: it.Device, Time: t, Refs: refs}
	}
	root, err := l.tree.GetRootHash(nil)
	if err != nil {
		restore()
		return nil, fmt.Errorf("log append: root: %w", err)
	}
	cp, err := l.signCheckpoint(l.tree.End(), root)
	if err != nil {
		restore()
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE checkpoint SET size = ?, root = ?, note = ? WHERE id = 1`, cp.Size, cp.Root, cp.Note); err != nil {
		restore()
		return nil, fmt.Errorf("log append: checkpoint: %w", err)
	}
	if err := tx.Commit(); err != nil {
		restore()
		return nil, fmt.Errorf("log append: commit: %w", err)
	}
	l.cp = cp
	return entries, nil
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

// Filter selects entries for listing and export.
type Filter struct {
	Since, Until time.Time // zero: unbounded
	Artifact     string
	Device       string
	Limit        int // 0: no limit
}

// Entries streams the entries matching f in index order.
func (l *Log) Entries(ctx context.Context, f Filter, fn func(Entry) error) error {
	q := `SELECT idx, leaf, envelope, artifact, device, time, refs FROM entries WHERE 1=1`
	var args []any
	if !f.Since.IsZero() {
		q += ` AND time >= ?`
		args = append(args, f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		q += ` AND time <= ?`
		args = append(args, f.Until.UnixNano())
	}
	if f.Artifact != "" {
		q += ` AND artifact = ?`
		args = append(args, f.Artifact)
	}
	if f.Device != "" {
		q += ` AND device = ?`
		args = append(args, f.Device)
	}
	q += ` ORDER BY idx`
	if f.Limit > 0 {
		q += fmt.Sprintf(` LIMIT %d`, f.Limit)
	}
	rows, err := l.db.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("log entries: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e Entry
		var t int64
		var refs string
		if err := rows.Scan(&e.Index, &e.LeafHash, &e.Envelope, &e.Artifact, &e.Device, &t, &refs); err != nil {
			return fmt.Errorf("log entries: %w", err)
		}
		e.Time = time.Unix(0, t).UTC()
		if refs != "" {
			e.Refs = strings.Split(refs, " ")
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Entry returns one entry by index.
func (l *Log) Entry(ctx context.Context, index uint64) (Entry, error) {
	row := l.db.QueryRowContext(ctx, `SELECT idx, leaf, envelope, artifact, device, time, refs FROM entries WHERE idx = ?`, index)
	var e Entry
	var t int64
	var refs string
	if err := row.Scan(&e.Index, &e.LeafHash, &e.Envelope, &e.Artifact, &e.Device, &t, &refs); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Entry{}, fmt.Errorf("log entry %d: %w", index, ErrNotFound)
		}
		return Entry{}, fmt.Errorf("log entry %d: %w", index, err)
	}
	e.Time = time.Unix(0, t).UTC()
	if refs != "" {
		e.Refs = strings.Split(refs, " ")
	}
	return e, nil
}

// ErrNotFound is wrapped when an entry or blob does not exist.
var ErrNotFound = errors.New("not found")

// Blob returns a stored blob by digest.
func (l *Log) Blob(ctx context.Context, digest string) (Blob, error) {
	var b Blob
	err := l.db.QueryRowContext(ctx, `SELECT media_type, data FROM blobs WHERE digest = ?`, digest).Scan(&b.MediaType, &b.Data)
	if errors.Is(err, sql.ErrNoRows) {
		return Blob{}, fmt.Errorf("blob %s: %w", digest, ErrNotFound)
	}
	return b, err
}

// Signer is the log's signer.
func (l *Log) Signer() *Signer { return l.signer }
