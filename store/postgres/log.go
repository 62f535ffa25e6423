package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wardgate/wardgate/store"
)

// logOp is one AppendLog, handed to the log's group committer; logResult
// is its entries and the checkpoint that made them durable.
type logOp struct {
	seq   store.Sequencer
	items []store.LogItem
}

type logResult struct {
	entries []store.LogEntry
	cp      store.Checkpoint
}

// AppendLog implements store.LogAppender.
func (db *DB) AppendLog(ctx context.Context, seq store.Sequencer, items []store.LogItem) ([]store.LogEntry, store.Checkpoint, error) {
	if seq == nil {
		return nil, store.Checkpoint{}, errors.New("store: log append without a sequencer")
	}
	r, err := db.logw.Submit(ctx, logOp{seq: seq, items: items})
	return r.entries, r.cp, err
}

// ExpectLog implements store.LogAppender.
func (db *DB) ExpectLog() (done func()) { return db.logw.Expect() }

// commitLog writes a batch of appends in one transaction. The transaction
// first locks the log's checkpoint row, reading it in the same statement:
// appends from every process on this database (every replica) are
// serialised there, and a SELECT … FOR UPDATE that waited for another
// transaction returns the row as that one committed it, so the head read
// is always the newest.
// One Sequence call (and one checkpoint) serves all the items of one
// sequencer, in submission order.
//
// The row lock is held until the commit, so the log's throughput across
// replicas is what one lock holder writes per second: the transaction
// therefore makes two round trips, not five. The first sends BEGIN, the
// lock and a read of the tree nodes at the head (the compact range a
// sequencer rebuilds its tree from when another replica appended since its
// own last write) in one pipeline; the second sends the rows, the new
// checkpoint and COMMIT in one pipeline. Under the lock there is one round
// trip and the commit's WAL flush.
func (db *DB) commitLog(ctx context.Context, ops []logOp, out []logResult) error {
	err := db.appendTx(ctx, ops, out)
	if errors.Is(err, store.ErrSequence) {
		return err
	}
	return db.classify("append to the log in", err)
}

// headNodes reads, with the locked row's size s, the nodes of the compact
// range [0, s): for every bit l set in s, the node at level l, index
// (s >> l) - 1 (compact.RangeNodes(0, s)). Nothing when s is the size this
// process last committed ($1): its sequencer holds that tree already.
const headNodes = `SELECT n.level, n.idx, n.hash FROM log_checkpoint c
	CROSS JOIN generate_series(0, 62) AS l(level)
	JOIN log_nodes n ON n.level = l.level AND n.idx = (c.size >> l.level) - 1
	WHERE c.id = 1 AND c.size IS NOT NULL AND c.size <> $1 AND (c.size >> l.level) & 1 = 1`

