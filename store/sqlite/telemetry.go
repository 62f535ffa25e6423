package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/internal/eventblock"
)

// Ingest implements store.Telemetry: one transaction per source, nothing
// when the source was ingested before. The batch's events are stored in
// blocks (internal/eventblock, up to eventblock.MaxEvents each) and merged
// into their groups (egress.Group) in the same transaction; the batch is
// numbered by its row in sources.
//
// The batch is read, grouped and encoded into its blocks before the
// writer is taken: batches posted at once parse on every core, and the
// one writer only stores blocks and merges groups. A source already
// ingested is not read at all (asked of a reader first, and again in the
// transaction).
//
// An error of scan's own (the batch cannot be read) is returned as scan
// gave it, not as a store error: it names the batch, not the database.
func (db *DB) Ingest(ctx context.Context, src egress.Source, scan func(add func(*egress.Event) error) error) (added bool, err error) {
	var one int
	switch err := db.egress.r.QueryRowContext(ctx, `SELECT 1 FROM sources WHERE digest = ?`, src.Digest).Scan(&one); {
	case err == nil:
		return false, nil
	case !errors.Is(err, sql.ErrNoRows):
		return false, db.egress.classify("ingest into", err)
	}
	type block struct {
		events      int
		first, last int64
		data        []byte
	}
	var blocks []block
	w := eventblock.NewWriter(func(_ context.Context, n int, first, last int64, data []byte) error {
		blocks = append(blocks, block{n, first, last, data})
		return nil
	})
	gr := egress.NewGrouper()
	var n int64
	if err := scan(func(ev *egress.Event) error {
		n++
		gr.Add(ev.DeviceName, ev)
		return w.Add(ctx, ev)
	}); err != nil {
		return false, err
	}
	if err := w.Flush(ctx); err != nil {
		return false, err
	}
	groups := gr.Groups()
	var merged *groupMerge
	err = db.egress.tx(ctx, "ingest into", func(tx *sql.Tx) error {
		switch err := tx.QueryRowContext(ctx, `SELECT 1 FROM sources WHERE digest = ?`, src.Digest).Scan(&one); {
		case err == nil:
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		var batch int64
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(rowid), 0) + 1 FROM sources`).Scan(&batch); err != nil {
			return err
		}
		for _, b := range blocks {
			if _, err := tx.ExecContext(ctx, insertBlock, batch, b.events, b.first, b.last, b.data); err != nil {
				return err
			}
		}
		var err error
		if merged, err = db.groups.merge(ctx, tx, groups, batch); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO sources(rowid, digest, name, events, ingested_at) VALUES (?,?,?,?,?)`, batch, src.Digest, src.Name, n, time.Now().Unix()); err != nil {
			return err
		}
		added = true
		return nil
	})
	if merged != nil {
		db.groups.done(merged, err == nil)
	}
	if err != nil {
		return false, err
	}
	return added, nil
}

const insertBlock = `INSERT INTO event_blocks(batch, events, first, last, data) VALUES (?,?,?,?,?)`

// blockWriter stores a batch's events in event_blocks, a block each time
// one is full and the rest at Flush.
type blockWriter struct {
	*eventblock.Writer
	ins *sql.Stmt
}

func newBlockWriter(ctx context.Context, tx *sql.Tx, batch int64) (*blockWriter, error) {
	ins, err := tx.PrepareContext(ctx, insertBlock)
	if err != nil {
		return nil, err
	}
	return &blockWriter{ins: ins, Writer: eventblock.NewWriter(func(ctx context.Context, n int, first, last int64, data []byte) error {
		_, err := ins.ExecContext(ctx, batch, n, first, last, data)
		return err
	})}, nil
}

func (w *blockWriter) close() { w.ins.Close() }

