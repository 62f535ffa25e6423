package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/store"
)

// op is one write of the admission path, handed to the group committer of
// the file that holds its table: a log append, an installation, an audit
// record. One commit writes a whole batch of them in one transaction.
type op struct {
	kind  opKind
	seq   store.Sequencer
	items []store.LogItem
	in    egress.Installation
	rec   store.AuditRecord
}

type opKind uint8

const (
	opLog opKind = iota
	opInstallation
	opAudit
)

// opResult is a log append's entries and the checkpoint that made them
// durable; the other writes have no result. err is the write's own
// failure, when the rest of its batch was committed without it.
type opResult struct {
	entries []store.LogEntry
	cp      store.Checkpoint
	err     error
}

// commit writes a batch in one transaction. The log appends are one part of
// it, each installation and each audit record another: a part that fails
// is rolled back alone (its ops get the error in out) and the rest is
// committed, so a log that cannot be appended to does not lose the audit
// records beside it. A failed commit fails the whole batch.
func (f *file) commit(ctx context.Context, ops []op, out []opResult) error {
	return f.tx(ctx, "commit", func(tx *sql.Tx) error {
		if _, err := f.exec(ctx, tx, stmtSavepoint); err != nil {
			return err
		}
		if err := f.commitLog(ctx, tx, ops, out); err != nil {
			if _, rerr := f.exec(ctx, tx, stmtRollbackTo); rerr != nil {
				return errors.Join(err, rerr)
			}
			err = f.classify("append log to", err)
			for i, o := range ops {
				if o.kind == opLog {
					out[i] = opResult{err: err}
				}
			}
		}
		if _, err := f.exec(ctx, tx, stmtRelease); err != nil {
			return err
		}
		var ins, aud *sql.Stmt
		for i, o := range ops {
			switch o.kind {
			case opInstallation:
				if ins == nil {
					ins = tx.StmtContext(ctx, f.prepared[stmtInstallation])
					defer ins.Close()
				}
				// A statement that fails is undone alone (SQLite rolls back
				// the statement, not the transaction).
				if _, err := ins.ExecContext(ctx, o.in.Device, o.in.Digest, o.in.Product, o.in.Version, o.in.Time.UnixNano()); err != nil {
					out[i] = opResult{err: f.classify("record installation in", err)}
				}
			case opAudit:
				if aud == nil {
					aud = tx.StmtContext(ctx, f.prepared[stmtAudit])
					defer aud.Close()
				}
				a := o.rec
				if _, err := aud.ExecContext(ctx, a.Time.UnixNano(), a.RequestID, a.Token, a.Role, a.Action, a.Target, a.Status, a.Outcome); err != nil {
					out[i] = opResult{err: f.classify("audit in", err)}
				}
			}
		}
		return nil
	})
}

// exec runs in tx the statement prepared once under name, with no
// arguments.
func (f *file) exec(ctx context.Context, tx *sql.Tx, name string) (sql.Result, error) {
	st := tx.StmtContext(ctx, f.prepared[name])
	defer st.Close()
	return st.ExecContext(ctx)
}

// commitLog sequences the batch's log appends: one Sequence call (and one
// checkpoint) for all the items of one sequencer, in submission order.
func (f *file) commitLog(ctx context.Context, tx *sql.Tx, ops []op, out []opResult) error {
	var seqs []store.Sequencer
	for _, o := range ops {
		if o.kind == opLog && !containsSeq(seqs, o.seq) {
			seqs = append(seqs, o.seq)
		}
	}
	for _, seq := range seqs {
		var items []store.LogItem
		for _, o := range ops {
			if o.kind == opLog && o.seq == seq {
				items = append(items, o.items...)
			}
		}
		b, err := appendLog(ctx, tx, f.prepared, seq, items)
		if err != nil {
			return err
		}
		n := 0
		for i, o := range ops {
			if o.kind == opLog && o.seq == seq {
				out[i] = opResult{entries: b.Entries[n : n+len(o.items) : n+len(o.items)], cp: b.Checkpoint}
				n += len(o.items)
			}
		}
	}
	return nil
}