func (db *DB) appendTx(ctx context.Context, ops []logOp, out []logResult) (err error) {
	conn, err := db.w.Acquire(ctx)
	if err != nil {
		return err
	}
	// A connection released inside a transaction (an error before COMMIT)
	// is destroyed by the pool, which ends the transaction and its lock
	// on the server; the ROLLBACK below releases the lock sooner.
	defer conn.Release()
	defer func() {
		if err != nil && conn.Conn().PgConn().TxStatus() != 'I' && !conn.Conn().IsClosed() {
			rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, _ = conn.Exec(rctx, "ROLLBACK")
			cancel()
		}
	}()
	var first pgx.Batch
	first.Queue("BEGIN")
	first.Queue(lockHead)
	first.Queue(headNodes, db.lastSize.Load())
	br := conn.SendBatch(ctx, &first)
	if _, err := br.Exec(); err != nil {
		br.Close()
		return fmt.Errorf("begin: %w", err)
	}
	head, err := scanHead(br.QueryRow())
	fresh := errors.Is(err, store.ErrNotFound)
	if err != nil && !fresh {
		br.Close()
		return fmt.Errorf("lock the log's head: %w", err)
	}
	nodes := prefetched{q: conn, got: map[store.NodeID][]byte{}}
	rows, err := br.Query()
	if err == nil {
		var level int32
		var idx int64
		var hash []byte
		_, err = pgx.ForEachRow(rows, []any{&level, &idx, &hash}, func() error {
			nodes.got[store.NodeID{Level: uint(level), Index: uint64(idx)}] = hash
			return nil
		})
	}
	if err := errors.Join(err, br.Close()); err != nil {
		return fmt.Errorf("read the tree at the log's head: %w", err)
	}

	var seqs []store.Sequencer
	for _, o := range ops {
		if !containsSeq(seqs, o.seq) {
			seqs = append(seqs, o.seq)
		}
	}
	var rowsBatch pgx.Batch
	for si, seq := range seqs {
		if si > 0 && rowsBatch.Len() > 0 {
			// Another sequencer continues from the rows just sequenced:
			// it may read their nodes, so they go first.
			if err := conn.SendBatch(ctx, &rowsBatch).Close(); err != nil {
				return fmt.Errorf("log rows: %w", err)
			}
			rowsBatch = pgx.Batch{}
		}
		var items []store.LogItem
		for _, o := range ops {
			if o.seq == seq {
				items = append(items, o.items...)
			}
		}
		b, err := appendLog(ctx, &rowsBatch, nodes, head, fresh, seq, items)
		if err != nil {
			return err
		}
		head, fresh = b.Checkpoint, false
		n := 0
		for i, o := range ops {
			if o.seq == seq {
				out[i] = logResult{entries: b.Entries[n : n+len(o.items) : n+len(o.items)], cp: b.Checkpoint}
				n += len(o.items)
			}
		}
	}
	db.notifyLog(&rowsBatch, ops)
	rowsBatch.Queue("COMMIT")
	if err := conn.SendBatch(ctx, &rowsBatch).Close(); err != nil {
		return fmt.Errorf("log rows: %w", err)
	}
	if conn.Conn().PgConn().TxStatus() != 'I' {
		// A COMMIT of a failed transaction answers ROLLBACK, no error.
		return errors.New("log rows: the transaction was rolled back")
	}
	if !fresh {
		db.lastSize.Store(int64(head.Size))
	}
	return nil
}

// prefetched answers a sequencer's node reads from the nodes read with the
// lock, and reads the others (none, when it asks for the compact range at
// the head) in the transaction.
type prefetched struct {
	q interface {
		Query(context.Context, string, ...any) (pgx.Rows, error)
	}
	got map[store.NodeID][]byte
}

// LogNodes implements store.NodeReader.
func (p prefetched) LogNodes(ctx context.Context, ids []store.NodeID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	for i, id := range ids {
		h, ok := p.got[id]
		if !ok {
			return nodeReader{p.q}.LogNodes(ctx, ids)
		}
		out[i] = h
	}
	return out, nil
}

func containsSeq(seqs []store.Sequencer, s store.Sequencer) bool {
	for _, x := range seqs {
		if x == s {
			return true
		}
	}
	return false
}

const (
	selectHead = `SELECT origin, size, root, note FROM log_checkpoint WHERE id = 1`
	lockHead   = selectHead + ` FOR UPDATE`
)

