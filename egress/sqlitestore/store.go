package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/wardgate/wardgate/egress"
)

// DB is an egress.Store in one SQLite file.
type DB struct {
	db *sql.DB
	// insInstallation is prepared once: it is run for every admission.
	insInstallation *sql.Stmt
}

var _ egress.Store = (*DB)(nil)

const schema = `
CREATE TABLE IF NOT EXISTS sources (digest TEXT PRIMARY KEY, name TEXT NOT NULL, events INTEGER NOT NULL, ingested_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
  ts INTEGER NOT NULL, device TEXT NOT NULL, device_id TEXT NOT NULL, action TEXT NOT NULL,
  remote_ip TEXT NOT NULL, remote_port INTEGER NOT NULL, remote_url TEXT NOT NULL, remote_ip_type TEXT NOT NULL,
  local_ip TEXT NOT NULL, local_port INTEGER NOT NULL, protocol TEXT NOT NULL, process TEXT NOT NULL,
  sent INTEGER NOT NULL, received INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS events_ts ON events(ts);
CREATE TABLE IF NOT EXISTS installations (device TEXT NOT NULL, digest TEXT NOT NULL, product TEXT NOT NULL, version TEXT NOT NULL, ts INTEGER NOT NULL,
  PRIMARY KEY (device, digest, ts));
CREATE INDEX IF NOT EXISTS installations_device_ts ON installations(device, ts);
`

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

// Open opens or creates the store at path.
func Open(ctx context.Context, path string) (*DB, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=synchronous(NORMAL)")
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("create schema in %s: %w", path, err)
	}
	ins, err := db.PrepareContext(ctx, insertInstallation)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return &DB{db: db, insInstallation: ins}, nil
}

// Close closes the database.
func (s *DB) Close() error { return s.db.Close() }

// Ingest implements egress.EventStore.
func (s *DB) Ingest(ctx context.Context, src egress.Source, scan func(add func(*egress.Event) error) error) (added bool, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer func() {
		if err != nil || !added {
			_ = tx.Rollback()
		}
	}()
	var one int
	switch err := tx.QueryRowContext(ctx, `SELECT 1 FROM sources WHERE digest = ?`, src.Digest).Scan(&one); {
	case err == nil:
		return false, nil
	case !errors.Is(err, sql.ErrNoRows):
		return false, err
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)`)
	if err != nil {
		return false, err
	}
	defer stmt.Close()
	var n int64
	err = scan(func(ev *egress.Event) error {
		n++
		_, err := stmt.ExecContext(ctx, ev.Time.UnixNano(), ev.DeviceName, ev.DeviceID, ev.ActionType, addr(ev.RemoteIP), int(ev.RemotePort),
			ev.RemoteURL, ev.RemoteIPType, addr(ev.LocalIP), int(ev.LocalPort), ev.Protocol, ev.Process, ev.SentBytes, ev.ReceivedBytes)
		return err
	})
	if err != nil {
		return false, err
	}
	if _, err = tx.ExecContext(ctx, `INSERT INTO sources VALUES (?,?,?,?)`, src.Digest, src.Name, n, time.Now().Unix()); err != nil {
		return false, err
	}
	if err = tx.Commit(); err != nil {
		return false, err
	}
	return true, nil
}

func addr(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// Events implements egress.EventStore.
func (s *DB) Events(ctx context.Context, fn func(*egress.Event) error) error {
	rows, err := s.db.QueryContext(ctx, `SELECT ts, device, device_id, action, remote_ip, remote_port, remote_url, remote_ip_type, local_ip, local_port, protocol, process, sent, received FROM events ORDER BY ts, rowid`)
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
			return err
		}
		ev.Time = time.Unix(0, ts).UTC()
		ev.RemoteIP, _ = netip.ParseAddr(rip)
		ev.LocalIP, _ = netip.ParseAddr(lip)
		ev.RemotePort, ev.LocalPort = uint16(rport), uint16(lport)
		if err := fn(&ev); err != nil {
			return err
		}
	}
	return rows.Err()
}

// RecordInstallations stores a batch of installations in one transaction:
// all or none.
func (s *DB) RecordInstallations(ctx context.Context, ins []egress.Installation) error {
	for _, in := range ins {
		if err := in.Validate(); err != nil {
			return err
		}
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmt := tx.StmtContext(ctx, s.insInstallation)
	defer stmt.Close()
	for _, in := range ins {
		if _, err := stmt.ExecContext(ctx, in.Device, in.Digest, in.Product, in.Version, in.Time.UnixNano()); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// RecordInstallation implements egress.InstallationStore.
func (s *DB) RecordInstallation(ctx context.Context, in egress.Installation) error {
	if err := in.Validate(); err != nil {
		return err
	}
	_, err := s.insInstallation.ExecContext(ctx, in.Device, in.Digest, in.Product, in.Version, in.Time.UnixNano())
	return err
}

// Installations implements egress.InstallationStore.
func (s *DB) Installations(ctx context.Context) ([]egress.Installation, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT device, digest, product, version, ts FROM installations ORDER BY ts, device, digest`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []egress.Installation
	for rows.Next() {
		var in egress.Installation
		var ts int64
		if err := rows.Scan(&in.Device, &in.Digest, &in.Product, &in.Version, &ts); err != nil {
			return nil, err
		}
		in.Time = time.Unix(0, ts).UTC()
		out = append(out, in)
	}
	return out, rows.Err()
}
