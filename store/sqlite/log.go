package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wardgate/wardgate/store"
)

// Names of the prepared statements.
const (
	stmtEntry        = "entry"
	stmtNode         = "node"
	stmtBlob         = "blob"
	stmtInstallation = "installation"
	stmtAudit        = "audit"
	stmtHead         = "head"
	stmtCheckpoint   = "checkpoint"
	stmtReadNode     = "read node"
	stmtSavepoint    = "savepoint"
	stmtRelease      = "release"
	stmtRollbackTo   = "rollback to"
)

const (
	insertEntry = `INSERT INTO entries(idx, leaf, envelope, artifact, device, time, refs) VALUES (?, ?, ?, ?, ?, ?, ?)`
	insertNode  = `INSERT INTO nodes(last, level, hash) VALUES (((?2 + 1) << ?1) - 1, ?1, ?3)` // schema.go: keyed by last leaf
	insertBlob  = `INSERT OR IGNORE INTO blobs(digest, media_type, data) VALUES (?, ?, ?)`
	entryCols   = `idx, leaf, envelope, artifact, device, time, refs`
	selectHead  = `SELECT origin, size, root, note FROM checkpoint WHERE id = 1`
	upsertHead  = `INSERT INTO checkpoint(id, origin, size, root, note) VALUES (1, ?, ?, ?, ?)
		ON CONFLICT(id) DO UPDATE SET origin = excluded.origin, size = excluded.size, root = excluded.root, note = excluded.note`
	selectNode = `SELECT hash FROM nodes WHERE last = ((?2 + 1) << ?1) - 1 AND level = ?1`
)

// AppendLog implements store.LogAppender: the append goes to
// wardgate.db's group committer.
func (db *DB) AppendLog(ctx context.Context, seq store.Sequencer, items []store.LogItem) ([]store.LogEntry, store.Checkpoint, error) {
	if seq == nil {
		return nil, store.Checkpoint{}, errors.New("store: log append without a sequencer")
	}
	r, err := db.main.writer.Submit(ctx, op{kind: opLog, seq: seq, items: items})
	if err == nil {
		err = r.err
	}
	return r.entries, r.cp, err
}

// ExpectLog implements store.LogAppender.
func (db *DB) ExpectLog() (done func()) { return db.main.writer.Expect() }

// queryer is what the head and node reads need: a reader pool (the query
// is prepared at each read), or a statement prepared once (stmtQueryer),
// inside an append.
type queryer interface {
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

// stmtQueryer runs a statement prepared once, whatever the query text
// (which must be the statement's).
type stmtQueryer struct{ st *sql.Stmt }

func (s stmtQueryer) QueryRowContext(ctx context.Context, _ string, args ...any) *sql.Row {
	return s.st.QueryRowContext(ctx, args...)
}

func readHead(ctx context.Context, q queryer) (store.Checkpoint, error) {
	var cp store.Checkpoint
	err := q.QueryRowContext(ctx, selectHead).Scan(&cp.Origin, &cp.Size, &cp.Root, &cp.Note)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Checkpoint{}, store.ErrNotFound
	}
	return cp, err
}

type nodeReader struct{ q queryer }

func (n nodeReader) LogNodes(ctx context.Context, ids []store.NodeID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	for i, id := range ids {
		if err := n.q.QueryRowContext(ctx, selectNode, id.Level, id.Index).Scan(&out[i]); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				err = store.ErrNotFound
			}
			return nil, fmt.Errorf("tree node (%d,%d): %w", id.Level, id.Index, err)
		}
	}
	return out, nil
}

