package postgres

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/internal/eventblock"
	"github.com/wardgate/wardgate/store"
)

// Ingest implements store.Telemetry: one transaction per source, nothing
// when the source was ingested before. The source's row is inserted
// first, so two replicas ingesting the same batch at once cannot both add
// it: the second waits on the first's row and adds nothing if it commits.
// The events go in blocks (internal/eventblock, up to eventblock.MaxEvents
// each); then, under a lock that orders batches (lockGroups), the batch
// takes the next number and its groups are merged into telemetry_groups
// (with the replica's copy of the groups it merged last, groupCache).
func (db *DB) Ingest(ctx context.Context, src egress.Source, scan func(add func(*egress.Event) error) error) (added bool, err error) {
	var merged *groupMerge
	err = pgx.BeginFunc(ctx, db.w, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO telemetry_sources(digest, name, events, ingested_at) VALUES ($1, $2, 0, $3) ON CONFLICT (digest) DO NOTHING`,
			src.Digest, src.Name, time.Now().UnixNano())
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		var n int64
		w := newBlockWriter(tx, src.Digest)
		gr := egress.NewGrouper()
		err = scan(func(ev *egress.Event) error {
			n++
			gr.Add(ev.DeviceName, ev)
			return w.Add(ctx, ev)
		})
		if err != nil {
			return err
		}
		if err := w.Flush(ctx); err != nil {
			return err
		}
		if merged, err = db.groups.merge(ctx, tx, gr.Groups()); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE telemetry_sources SET events = $2, batch = $3 WHERE digest = $1`, src.Digest, n, merged.batch); err != nil {
			return err
		}
		if err := db.notifyTx(ctx, tx, store.Change{Kind: store.ChangeTelemetry, Key: src.Digest}); err != nil {
			return err
		}
		added = true
		return nil
	})
	if merged != nil {
		db.groups.done(merged, err == nil)
	}
	if err != nil {
		return false, db.classify("ingest into", err)
	}
	return added, nil
}

// newBlockWriter stores a source's events in telemetry_blocks, a block
// each time one is full and the rest at Flush.
func newBlockWriter(tx pgx.Tx, source string) *eventblock.Writer {
	return eventblock.NewWriter(func(ctx context.Context, n int, first, last int64, data []byte) error {
		_, err := tx.Exec(ctx, `INSERT INTO telemetry_blocks(source, events, first, last, data) VALUES ($1, $2, $3, $4, $5)`, source, n, first, last, data)
		return err
	})
}

