package sqlite

import (
	"context"
	"database/sql"
	"errors"

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
