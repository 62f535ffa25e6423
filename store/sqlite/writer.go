package sqlite

import (
	"context"
	"database/sql"
	"fmt"

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
// durable; the other writes have no result.
type opResult struct {
	entries []store.LogEntry
	cp      store.Checkpoint
}

// commit writes a batch in one transaction: all of it or none.
func (f *file) commit(ctx context.Context, ops []op, out []opResult) error {
	return f.tx(ctx, "commit", func(tx *sql.Tx) error {
		if err := f.commitLog(ctx, tx, ops, out); err != nil {
			return err
		}
		var ins, aud *sql.Stmt
		for _, o := range ops {
			switch o.kind {
			case opInstallation:
				if ins == nil {
					ins = tx.StmtContext(ctx, f.prepared[stmtInstallation])
					defer ins.Close()
				}
				if _, err := ins.ExecContext(ctx, o.in.Device, o.in.Digest, o.in.Product, o.in.Version, o.in.Time.UnixNano()); err != nil {
					return fmt.Errorf("installation: %w", err)
				}
			case opAudit:
				if aud == nil {
					aud = tx.StmtContext(ctx, f.prepared[stmtAudit])
					defer aud.Close()
				}
				a := o.rec
				if _, err := aud.ExecContext(ctx, a.Time.UnixNano(), a.RequestID, a.Token, a.Role, a.Action, a.Target, a.Status, a.Outcome); err != nil {
					return fmt.Errorf("audit: %w", err)
				}
			}
		}
		return nil
	})
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