// convertEvents is the step of the migration to event_blocks: the events
// of an earlier file, read in the order Events gave them (ORDER BY ts,
// rowid), go into blocks of batch 0 numbered in that order, so Events
// gives them in the same order; then the events table is dropped.
func convertEvents(ctx context.Context, tx *sql.Tx) error {
	w, err := newBlockWriter(ctx, tx, 0)
	if err != nil {
		return err
	}
	defer w.close()
	rows, err := tx.QueryContext(ctx, `SELECT ts, device, device_id, action, remote_ip, remote_port, remote_url, remote_ip_type, local_ip, local_port, protocol, process, sent, received FROM events ORDER BY ts, rowid`)
	if err != nil {
		return err
	}
	defer rows.Close()
	var ev egress.Event
	for rows.Next() {
		var ts int64
		var rip, lip string
		var rport, lport int
		if err := rows.Scan(&ts, &ev.DeviceName, &ev.DeviceID, &ev.ActionType, &rip, &rport, &ev.RemoteURL, &ev.RemoteIPType, &lip, &lport, &ev.Protocol, &ev.Process, &ev.SentBytes, &ev.ReceivedBytes); err != nil {
			return fmt.Errorf("convert the events to blocks: %w", err)
		}
		ev.Time = time.Unix(0, ts).UTC()
		ev.RemoteIP, _ = netip.ParseAddr(rip)
		ev.LocalIP, _ = netip.ParseAddr(lip)
		ev.RemotePort, ev.LocalPort = uint16(rport), uint16(lport)
		if err := w.Add(ctx, &ev); err != nil {
			return fmt.Errorf("convert the events to blocks: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	rows.Close()
	if err := w.Flush(ctx); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `DROP TABLE events`)
	return err
}

// Groups implements egress.GroupStore.
func (db *DB) Groups(ctx context.Context, after int64, fn func(*egress.Group) error) (int64, error) {
	// The last batch first: a batch committed meanwhile is read now (its
	// groups are whole) and again next time.
	var last int64
	if err := db.egress.r.QueryRowContext(ctx, `SELECT coalesce(max(rowid), 0) FROM sources`).Scan(&last); err != nil {
		return 0, db.egress.classify("read groups from", err)
	}
	rows, err := db.egress.r.QueryContext(ctx, `SELECT device, hour, success, remote_url, remote_ip, remote_ip_type, events, sent, first, last, times
		FROM event_groups WHERE batch > ?`, after)
	if err != nil {
		return 0, db.egress.classify("read groups from", err)
	}
	defer rows.Close()
	var g egress.Group
	var ip string
	var times []byte
	for rows.Next() {
		if err := rows.Scan(&g.Device, &g.Hour, &g.Success, &g.RemoteURL, &ip, &g.RemoteIPType, &g.Events, &g.Sent, &g.First, &g.Last, &times); err != nil {
			return 0, db.egress.classify("read groups from", err)
		}
		if g.RemoteIP, err = egress.ParseGroupAddr(ip); err != nil {
			return 0, err
		}
		if g.Times, err = egress.DecodeTimes(times); err != nil {
			return 0, err
		}
		if err := fn(&g); err != nil {
			return 0, err
		}
	}
	if err := rows.Err(); err != nil {
		return 0, db.egress.classify("read groups from", err)
	}
	return last, nil
}

// backfillGroups groups the events a file held before it had groups
// (group_backfill), once, in one transaction.
func (db *DB) backfillGroups(ctx context.Context) error {
	var n int
	if err := db.egress.w.QueryRowContext(ctx, `SELECT count(*) FROM group_backfill`).Scan(&n); err != nil || n == 0 {
		return db.egress.classify("group the events of", err)
	}
	var merged *groupMerge
	err := db.egress.tx(ctx, "group the events of", func(tx *sql.Tx) error {
		gr := egress.NewGrouper()
		rows, err := tx.QueryContext(ctx, `SELECT data FROM event_blocks`)
		if err != nil {
			return err
		}
		err = eventblock.GroupRows(rows, gr)
		rows.Close()
		if err != nil {
			return err
		}
		var batch int64
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(rowid), 0) FROM sources`).Scan(&batch); err != nil {
			return err
		}
		if merged, err = db.groups.merge(ctx, tx, gr.Groups(), max(batch, 1)); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM group_backfill`)
		return err
	})
	if merged != nil {
		db.groups.done(merged, err == nil)
	}
	return err
}