// appendLog runs one sequenced append inside tx, which holds the write
// lock of wardgate.db: no other appender, in this process or another, can
// interleave between the head read here and the commit.
// Every statement it runs was prepared once on the writer connection
// (DB.prepare): tx.StmtContext reuses it, as the transaction is on that
// connection.
func appendLog(ctx context.Context, tx *sql.Tx, prepared map[string]*sql.Stmt, seq store.Sequencer, items []store.LogItem) (store.LogBatch, error) {
	headSt := tx.StmtContext(ctx, prepared[stmtHead])
	defer headSt.Close()
	head, err := readHead(ctx, stmtQueryer{headSt})
	fresh := errors.Is(err, store.ErrNotFound)
	if err != nil && !fresh {
		return store.LogBatch{}, fmt.Errorf("log head: %w", err)
	}
	nodeSt := tx.StmtContext(ctx, prepared[stmtReadNode])
	defer nodeSt.Close()
	b, err := seq.Sequence(ctx, head, nodeReader{stmtQueryer{nodeSt}}, items)
	if err != nil {
		return store.LogBatch{}, err
	}
	if err := checkSequence(head, fresh, len(items), b); err != nil {
		return store.LogBatch{}, err
	}
	if !fresh && len(b.Entries) == 0 {
		return b, nil // nothing to write: the log has its checkpoint
	}
	blob := tx.StmtContext(ctx, prepared[stmtBlob])
	defer blob.Close()
	for _, bl := range b.Blobs {
		if _, err := blob.ExecContext(ctx, bl.Digest(), bl.MediaType, bl.Data); err != nil {
			return store.LogBatch{}, fmt.Errorf("log blob: %w", err)
		}
	}
	entry := tx.StmtContext(ctx, prepared[stmtEntry])
	defer entry.Close()
	for _, e := range b.Entries {
		if _, err := entry.ExecContext(ctx, e.Index, e.LeafHash, e.Envelope, e.Artifact, e.Device, e.Time.UnixNano(), strings.Join(e.Refs, " ")); err != nil {
			return store.LogBatch{}, fmt.Errorf("log entry %d: %w", e.Index, err)
		}
	}
	node := tx.StmtContext(ctx, prepared[stmtNode])
	defer node.Close()
	for _, n := range b.Nodes {
		if _, err := node.ExecContext(ctx, n.ID.Level, n.ID.Index, n.Hash); err != nil {
			return store.LogBatch{}, fmt.Errorf("tree node (%d,%d): %w", n.ID.Level, n.ID.Index, err)
		}
	}
	cp := b.Checkpoint
	upsert := tx.StmtContext(ctx, prepared[stmtCheckpoint])
	defer upsert.Close()
	if _, err := upsert.ExecContext(ctx, cp.Origin, cp.Size, cp.Root, cp.Note); err != nil {
		return store.LogBatch{}, fmt.Errorf("log checkpoint: %w", err)
	}
	return b, nil
}

// checkSequence refuses a batch that does not continue the log from head.
func checkSequence(head store.Checkpoint, fresh bool, items int, b store.LogBatch) error {
	if len(b.Entries) != items {
		return fmt.Errorf("%w: %d entries for %d items", store.ErrSequence, len(b.Entries), items)
	}
	for i, e := range b.Entries {
		if e.Index != head.Size+uint64(i) {
			return fmt.Errorf("%w: entry %d where the log needs %d", store.ErrSequence, e.Index, head.Size+uint64(i))
		}
	}
	cp := b.Checkpoint
	switch {
	case cp.Size != head.Size+uint64(items):
		return fmt.Errorf("%w: checkpoint of size %d after %d entries on a log of %d", store.ErrSequence, cp.Size, items, head.Size)
	case len(cp.Note) == 0 || cp.Origin == "":
		return fmt.Errorf("%w: unsigned checkpoint", store.ErrSequence)
	case !fresh && cp.Origin != head.Origin:
		return fmt.Errorf("%w: checkpoint origin %q on the log %q", store.ErrSequence, cp.Origin, head.Origin)
	case !fresh && items == 0 && !bytes.Equal(cp.Root, head.Root):
		return fmt.Errorf("%w: a new root with no new entries", store.ErrSequence)
	}
	return nil
}

