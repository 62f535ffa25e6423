package postgres

import (
	"context"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/store"
)

// copyRows is how many events Ingest sends per COPY.
const copyRows = 2048

var eventCols = []string{"ts", "device", "device_id", "action", "remote_ip", "remote_port", "remote_url", "remote_ip_type",
	"local_ip", "local_port", "protocol", "process", "sent", "received"}

// Ingest implements store.Telemetry: one transaction per source, nothing
// when the source was ingested before. The source's row is inserted
// first, so two replicas ingesting the same batch at once cannot both add
// it: the second waits on the first's row and adds nothing if it commits.
// The events go in by COPY, copyRows at a time.
func (db *DB) Ingest(ctx context.Context, src egress.Source, scan func(add func(*egress.Event) error) error) (added bool, err error) {
	err = pgx.BeginFunc(ctx, db.w, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO telemetry_sources(digest, name, events, ingested_at) VALUES ($1, $2, 0, $3) ON CONFLICT (digest) DO NOTHING`,
			src.Digest, src.Name, time.Now().UnixNano())
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		var n int64
		buf := make([][]any, 0, copyRows)
		flush := func() error {
			if len(buf) == 0 {
				return nil
			}
			_, err := tx.CopyFrom(ctx, pgx.Identifier{"telemetry_events"}, eventCols, pgx.CopyFromRows(buf))
			buf = buf[:0]
			return err
		}
		err = scan(func(ev *egress.Event) error {
			n++
			buf = append(buf, []any{ev.Time.UnixNano(), ev.DeviceName, ev.DeviceID, ev.ActionType, addr(ev.RemoteIP), int32(ev.RemotePort),
				ev.RemoteURL, ev.RemoteIPType, addr(ev.LocalIP), int32(ev.LocalPort), ev.Protocol, ev.Process, ev.SentBytes, ev.ReceivedBytes})
			if len(buf) == copyRows {
				return flush()
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := flush(); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE telemetry_sources SET events = $2 WHERE digest = $1`, src.Digest, n); err != nil {
			return err
		}
		if err := db.notifyTx(ctx, tx, store.Change{Kind: store.ChangeTelemetry, Key: src.Digest}); err != nil {
			return err
		}
		added = true
		return nil
	})
	if err != nil {
		return false, db.classify("ingest into", err)
	}
	return added, nil
}

func addr(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// Events implements store.Telemetry. fn runs while a reader connection
// streams the events: it must not wait on the store.
func (db *DB) Events(ctx context.Context, fn func(*egress.Event) error) error {
	rows, err := db.r.Query(ctx, `SELECT `+
		`ts, device, device_id, action, remote_ip, remote_port, remote_url, remote_ip_type, local_ip, local_port, protocol, process, sent, received
		FROM telemetry_events ORDER BY ts, id`)
	if err != nil {
		return db.classify("read events from", err)
	}
	defer rows.Close()
	var ev egress.Event
	for rows.Next() {
		var ts int64
		var rip, lip string
		var rport, lport int32
		if err := rows.Scan(&ts, &ev.DeviceName, &ev.DeviceID, &ev.ActionType, &rip, &rport, &ev.RemoteURL, &ev.RemoteIPType, &lip, &lport, &ev.Protocol, &ev.Process, &ev.SentBytes, &ev.ReceivedBytes); err != nil {
			return db.classify("read events from", err)
		}
		ev.Time = time.Unix(0, ts).UTC()
		ev.RemoteIP, _ = netip.ParseAddr(rip) // written by addr: valid or empty
		ev.LocalIP, _ = netip.ParseAddr(lip)
		ev.RemotePort, ev.LocalPort = uint16(rport), uint16(lport)
		if err := fn(&ev); err != nil {
			return err
		}
	}
	return db.classify("read events from", rows.Err())
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
// transaction, in order (each sees those before it).
func (db *DB) commitInstallations(ctx context.Context, ins []egress.Installation, _ []struct{}) error {
	var b pgx.Batch
	for _, in := range ins {
		queueInstallation(&b, in)
	}
	return db.classify("record installations in", pgx.BeginFunc(ctx, db.w, func(tx pgx.Tx) error {
		return tx.SendBatch(ctx, &b).Close()
	}))
}

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
	rows, err := db.r.Query(ctx, `SELECT device, digest, product, version, ts FROM installations ORDER BY ts, device, digest`)
	if err != nil {
		return nil, db.classify("read installations from", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (egress.Installation, error) {
		var in egress.Installation
		var ts int64
		err := row.Scan(&in.Device, &in.Digest, &in.Product, &in.Version, &ts)
		in.Time = time.Unix(0, ts).UTC()
		return in, err
	})
	return out, db.classify("read installations from", err)
}
