package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"net/netip"
	"time"

	"github.com/wardgate/wardgate/egress"
)

// Ingest implements store.Telemetry: one transaction per source, nothing
// when the source was ingested before.
//
// An error of scan's own (the batch cannot be read) is returned as scan
// gave it, not as a store error: it names the batch, not the database.
func (db *DB) Ingest(ctx context.Context, src egress.Source, scan func(add func(*egress.Event) error) error) (added bool, err error) {
	var scanErr error
	err = db.egress.tx(ctx, "ingest into", func(tx *sql.Tx) error {
		var one int
		switch err := tx.QueryRowContext(ctx, `SELECT 1 FROM sources WHERE digest = ?`, src.Digest).Scan(&one); {
		case err == nil:
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		var n int64
		var addErr error
		err = scan(func(ev *egress.Event) error {
			n++
			_, addErr = stmt.ExecContext(ctx, ev.Time.UnixNano(), ev.DeviceName, ev.DeviceID, ev.ActionType, addr(ev.RemoteIP), int(ev.RemotePort),
				ev.RemoteURL, ev.RemoteIPType, addr(ev.LocalIP), int(ev.LocalPort), ev.Protocol, ev.Process, ev.SentBytes, ev.ReceivedBytes)
			return addErr
		})
		if err != nil {
			if addErr == nil {
				scanErr = err
			}
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO sources VALUES (?,?,?,?)`, src.Digest, src.Name, n, time.Now().Unix()); err != nil {
			return err
		}
		added = true
		return nil
	})
	if scanErr != nil {
		return false, scanErr
	}
	if err != nil {
		return false, err
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
	rows, err := db.egress.r.QueryContext(ctx, `SELECT ts, device, device_id, action, remote_ip, remote_port, remote_url, remote_ip_type, local_ip, local_port, protocol, process, sent, received FROM events ORDER BY ts, rowid`)
	if err != nil {
		return db.egress.classify("read events from", err)
	}
	defer rows.Close()
	var ev egress.Event
	for rows.Next() {
		var ts int64
		var rip, lip string
		var rport, lport int
		if err := rows.Scan(&ts, &ev.DeviceName, &ev.DeviceID, &ev.ActionType, &rip, &rport, &ev.RemoteURL, &ev.RemoteIPType, &lip, &lport, &ev.Protocol, &ev.Process, &ev.SentBytes, &ev.ReceivedBytes); err != nil {
			return db.egress.classify("read events from", err)
		}
		ev.Time = time.Unix(0, ts).UTC()
		ev.RemoteIP, _ = netip.ParseAddr(rip)
		ev.LocalIP, _ = netip.ParseAddr(lip)
		ev.RemotePort, ev.LocalPort = uint16(rport), uint16(lport)
		if err := fn(&ev); err != nil {
			return err
		}
	}
	return db.egress.classify("read events from", rows.Err())
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
	rows, err := db.main.r.QueryContext(ctx, `SELECT device, digest, product, version, ts FROM installations ORDER BY ts, device, digest`)
	if err != nil {
		return nil, db.main.classify("read installations from", err)
	}
	defer rows.Close()
	var out []egress.Installation
	for rows.Next() {
		var in egress.Installation
		var ts int64
		if err := rows.Scan(&in.Device, &in.Digest, &in.Product, &in.Version, &ts); err != nil {
			return nil, db.main.classify("read installations from", err)
		}
		in.Time = time.Unix(0, ts).UTC()
		out = append(out, in)
	}
	return out, db.main.classify("read installations from", rows.Err())
}