func containsSeq(seqs []store.Sequencer, s store.Sequencer) bool {
	for _, x := range seqs {
		if x == s {
			return true
		}
	}
	return false
}

// Checkpoints of wardgate.db's write-ahead log. SQLite, left to itself,
// copies the log into the database file (a checkpoint: the changed pages
// written and the file fsynced) inside the commit that takes the log past
// 1,000 pages, while that commit holds the write lock: at 200 Kubernetes
// reviews a second (about 16 pages a commit) that was three commits a
// second taking 1.4 to 15 ms instead of 0.5, and every review queued
// behind them waiting as long: the p99 of the webhook. The checkpointer
// does it on a connection of its own, beside the writer (a PASSIVE
// checkpoint takes no write lock: commits go on while it copies), a
// moment after commits were made.
//
// Durability is unchanged: every commit still fsyncs the log before it
// returns (synchronous=FULL), and a checkpoint is SQLite's own (the log
// fsynced before pages are copied, the database file fsynced before the
// log is reused). The writer's own automatic checkpoint is not turned off
// but moved to ckptSafetyPages: if the checkpointer cannot keep up (a
// reader holding an old snapshot, a disk too slow), the writer checkpoints
// as before, only later.

const (
	// ckptInterval is the least time between two checkpoints: at 200
	// commits a second, about 40 commits' pages.
	ckptInterval = 200 * time.Millisecond
	// ckptSafetyPages is the writer connection's wal_autocheckpoint.
	ckptSafetyPages = 10000
)

// checkpointer runs PASSIVE checkpoints of one file on a connection of its
// own, after commits (poke), at most one per ckptInterval.
type checkpointer struct {
	db      *sql.DB
	poked   chan struct{}
	done    chan struct{}
	stopped chan struct{}
	runs    atomic.Int64 // checkpoints run (for tests)
}

// startCheckpointer moves f's automatic checkpoints off its writer
// connection and starts the checkpointer that does them instead.
func (f *file) startCheckpointer(ctx context.Context, mode syncMode) (*checkpointer, error) {
	// The writer pool is one connection kept for good (openFile): the
	// pragma holds for every commit. Were it ever reopened, it would
	// checkpoint at SQLite's default 1,000 pages again: slower, not less
	// safe.
	if _, err := f.w.ExecContext(ctx, fmt.Sprintf("PRAGMA wal_autocheckpoint=%d", ckptSafetyPages)); err != nil {
		return nil, f.classify("set wal_autocheckpoint on", err)
	}
	db, err := sql.Open("sqlite", dsn(f.path, f.busy, mode, false))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", f.path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	c := &checkpointer{db: db, poked: make(chan struct{}, 1), done: make(chan struct{}), stopped: make(chan struct{})}
	go c.run()
	return c, nil
}

// poke says a commit was made; it never waits.
func (c *checkpointer) poke() {
	select {
	case c.poked <- struct{}{}:
	default:
	}
}

func (c *checkpointer) run() {
	defer close(c.stopped)
	var last time.Time
	t := time.NewTimer(0)
	<-t.C
	for {
		select {
		case <-c.poked:
		case <-c.done:
			return
		}
		if wait := ckptInterval - time.Since(last); wait > 0 {
			t.Reset(wait)
			select {
			case <-t.C:
			case <-c.done:
				t.Stop()
				return
			}
		}
		last = time.Now()
		// A failed checkpoint loses nothing (the pages stay in the log,
		// which every commit fsynced): the next one, or the writer's own,
		// copies them. SQLITE_BUSY (another checkpoint running, the
		// writer's or another process's) is the common case.
		var busy, frames, done int
		_ = c.db.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &done)
		c.runs.Add(1)
	}
}

// stop ends the checkpointer (a checkpoint under way first completes) and
// closes its connection.
func (c *checkpointer) stop() error {
	close(c.done)
	<-c.stopped
	return c.db.Close()
}