// LogHead implements store.LogReader.
func (db *DB) LogHead(ctx context.Context) (store.Checkpoint, error) {
	cp, err := readHead(ctx, db.main.r)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return cp, db.main.classify("read log head of", err)
	}
	return cp, err
}

// LogNodes implements store.NodeReader, on the reader pool.
func (db *DB) LogNodes(ctx context.Context, ids []store.NodeID) ([][]byte, error) {
	return nodeReader{db.main.r}.LogNodes(ctx, ids)
}

func scanEntry(sc interface{ Scan(...any) error }) (store.LogEntry, error) {
	var e store.LogEntry
	var t int64
	var refs string
	if err := sc.Scan(&e.Index, &e.LeafHash, &e.Envelope, &e.Artifact, &e.Device, &t, &refs); err != nil {
		return e, err
	}
	e.Time = time.Unix(0, t).UTC()
	if refs != "" {
		e.Refs = strings.Split(refs, " ")
	}
	return e, nil
}

// LogEntry implements store.LogReader.
func (db *DB) LogEntry(ctx context.Context, index uint64) (store.LogEntry, error) {
	e, err := scanEntry(db.main.r.QueryRowContext(ctx, `SELECT `+entryCols+` FROM entries WHERE idx = ?`, index))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.LogEntry{}, fmt.Errorf("log entry %d: %w", index, store.ErrNotFound)
	case err != nil:
		return store.LogEntry{}, db.main.classify(fmt.Sprintf("log entry %d in", index), err)
	}
	return e, nil
}

// logPage is how many entries LogEntries reads per query. It reads a page,
// gives its connection back, and only then calls fn: an export that
// computes proofs for each entry (more reads) never holds a connection
// while it waits for another, so exports cannot take the whole pool and
// wait on each other.
const logPage = 256

// LogEntries implements store.LogReader.
func (db *DB) LogEntries(ctx context.Context, f store.LogFilter, fn func(store.LogEntry) error) error {
	q := `SELECT ` + entryCols + ` FROM entries WHERE idx >= ?`
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
	q += ` ORDER BY idx LIMIT ?`
	var next uint64
	left := f.Limit
	page := make([]store.LogEntry, 0, logPage)
	for {
		n := logPage
		if f.Limit > 0 {
			n = min(n, left)
		}
		if n == 0 {
			return nil
		}
		page = page[:0]
		err := func() error {
			rows, err := db.main.r.QueryContext(ctx, q, append(append([]any{next}, args...), n)...)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				e, err := scanEntry(rows)
				if err != nil {
					return err
				}
				page = append(page, e)
			}
			return rows.Err()
		}()
		if err != nil {
			return db.main.classify("log entries in", err)
		}
		for _, e := range page {
			if err := fn(e); err != nil {
				return err
			}
		}
		if len(page) < n {
			return nil
		}
		next = page[len(page)-1].Index + 1
		left -= len(page)
	}
}

// PutBlob implements store.Blobs.
func (db *DB) PutBlob(ctx context.Context, b store.Blob) (string, error) {
	if len(b.Data) > store.MaxBlobBytes {
		return "", fmt.Errorf("store: blob of %d bytes is over the %d byte limit", len(b.Data), store.MaxBlobBytes)
	}
	d := b.Digest()
	_, err := db.main.w.ExecContext(ctx, insertBlob, d, b.MediaType, b.Data)
	return d, db.main.classify("keep blob in", err)
}

// Blob implements store.Blobs.
func (db *DB) Blob(ctx context.Context, digest string) (store.Blob, error) {
	var b store.Blob
	err := db.main.r.QueryRowContext(ctx, `SELECT media_type, data FROM blobs WHERE digest = ?`, digest).Scan(&b.MediaType, &b.Data)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.Blob{}, fmt.Errorf("blob %s: %w", digest, store.ErrNotFound)
	case err != nil:
		return store.Blob{}, db.main.classify("read blob from", err)
	}
	return b, nil
}
