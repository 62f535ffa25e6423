package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wardgate/wardgate/store"
)

// Directories of the state directory that earlier wardgates kept outside
// the databases, imported on open.
const (
	// LegacyEvaluationsDir held one JSON file per kept evaluation,
	// sha256-<hex>.json.
	LegacyEvaluationsDir = "evaluations"
	// LegacySBOMsDir held one file per kept SBOM, sha256-<hex>.
	LegacySBOMsDir = "sboms"
)

// failImport, when set (by tests), fails an import inside its transaction
// after the rows are written, as a crash before the commit would. It is
// called with the directory or file imported.
var failImport func(what string) error

// A state directory made by an earlier wardgate (up to commit aa806ec)
// holds four databases, each in WAL mode — ledger.db (releases), log.db
// (the verdict log and its blobs), egress.db (telemetry and
// installations), server.db (tokens and audit) — and two directories of
// files, evaluations/ and sboms/. Open migrates it, in this order, each
// step safe to cut short and to run again:
//
//  1. log.db becomes wardgate.db (adoptLegacyLog): its write-ahead log is
//     folded in, and it is renamed. The log is the largest thing kept;
//     renaming it copies nothing.
//  2. The rows of ledger.db, server.db and egress.db's installations are
//     copied into wardgate.db, each file in one transaction that also
//     records it in legacy_imports (importLegacyFiles). Then server.db is
//     removed, and ledger.db replaced by a stub whose schema version
//     (1000) makes an earlier wardgate refuse the directory rather than
//     start a new, empty ledger and log beside this one.
//  3. egress.db's second migration drops its installations table.
//  4. evaluations/ and sboms/ are imported (importLegacyDirs).
const (
	legacyLogFile    = "log.db"
	legacyLedgerFile = "ledger.db"
	legacyServerFile = "server.db"
	legacyEgressFile = "egress.db"
	// stubVersion is the schema version of the stub left as ledger.db.
	stubVersion = 1000
)

// adoptLegacyLog renames an earlier wardgate's log.db to wardgate.db. The
// write-ahead log is checkpointed and the file left in rollback-journal
// mode first, which needs it to itself: while an earlier wardgate still
// has it open, this fails and nothing is moved.
func adoptLegacyLog(ctx context.Context, dir string, o store.Options) error {
	old, main := filepath.Join(dir, legacyLogFile), filepath.Join(dir, mainSpec.name)
	if _, err := os.Stat(old); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return &StateDirError{Dir: dir, Err: err}
	}
	if _, err := os.Stat(main); err == nil {
		return &StateDirError{Dir: dir, Err: fmt.Errorf("it holds both %s (an earlier wardgate's log) and %s: an earlier wardgate ran after this one; move %s away and keep the log you trust", legacyLogFile, mainSpec.name, legacyLogFile)}
	}
	db, err := sql.Open("sqlite", "file:"+old+fmt.Sprintf("?_pragma=busy_timeout(%d)", o.BusyTimeout.Milliseconds()))
	if err != nil {
		return fmt.Errorf("migrate %s: %w", old, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	var busy, frames, done int
	if err := db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &frames, &done); err != nil || busy != 0 {
		return fmt.Errorf("migrate %s: checkpoint (busy %d): %v; is an earlier wardgate still running on %s?", old, busy, err, dir)
	}
	var mode string
	if err := db.QueryRowContext(ctx, `PRAGMA journal_mode=DELETE`).Scan(&mode); err != nil || mode != "delete" {
		return fmt.Errorf("migrate %s: leave WAL mode (%q): %v; is an earlier wardgate still running on %s?", old, mode, err, dir)
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("migrate %s: %w", old, err)
	}
	if err := os.Remove(old + "-shm"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("migrate %s: %w", old, err)
	}
	if st, err := os.Stat(old + "-wal"); err == nil && st.Size() > 0 {
		return fmt.Errorf("migrate %s: its write-ahead log is not empty after a checkpoint", old)
	}
	if err := os.Remove(old + "-wal"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("migrate %s: %w", old, err)
	}
	if err := os.Rename(old, main); err != nil {
		return fmt.Errorf("migrate %s: %w", old, err)
	}
	return syncDir(dir)
}

// legacyFile is an earlier wardgate's database whose rows move into
// wardgate.db: table is what shows it holds them (absent: nothing to
// move), copy the statements that move them from the file attached as
// "old", and after what becomes of the file once they are committed.
type legacyFile struct {
	name, table string
	copy        []string
	after       func(path string) error
}