func addr(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// Events implements store.Telemetry: the blocks merged in time order,
// ties in ingestion order (eventblock.Merge). fn runs while a reader
// connection streams the blocks: it must not wait on the store.
func (db *DB) Events(ctx context.Context, fn func(*egress.Event) error) error {
	rows, err := db.egress.r.QueryContext(ctx, `SELECT id, first, data FROM event_blocks ORDER BY first, id`)
	if err != nil {
		return db.egress.classify("read events from", err)
	}
	defer rows.Close()
	fromFn, err := eventblock.MergeRows(rows, fn)
	if fromFn {
		return err // fn's own
	}
	return db.egress.classify("read events from", err)
}

// insertInstallation stores an installation unless the device's previous
// installation (the last at or before its time) is of the same digest: a
// device admitted again for the update it already has (a retry, or every
// check-in of a fleet that asks the gate each time) adds nothing, and the
// table, which every fleet analysis reads whole, grows with installations
// rather than with admissions. The analysis asks which update a device
// ran at a time: the earliest installation of a run of the same digest
// answers it as all of them did.
const insertInstallation = `INSERT OR IGNORE INTO installations(device, digest, product, version, ts)
SELECT ?1, ?2, ?3, ?4, ?5
WHERE COALESCE((SELECT digest FROM installations WHERE device = ?1 AND ts <= ?5 ORDER BY ts DESC LIMIT 1), '') != ?2`

// RecordInstallation implements store.Installations: the write goes to
// wardgate.db's group committer, with the log's and the audit's.
func (db *DB) RecordInstallation(ctx context.Context, in egress.Installation) error {
	if err := in.Validate(); err != nil {
		return err
	}
	r, err := db.main.writer.Submit(ctx, op{kind: opInstallation, in: in})
	if err == nil {
		err = r.err
	}
	return err
}

// ExpectInstallation implements store.Installations.
func (db *DB) ExpectInstallation() (done func()) { return db.main.writer.Expect() }

// RecordInstallations implements store.Installations: one transaction.
func (db *DB) RecordInstallations(ctx context.Context, ins []egress.Installation) error {
	for _, in := range ins {
		if err := in.Validate(); err != nil {
			return err
		}
	}
	return db.main.tx(ctx, "record installations in", func(tx *sql.Tx) error {
		stmt := tx.StmtContext(ctx, db.main.prepared[stmtInstallation])
		defer stmt.Close()
		for _, in := range ins {
			if _, err := stmt.ExecContext(ctx, in.Device, in.Digest, in.Product, in.Version, in.Time.UnixNano()); err != nil {
				return err
			}
		}
		return nil
	})
}

// Installations implements store.Installations.
func (db *DB) Installations(ctx context.Context) ([]egress.Installation, error) {
	out, _, err := db.readInstallations(ctx, `SELECT id, device, digest, product, version, ts FROM installations ORDER BY ts, device, digest`)
	return out, err
}

// InstallationsSince implements store.Installations: ids are given in
// commit order (schema.go).
func (db *DB) InstallationsSince(ctx context.Context, after int64) ([]egress.Installation, int64, error) {
	out, last, err := db.readInstallations(ctx, `SELECT id, device, digest, product, version, ts FROM installations WHERE id > ? ORDER BY id`, after)
	return out, max(after, last), err
}

// readInstallations runs a query of (id, device, digest, product,
// version, ts) rows; last is the largest id read.
func (db *DB) readInstallations(ctx context.Context, query string, args ...any) (out []egress.Installation, last int64, err error) {
	rows, err := db.main.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, 0, db.main.classify("read installations from", err)
	}
	defer rows.Close()
	for rows.Next() {
		var in egress.Installation
		var id, ts int64
		if err := rows.Scan(&id, &in.Device, &in.Digest, &in.Product, &in.Version, &ts); err != nil {
			return nil, 0, db.main.classify("read installations from", err)
		}
		in.Time = time.Unix(0, ts).UTC()
		out = append(out, in)
		last = max(last, id)
	}
	return out, last, db.main.classify("read installations from", rows.Err())
}