// readHead reads the stored checkpoint (ErrNotFound before the first).
func readHead(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (store.Checkpoint, error) {
	return scanHead(q.QueryRow(ctx, selectHead))
}

func scanHead(row pgx.Row) (store.Checkpoint, error) {
	var origin *string
	var size *int64
	var cp store.Checkpoint
	if err := row.Scan(&origin, &size, &cp.Root, &cp.Note); err != nil {
		return store.Checkpoint{}, err // no row at all: the migration put one there
	}
	if origin == nil {
		return store.Checkpoint{}, store.ErrNotFound
	}
	cp.Origin, cp.Size = *origin, uint64(*size)
	return cp, nil
}

// appendLog runs one sequenced append from head, queueing its rows on
// batch; the transaction holds the log's checkpoint row.
func appendLog(ctx context.Context, batch *pgx.Batch, nodes store.NodeReader, head store.Checkpoint, fresh bool, seq store.Sequencer, items []store.LogItem) (store.LogBatch, error) {
	b, err := seq.Sequence(ctx, head, nodes, items)
	if err != nil {
		return store.LogBatch{}, err
	}
	if err := store.CheckSequence(head, fresh, len(items), b); err != nil {
		return store.LogBatch{}, err
	}
	if !fresh && len(b.Entries) == 0 {
		return b, nil // nothing to write: the log has its checkpoint
	}
	for _, bl := range b.Blobs {
		if len(bl.Data) > store.MaxBlobBytes {
			return store.LogBatch{}, fmt.Errorf("store: blob of %d bytes is over the %d byte limit", len(bl.Data), store.MaxBlobBytes)
		}
		batch.Queue(`INSERT INTO blobs(digest, media_type, data) VALUES ($1, $2, $3) ON CONFLICT (digest) DO NOTHING`, bl.Digest(), bl.MediaType, bl.Data)
	}
	for _, e := range b.Entries {
		refs := e.Refs
		if refs == nil {
			refs = []string{}
		}
		batch.Queue(`INSERT INTO log_entries(idx, leaf, envelope, artifact, device, time, refs) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			int64(e.Index), e.LeafHash, e.Envelope, e.Artifact, e.Device, e.Time.UnixNano(), refs)
	}
	for _, n := range b.Nodes {
		batch.Queue(`INSERT INTO log_nodes(level, idx, hash) VALUES ($1, $2, $3)`, int32(n.ID.Level), int64(n.ID.Index), n.Hash)
	}
	cp := b.Checkpoint
	batch.Queue(`UPDATE log_checkpoint SET origin = $1, size = $2, root = $3, note = $4 WHERE id = 1`, cp.Origin, int64(cp.Size), cp.Root, cp.Note)
	return b, nil
}

// nodeReader reads tree nodes on q: the append's transaction, or the
// reader pool.
type nodeReader struct {
	q interface {
		Query(context.Context, string, ...any) (pgx.Rows, error)
	}
}

// LogNodes implements store.NodeReader: one query for all of ids.
func (n nodeReader) LogNodes(ctx context.Context, ids []store.NodeID) ([][]byte, error) {
	if len(ids) == 0 {
		return [][]byte{}, nil
	}
	levels, idxs := make([]int32, len(ids)), make([]int64, len(ids))
	for i, id := range ids {
		levels[i], idxs[i] = int32(id.Level), int64(id.Index)
	}
	rows, err := n.q.Query(ctx, `SELECT n.level, n.idx, n.hash FROM log_nodes n
		JOIN unnest($1::integer[], $2::bigint[]) AS want(level, idx) ON n.level = want.level AND n.idx = want.idx`, levels, idxs)
	if err != nil {
		return nil, err
	}
	got := make(map[store.NodeID][]byte, len(ids))
	var level int32
	var idx int64
	var hash []byte
	if _, err := pgx.ForEachRow(rows, []any{&level, &idx, &hash}, func() error {
		got[store.NodeID{Level: uint(level), Index: uint64(idx)}] = hash
		return nil
	}); err != nil {
		return nil, err
	}
	out := make([][]byte, len(ids))
	for i, id := range ids {
		h, ok := got[id]
		if !ok {
			return nil, fmt.Errorf("tree node (%d,%d): %w", id.Level, id.Index, store.ErrNotFound)
		}
		out[i] = h
	}
	return out, nil
}

// LogHead implements store.LogReader.
func (db *DB) LogHead(ctx context.Context) (store.Checkpoint, error) {
	cp, err := readHead(ctx, db.r)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return cp, db.classify("read log head of", err)
	}
	return cp, err
}

// LogNodes implements store.NodeReader, on the reader pool.
func (db *DB) LogNodes(ctx context.Context, ids []store.NodeID) ([][]byte, error) {
	out, err := nodeReader{db.r}.LogNodes(ctx, ids)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, db.classify("read tree nodes of", err)
	}
	return out, err
}

const entryCols = `idx, leaf, envelope, artifact, device, time, refs`

func scanEntry(row pgx.Row) (store.LogEntry, error) {
	var e store.LogEntry
	var idx, t int64
	if err := row.Scan(&idx, &e.LeafHash, &e.Envelope, &e.Artifact, &e.Device, &t, &e.Refs); err != nil {
		return e, err
	}
	e.Index, e.Time = uint64(idx), time.Unix(0, t).UTC()
	if len(e.Refs) == 0 {
		e.Refs = nil
	}
	return e, nil
}

// LogEntry implements store.LogReader.
func (db *DB) LogEntry(ctx context.Context, index uint64) (store.LogEntry, error) {
	e, err := scanEntry(db.r.QueryRow(ctx, `SELECT `+entryCols+` FROM log_entries WHERE idx = $1`, int64(index)))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return store.LogEntry{}, fmt.Errorf("log entry %d: %w", index, store.ErrNotFound)
	case err != nil:
		return store.LogEntry{}, db.classify(fmt.Sprintf("log entry %d in", index), err)
	}
	return e, nil
}

// logPage is how many entries LogEntries reads per query. It reads a page,
// gives its connection back, and only then calls fn: an export that
// computes proofs for each entry (more reads) never holds a connection
// while it waits for another.
const logPage = 256

// LogEntries implements store.LogReader.
func (db *DB) LogEntries(ctx context.Context, f store.LogFilter, fn func(store.LogEntry) error) error {
	q := `SELECT ` + entryCols + ` FROM log_entries WHERE idx >= $1`
	var args []any
	arg := func(cond string, v any) {
		args = append(args, v)
		q += fmt.Sprintf(" AND "+cond, len(args)+1)
	}
	if !f.Since.IsZero() {
		arg(`time >= $%d`, f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		arg(`time <= $%d`, f.Until.UnixNano())
	}
	if f.Artifact != "" {
		arg(`artifact = $%d`, f.Artifact)
	}
	if f.Device != "" {
		arg(`device = $%d`, f.Device)
	}
	q += fmt.Sprintf(` ORDER BY idx LIMIT $%d`, len(args)+2)
	var next int64
	left := f.Limit
	for {
		n := logPage
		if f.Limit > 0 {
			n = min(n, left)
		}
		if n == 0 {
			return nil
		}
		rows, err := db.r.Query(ctx, q, append(append([]any{next}, args...), n)...)
		if err != nil {
			return db.classify("log entries in", err)
		}
		page, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.LogEntry, error) { return scanEntry(row) })
		if err != nil {
			return db.classify("log entries in", err)
		}
		for _, e := range page {
			if err := fn(e); err != nil {
				return err
			}
		}
		if len(page) < n {
			return nil
		}
		next = int64(page[len(page)-1].Index) + 1
		left -= len(page)
	}
}

// PutBlob implements store.Blobs.
func (db *DB) PutBlob(ctx context.Context, b store.Blob) (string, error) {
	if len(b.Data) > store.MaxBlobBytes {
		return "", fmt.Errorf("store: blob of %d bytes is over the %d byte limit", len(b.Data), store.MaxBlobBytes)
	}
	d := b.Digest()
	_, err := db.w.Exec(ctx, `INSERT INTO blobs(digest, media_type, data) VALUES ($1, $2, $3) ON CONFLICT (digest) DO NOTHING`, d, b.MediaType, b.Data)
	return d, db.classify("keep blob in", err)
}

// Blob implements store.Blobs.
func (db *DB) Blob(ctx context.Context, digest string) (store.Blob, error) {
	var b store.Blob
	err := db.r.QueryRow(ctx, `SELECT media_type, data FROM blobs WHERE digest = $1`, digest).Scan(&b.MediaType, &b.Data)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return store.Blob{}, fmt.Errorf("blob %s: %w", digest, store.ErrNotFound)
	case err != nil:
		return store.Blob{}, db.classify("read blob from", err)
	}
	return b, nil
}