// convertEvents is the step of migration 6: the events rows, read in the
// order Events gave them (ORDER BY ts, id), go into blocks numbered in
// that order, so Events gives them in the same order; then
// telemetry_events is dropped. The rows are read a block at a time.
func convertEvents(ctx context.Context, tx pgx.Tx) error {
	w := newBlockWriter(tx, "")
	last := struct {
		ts, id int64
		any    bool
	}{}
	for {
		const cols = `SELECT id, ts, device, device_id, action, remote_ip, remote_port, remote_url, remote_ip_type, local_ip, local_port, protocol, process, sent, received FROM telemetry_events`
		var rows pgx.Rows
		var err error
		if !last.any {
			rows, err = tx.Query(ctx, cols+` ORDER BY ts, id LIMIT $1`, eventblock.MaxEvents)
		} else { // after the last row read, along the index on (ts, id)
			rows, err = tx.Query(ctx, cols+` WHERE (ts, id) > ($1, $2) ORDER BY ts, id LIMIT $3`, last.ts, last.id, eventblock.MaxEvents)
		}
		if err != nil {
			return err
		}
		full := false
		var ev egress.Event
		for rows.Next() {
			var rip, lip string
			var rport, lport int32
			var ts int64
			if err := rows.Scan(&last.id, &ts, &ev.DeviceName, &ev.DeviceID, &ev.ActionType, &rip, &rport, &ev.RemoteURL, &ev.RemoteIPType, &lip, &lport, &ev.Protocol, &ev.Process, &ev.SentBytes, &ev.ReceivedBytes); err != nil {
				rows.Close()
				return fmt.Errorf("convert the events to blocks: %w", err)
			}
			last.ts, last.any = ts, true
			ev.Time = time.Unix(0, ts).UTC()
			ev.RemoteIP, _ = netip.ParseAddr(rip)
			ev.LocalIP, _ = netip.ParseAddr(lip)
			ev.RemotePort, ev.LocalPort = uint16(rport), uint16(lport)
			if full, err = w.Append(&ev); err != nil {
				rows.Close()
				return fmt.Errorf("convert the events to blocks: %w", err)
			}
			if full {
				break // the connection is the query's until it is closed
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		// A query that filled no block read the last rows.
		if err := w.Flush(ctx); err != nil || !full {
			if err != nil {
				return err
			}
			break
		}
	}
	_, err := tx.Exec(ctx, `DROP TABLE telemetry_events`)
	return err
}

// lockGroups orders the batches' group merges across replicas: a batch
// numbered n commits before any batch numbered above n is numbered, so a
// reader that has seen batch n has seen every batch below it.
const lockGroups = `SELECT pg_advisory_xact_lock(2026120501, hashtext(current_schema()))`

// Groups implements egress.GroupStore.
func (db *DB) Groups(ctx context.Context, after int64, fn func(*egress.Group) error) (int64, error) {
	// The last batch first: a batch committed meanwhile is read now (its
	// groups are whole) and again next time.
	var last int64
	if err := db.r.QueryRow(ctx, `SELECT coalesce(max(batch), 0) FROM telemetry_sources`).Scan(&last); err != nil {
		return 0, db.classify("read groups from", err)
	}
	rows, err := db.r.Query(ctx, `SELECT device, hour, success, remote_url, remote_ip, remote_ip_type, events, sent, first, last, times
		FROM telemetry_groups WHERE batch > $1`, after)
	if err != nil {
		return 0, db.classify("read groups from", err)
	}
	defer rows.Close()
	var g egress.Group
	var ip string
	var times []byte
	for rows.Next() {
		if err := rows.Scan(&g.Device, &g.Hour, &g.Success, &g.RemoteURL, &ip, &g.RemoteIPType, &g.Events, &g.Sent, &g.First, &g.Last, &times); err != nil {
			return 0, db.classify("read groups from", err)
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
		return 0, db.classify("read groups from", err)
	}
	return last, nil
}

// backfillGroups groups the events stored before groups were kept
// (telemetry_group_backfill), once, in one transaction.
func (db *DB) backfillGroups(ctx context.Context) error {
	return db.classify("group the events of", pgx.BeginFunc(ctx, db.w, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockGroups); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM telemetry_group_backfill`).Scan(&n); err != nil || n == 0 {
			return err
		}
		gr := egress.NewGrouper()
		rows, err := tx.Query(ctx, `SELECT data FROM telemetry_blocks`)
		if err != nil {
			return err
		}
		err = eventblock.GroupRows(rows, gr)
		rows.Close()
		if err != nil {
			return err
		}
		gs := gr.Groups()
		if err := readGroups(ctx, tx, gs); err != nil {
			return err
		}
		if err := writeGroups(ctx, tx, gs, 1); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE telemetry_sources SET batch = 1 WHERE batch = 0 AND digest = (SELECT min(digest) FROM telemetry_sources)`); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM telemetry_group_backfill`)
		return err
	}))
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
	rows, err := db.r.Query(ctx, `SELECT id, first, data FROM telemetry_blocks ORDER BY first, id`)
	if err != nil {
		return db.classify("read events from", err)
	}
	defer rows.Close()
	fromFn, err := eventblock.MergeRows(rows, fn)
	if fromFn {
		return err // fn's own
	}
	return db.classify("read events from", err)
}

// insertInstallation stores an installation unless the device's previous
// installation (the last at or before its time) is of the same digest: a
// device admitted again for the update it already has adds nothing (see
// egress.InstallationStore).
const insertInstallation = `INSERT INTO installations(device, digest, product, version, ts)
SELECT $1::text, $2::text, $3::text, $4::text, $5::bigint
WHERE COALESCE((SELECT digest FROM installations WHERE device = $1::text AND ts <= $5::bigint ORDER BY ts DESC LIMIT 1), '') <> $2::text
ON CONFLICT DO NOTHING`

func queueInstallation(b *pgx.Batch, in egress.Installation) {
	b.Queue(insertInstallation, in.Device, in.Digest, in.Product, in.Version, in.Time.UnixNano())
}

// RecordInstallation implements store.Installations: the write goes to
// the installations' group committer.
func (db *DB) RecordInstallation(ctx context.Context, in egress.Installation) error {
	if err := in.Validate(); err != nil {
		return err
	}
	_, err := db.insw.Submit(ctx, in)
	return err
}

// ExpectInstallation implements store.Installations.
func (db *DB) ExpectInstallation() (done func()) { return db.insw.Expect() }

// commitInstallations writes a batch of installations in one
// transaction, in order (each sees those before it), and announces each
// digest it holds (store.ChangeInstallation, once per digest) in the same
// transaction: delivered only if it commits.
func (db *DB) commitInstallations(ctx context.Context, ins []egress.Installation, _ []struct{}) error {
	var b pgx.Batch
	seen := map[string]bool{}
	for _, in := range ins {
		queueInstallation(&b, in)
		if !seen[in.Digest] {
			seen[in.Digest] = true
			b.Queue(`SELECT pg_notify($1, $2)`, db.feed.channel, db.feed.payload(store.Change{Kind: store.ChangeInstallation, Key: in.Digest}))
		}
	}
	return db.classify("record installations in", pgx.BeginFunc(ctx, db.w, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockInstallations); err != nil {
			return err
		}
		return tx.SendBatch(ctx, &b).Close()
	}))
}

// lockInstallations orders the installations' writers across replicas: a
// writer numbers its rows and commits before the next one numbers any, so
// a reader that has seen a number has seen every smaller one
// (InstallationsSince).
const lockInstallations = `SELECT pg_advisory_xact_lock(2026120502, hashtext(current_schema()))`

// RecordInstallations implements store.Installations: one transaction.
func (db *DB) RecordInstallations(ctx context.Context, ins []egress.Installation) error {
	for _, in := range ins {
		if err := in.Validate(); err != nil {
			return err
		}
	}
	return db.commitInstallations(ctx, ins, nil)
}

// Installations implements store.Installations.
func (db *DB) Installations(ctx context.Context) ([]egress.Installation, error) {
	out, _, err := db.readInstallations(ctx, `SELECT id, device, digest, product, version, ts FROM installations ORDER BY ts, device, digest`)
	return out, err
}

// InstallationsSince implements store.Installations: ids are given in
// commit order (lockInstallations).
func (db *DB) InstallationsSince(ctx context.Context, after int64) ([]egress.Installation, int64, error) {
	out, last, err := db.readInstallations(ctx, `SELECT id, device, digest, product, version, ts FROM installations WHERE id > $1 ORDER BY id`, after)
	return out, max(after, last), err
}

// readInstallations runs a query of (id, device, digest, product,
// version, ts) rows; last is the largest id read.
func (db *DB) readInstallations(ctx context.Context, query string, args ...any) (out []egress.Installation, last int64, err error) {
	rows, err := db.r.Query(ctx, query, args...)
	if err != nil {
		return nil, 0, db.classify("read installations from", err)
	}
	out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (egress.Installation, error) {
		var in egress.Installation
		var id, ts int64
		err := row.Scan(&id, &in.Device, &in.Digest, &in.Product, &in.Version, &ts)
		in.Time = time.Unix(0, ts).UTC()
		last = max(last, id)
		return in, err
	})
	return out, last, db.classify("read installations from", err)
}