var legacyDBs = []legacyFile{
	{name: legacyLedgerFile, table: "releases", after: replaceWithStub, copy: []string{
		`INSERT INTO releases(vendor, product, version, digest, allowed, codes, sbom_digest, policy_digest, trust_digest, evaluated_at)
		 SELECT vendor, product, version, digest, allowed, codes, sbom_digest, policy_digest, trust_digest, evaluated_at FROM old.releases ORDER BY id`}},
	{name: legacyServerFile, table: "audit", after: removeDB, copy: []string{
		`INSERT OR IGNORE INTO tokens(hash, name, role, created, revoked) SELECT hash, name, role, created, revoked FROM old.tokens`,
		`INSERT INTO audit(time, request_id, token, role, action, target, status, outcome)
		 SELECT time, request_id, token, role, action, target, status, outcome FROM old.audit ORDER BY id`}},
	// egress.db stays (telemetry); its own migration drops the table.
	{name: legacyEgressFile, table: "installations", after: func(string) error { return nil }, copy: []string{
		`INSERT OR IGNORE INTO installations(device, digest, product, version, ts) SELECT device, digest, product, version, ts FROM old.installations`}},
}

// importLegacyFiles moves the rows of an earlier wardgate's databases into
// wardgate.db, each file in one transaction with its row in
// legacy_imports: a crash before the commit leaves the file to import
// again, one after it leaves a file whose rows are already in (and is
// finished with on the next open).
func (db *DB) importLegacyFiles(ctx context.Context) error {
	for _, lf := range legacyDBs {
		if err := db.importLegacyFile(ctx, lf); err != nil {
			return err
		}
	}
	return nil
}

func (db *DB) importLegacyFile(ctx context.Context, lf legacyFile) error {
	path := filepath.Join(db.dir, lf.name)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return &StateDirError{Dir: db.dir, Err: err}
	}
	var done int
	if err := db.main.w.QueryRowContext(ctx, `SELECT count(*) FROM legacy_imports WHERE file = ?`, lf.name).Scan(&done); err != nil {
		return db.main.classify("read legacy imports of", err)
	}
	if done > 0 {
		return lf.after(path)
	}
	conn, err := db.main.w.Conn(ctx)
	if err != nil {
		return db.main.classify("import "+path+" into", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `ATTACH DATABASE ? AS old`, path); err != nil {
		return db.main.classify("import "+path+" into", err)
	}
	detached := false
	detach := func() error {
		if detached {
			return nil
		}
		detached = true
		_, err := conn.ExecContext(context.WithoutCancel(ctx), `DETACH DATABASE old`)
		return err
	}
	defer detach()
	var holds int
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM old.sqlite_master WHERE type = 'table' AND name = ?`, lf.table).Scan(&holds); err != nil {
		return db.main.classify("import "+path+" into", err)
	}
	if holds == 0 {
		return nil // not an earlier wardgate's file, or one already emptied
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return db.main.classify("import "+path+" into", err)
	}
	err = func() error {
		for _, q := range lf.copy {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO legacy_imports(file, imported_at) VALUES (?, ?)`, lf.name, time.Now().UTC().Format(time.RFC3339Nano)); err != nil {
			return err
		}
		if failImport != nil {
			return failImport(path)
		}
		return nil
	}()
	if err != nil {
		tx.Rollback()
		return db.main.classify("import "+path+" into", err)
	}
	if err := tx.Commit(); err != nil {
		return db.main.classify("import "+path+" into", err)
	}
	if err := detach(); err != nil {
		return db.main.classify("import "+path+" into", err)
	}
	return lf.after(path)
}

// removeDB removes an imported database and its WAL files.
func removeDB(path string) error {
	for _, p := range []string{path + "-wal", path + "-shm", path} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove imported %s: %w", p, err)
		}
	}
	return syncDir(filepath.Dir(path))
}

// replaceWithStub replaces an imported ledger.db by a database holding only
// a schema version no earlier wardgate knows: an earlier wardgate opening
// the directory stops ("newer than this wardgate knows; upgrade
// wardgate") instead of starting an empty ledger and log. The stub is
// written beside it and renamed over it.
func replaceWithStub(path string) error {
	tmp := path + ".stub"
	for _, p := range []string{tmp, tmp + "-journal", path + "-wal", path + "-shm"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("stub %s: %w", path, err)
		}
	}
	if isStub(path) {
		return nil
	}
	db, err := sql.Open("sqlite", "file:"+tmp)
	if err != nil {
		return fmt.Errorf("stub %s: %w", path, err)
	}
	_, err = db.Exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL);
		INSERT INTO schema_migrations VALUES (?, 'moved into wardgate.db by a newer wardgate')`, stubVersion)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o600)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("stub %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

// isStub reports whether path is the stub replaceWithStub writes.
func isStub(path string) bool {
	if _, err := os.Stat(path); err != nil {
		return false
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return false
	}
	defer db.Close()
	var v, tables int
	if db.QueryRow(`SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v) != nil ||
		db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'table'`).Scan(&tables) != nil {
		return false
	}
	return v == stubVersion && tables == 1
}

// importLegacyDirs moves what an earlier wardgate kept in files into
// wardgate.db: the kept evaluations, and the SBOMs as blobs. Each
// directory is imported in one transaction and removed only once that
// transaction is committed: a crash at any point leaves either the files
// (imported again, idempotently, on the next open) or the rows, never
// neither.
func (db *DB) importLegacyDirs(ctx context.Context) error {
	if err := db.importEvaluations(ctx, filepath.Join(db.dir, LegacyEvaluationsDir)); err != nil {
		return err
	}
	return db.importSBOMs(ctx, filepath.Join(db.dir, LegacySBOMsDir))
}

// legacyFiles lists the files of dir named sha256-<hex><suffix> by digest,
// removing the temporary files an interrupted write left; nil when dir
// does not exist.
func legacyFiles(dir, suffix string) (map[string]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", dir, err)
	}
	out := map[string]string{}
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".tmp-") {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return nil, fmt.Errorf("import %s: %w", dir, err)
			}
			continue // a write cut short by a crash: never acknowledged
		}
		hexd, ok := strings.CutSuffix(strings.TrimPrefix(name, "sha256-"), suffix)
		if !e.Type().IsRegular() || !strings.HasPrefix(name, "sha256-") || !ok || len(hexd) != 64 || strings.Trim(hexd, "0123456789abcdef") != "" {
			return nil, fmt.Errorf("import %s: %s is not an earlier wardgate's file (sha256-<hex>%s); move it away", dir, name, suffix)
		}
		out["sha256:"+hexd] = filepath.Join(dir, name)
	}
	return out, nil
}

// legacyRecord is the part of an earlier wardgate's kept-evaluation file
// the index needs.
type legacyRecord struct {
	Evidence struct {
		Artifact struct {
			Digest, Vendor, Product, Version string
		} `json:"artifact"`
	} `json:"evidence"`
	RecordedAt time.Time `json:"recordedAt"`
}

func (db *DB) importEvaluations(ctx context.Context, dir string) error {
	return importDir(ctx, db.main, dir, ".json", func(tx *sql.Tx, digest, path string, b []byte) error {
		var rec legacyRecord
		if err := json.Unmarshal(b, &rec); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		a := rec.Evidence.Artifact
		e := store.Evaluation{Digest: a.Digest, Vendor: a.Vendor, Product: a.Product, Version: a.Version, RecordedAt: rec.RecordedAt, Record: b}
		if a.Digest != digest {
			return fmt.Errorf("%s holds the record of %q", path, a.Digest)
		}
		if err := e.Validate(); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		// A newer evaluation of the digest (kept after an interrupted
		// import) wins.
		_, err := tx.ExecContext(ctx, upsertEvaluation+` WHERE excluded.recorded_at >= evaluations.recorded_at`,
			e.Digest, e.Vendor, e.Product, e.Version, e.RecordedAt.UnixNano(), e.Record)
		return err
	})
}

func (db *DB) importSBOMs(ctx context.Context, dir string) error {
	return importDir(ctx, db.main, dir, "", func(tx *sql.Tx, digest, path string, b []byte) error {
		bl := store.Blob{MediaType: store.SBOMMediaType, Data: b}
		if got := bl.Digest(); got != digest {
			return fmt.Errorf("%s: content digest is %s, not its name's: damaged; move it away", path, got)
		}
		_, err := tx.ExecContext(ctx, insertBlob, digest, bl.MediaType, bl.Data)
		return err
	})
}

// importDir imports the files of dir (sha256-<hex><suffix>) with put, all
// in one transaction of f, and removes dir once it is committed.
func importDir(ctx context.Context, f *file, dir, suffix string, put func(tx *sql.Tx, digest, path string, data []byte) error) error {
	files, err := legacyFiles(dir, suffix)
	if err != nil || files == nil {
		return err
	}
	err = f.tx(ctx, "import "+dir+" into", func(tx *sql.Tx) error {
		for digest, p := range files {
			b, err := readLimited(p, store.MaxBlobBytes)
			if err != nil {
				return err
			}
			if err := put(tx, digest, p, b); err != nil {
				return err
			}
		}
		if failImport != nil {
			return failImport(dir)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return removeImported(dir)
}

// removeImported removes an imported directory, its files first. The rows
// are committed: what is left after a crash here is imported again.
func removeImported(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove imported %s: %w", dir, err)
	}
	return syncDir(filepath.Dir(dir))
}

// syncDir makes the renames and removals in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func readLimited(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, max)
	}
	return b, nil
}
