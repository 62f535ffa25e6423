package sqlite_test

import (
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/store"
	"github.com/wardgate/wardgate/store/sqlite"
	"github.com/wardgate/wardgate/store/storetest"
)

// legacyDir writes what an earlier wardgate kept in files: two kept
// evaluations (and a temporary file a crash left) and an SBOM.
func legacyDir(t *testing.T) (dir string, sbom []byte, sbomDigest string) {
	t.Helper()
	dir = t.TempDir()
	ev := filepath.Join(dir, "evaluations")
	sb := filepath.Join(dir, "sboms")
	for _, d := range []string{ev, sb} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range []byte{'a', 'b'} {
		rec := fmt.Sprintf(`{"evidence":{"schema":"x","artifact":{"kind":"blob","digest":%q,"vendor":"acme","product":"pump","version":"2.%d.0"}},"decision":{"allow":true},"recordedAt":"2026-11-0%dT10:00:00Z"}`,
			storetest.Digest(c), i, i+1)
		if err := os.WriteFile(filepath.Join(ev, "sha256-"+strings.Repeat(string(c), 64)+".json"), []byte(rec), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(ev, ".tmp-123"), []byte("{half"), 0o600); err != nil {
		t.Fatal(err)
	}
	sbom = []byte(`{"bomFormat":"CycloneDX","specVersion":"1.5"}`)
	sum := sha256.Sum256(sbom)
	sbomDigest = "sha256:" + hex.EncodeToString(sum[:])
	if err := os.WriteFile(filepath.Join(sb, "sha256-"+hex.EncodeToString(sum[:])), sbom, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, sbom, sbomDigest
}

func checkImported(t *testing.T, db *sqlite.DB, dir string, sbom []byte, sbomDigest string) {
	t.Helper()
	e, err := db.Evaluation(t.Context(), storetest.Digest('b'))
	if err != nil || e.Version != "2.1.0" || !e.RecordedAt.Equal(time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)) {
		t.Fatalf("imported evaluation: %+v, %v", e, err)
	}
	if !strings.Contains(string(e.Record), `"decision":{"allow":true}`) {
		t.Fatalf("record not kept whole: %s", e.Record)
	}
	ds, err := db.ReleaseDigests(t.Context(), "acme", "pump", "2.0.0")
	if err != nil || len(ds) != 1 || ds[0] != storetest.Digest('a') {
		t.Fatalf("ReleaseDigests = %v, %v", ds, err)
	}
	b, err := db.Blob(t.Context(), sbomDigest)
	if err != nil || string(b.Data) != string(sbom) || b.MediaType != store.SBOMMediaType {
		t.Fatalf("imported SBOM: %+v, %v", b, err)
	}
	for _, d := range []string{"evaluations", "sboms"} {
		if _, err := os.Stat(filepath.Join(dir, d)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s is still there after the import: %v", d, err)
		}
	}
}

func TestImportsEarlierLayout(t *testing.T) {
	dir, sbom, sd := legacyDir(t)
	checkImported(t, open(t, dir), dir, sbom, sd)
}

// An import cut short (before its commit) leaves the files, and the next
// open imports them.
func TestInterruptedImportReruns(t *testing.T) {
	dir, sbom, sd := legacyDir(t)
	crash := errors.New("power cut")
	restore := sqlite.SetFailImport(func(d string) error {
		if filepath.Base(d) == "sboms" {
			return crash
		}
		return nil
	})
	_, err := sqlite.Open(t.Context(), dir)
	restore()
	if !errors.Is(err, crash) {
		t.Fatalf("err = %v, want the injected failure", err)
	}
	// The evaluations were imported and their directory removed; the SBOMs
	// are still files, and not in the database.
	if _, err := os.Stat(filepath.Join(dir, "evaluations")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("evaluations: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "sboms", "sha256-"+strings.TrimPrefix(sd, "sha256:"))); err != nil {
		t.Fatalf("the SBOM file is gone after a failed import: %v", err)
	}
	db := open(t, dir)
	checkImported(t, db, dir, sbom, sd)
}

// A kept file that is not what its name says stops the open: the operator
// must look. Nothing is removed.
func TestDamagedEarlierFileRefused(t *testing.T) {
	dir, _, sd := legacyDir(t)
	p := filepath.Join(dir, "sboms", "sha256-"+strings.TrimPrefix(sd, "sha256:"))
	if err := os.WriteFile(p, []byte("flipped"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := sqlite.Open(t.Context(), dir)
	if err == nil || !strings.Contains(err.Error(), p+": content digest is sha256:") || !strings.Contains(err.Error(), "damaged; move it away") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the damaged file was removed: %v", err)
	}
	rec := filepath.Join(dir, "evaluations", "sha256-"+strings.Repeat("c", 64)+".json")
	if err := os.MkdirAll(filepath.Dir(rec), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rec, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Open(t.Context(), dir); err == nil || !strings.Contains(err.Error(), rec+": unexpected end of JSON input") {
		t.Fatalf("a corrupt record: %v", err)
	}
}

// earlierFiles writes the four databases of an earlier wardgate (up to
// commit aa806ec), in WAL mode, with a release, a token, two audit records,
// an installation and a telemetry source.
func earlierFiles(t *testing.T, dir string) {
	t.Helper()
	for name, q := range map[string]string{
		"log.db": `CREATE TABLE entries(idx INTEGER PRIMARY KEY, leaf BLOB NOT NULL, envelope BLOB NOT NULL, artifact TEXT NOT NULL, device TEXT NOT NULL DEFAULT '', time INTEGER NOT NULL, refs TEXT NOT NULL DEFAULT '');
			CREATE TABLE nodes(level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY(level, idx)) WITHOUT ROWID;
			CREATE TABLE checkpoint(id INTEGER PRIMARY KEY CHECK (id = 1), origin TEXT NOT NULL, size INTEGER NOT NULL, root BLOB NOT NULL, note BLOB NOT NULL);`,
		"ledger.db": `CREATE TABLE releases (id INTEGER PRIMARY KEY, vendor TEXT NOT NULL, product TEXT NOT NULL, version TEXT NOT NULL, digest TEXT NOT NULL,
			allowed INTEGER NOT NULL, codes TEXT NOT NULL, sbom_digest TEXT NOT NULL, policy_digest TEXT NOT NULL, trust_digest TEXT NOT NULL, evaluated_at TEXT NOT NULL);
			INSERT INTO releases VALUES (1, 'acme', 'pump', '2.3.0', '` + storetest.Digest('a') + `', 1, '[]', '', '', '', '2026-11-01T10:00:00Z');`,
		"server.db": `CREATE TABLE tokens(hash TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, role TEXT NOT NULL, created INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0);
			CREATE TABLE audit(id INTEGER PRIMARY KEY, time INTEGER NOT NULL, request_id TEXT NOT NULL, token TEXT NOT NULL, role TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL, status INTEGER NOT NULL, outcome TEXT NOT NULL);
			INSERT INTO tokens VALUES ('h1', 'ci', 'ci', 1, 0);
			INSERT INTO audit VALUES (1, 1, 'r1', 'ci', 'ci', 'POST /v1/evaluations', 'x', 200, 'ok'), (2, 2, 'r2', 'ci', 'ci', 'POST /v1/evaluations', 'y', 200, 'ok');`,
		"egress.db": `CREATE TABLE sources (digest TEXT PRIMARY KEY, name TEXT NOT NULL, events INTEGER NOT NULL, ingested_at INTEGER NOT NULL);
			CREATE TABLE installations (device TEXT NOT NULL, digest TEXT NOT NULL, product TEXT NOT NULL, version TEXT NOT NULL, ts INTEGER NOT NULL, PRIMARY KEY (device, digest, ts));
			INSERT INTO sources VALUES ('` + storetest.Digest('s') + `', 'batch', 3, 1);
			INSERT INTO installations VALUES ('PUMP-1', '` + storetest.Digest('a') + `', 'pump', '2.3.0', 5);`,
	} {
		db, err := sql.Open("sqlite", filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		_, err = db.Exec(`PRAGMA journal_mode=WAL; ` + q)
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

// The rows of an earlier wardgate's databases move into wardgate.db once:
// an import cut short before its commit runs again whole on the next open,
// and nothing is doubled. log.db becomes wardgate.db, server.db goes,
// ledger.db is left as a stub an earlier wardgate refuses.
func TestEarlierDatabasesMoved(t *testing.T) {
	dir := t.TempDir()
	earlierFiles(t, dir)
	crash := errors.New("power cut")
	restore := sqlite.SetFailImport(func(what string) error {
		if filepath.Base(what) == "server.db" {
			return crash
		}
		return nil
	})
	_, err := sqlite.Open(t.Context(), dir)
	restore()
	if !errors.Is(err, crash) {
		t.Fatalf("err = %v, want the injected failure", err)
	}
	for _, name := range []string{"server.db", "egress.db", "wardgate.db"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Fatalf("%s after the failed import: %v", name, err)
		}
	}
	for range 2 { // the second open finds nothing left to move
		db, err := sqlite.Open(t.Context(), dir)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := db.Releases(t.Context(), "acme", "pump")
		if err != nil || len(rs) != 1 || rs[0].Version != "2.3.0" || !rs[0].Allowed {
			t.Fatalf("releases %+v, %v", rs, err)
		}
		toks, err := db.ListTokens(t.Context())
		if err != nil || len(toks) != 1 || toks[0].Name != "ci" {
			t.Fatalf("tokens %+v, %v", toks, err)
		}
		au, err := db.AuditLog(t.Context(), store.AuditFilter{})
		if err != nil || len(au) != 2 || au[0].RequestID != "r1" || au[1].RequestID != "r2" {
			t.Fatalf("audit %+v, %v", au, err)
		}
		ins, err := db.Installations(t.Context())
		if err != nil || len(ins) != 1 || ins[0].Device != "PUMP-1" {
			t.Fatalf("installations %+v, %v", ins, err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	var left []string
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), "-wal") && !strings.HasSuffix(e.Name(), "-shm") {
			left = append(left, e.Name())
		}
	}
	if want := []string{"egress.db", "ledger.db", "wardgate.db"}; !slices.Equal(left, want) {
		t.Fatalf("state directory holds %v, want %v", left, want)
	}
	raw, err := sql.Open("sqlite", filepath.Join(dir, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var v, tables int
	if err := raw.QueryRow(`SELECT max(version), (SELECT count(*) FROM sqlite_master WHERE type = 'table') FROM schema_migrations`).Scan(&v, &tables); err != nil || v != 1000 || tables != 1 {
		t.Fatalf("ledger.db stub: version %d, %d tables, %v", v, tables, err)
	}
}

// A log.db beside a wardgate.db means an earlier wardgate ran on the
// directory after this one: which log to keep is the operator's call.
func TestEarlierLogBesideNewRefused(t *testing.T) {
	dir := t.TempDir()
	open(t, dir).Close()
	earlier := t.TempDir()
	earlierFiles(t, earlier)
	b, err := os.ReadFile(filepath.Join(earlier, "log.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "log.db"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = sqlite.Open(t.Context(), dir)
	var se *sqlite.StateDirError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "it holds both log.db (an earlier wardgate's log) and wardgate.db") {
		t.Fatalf("err = %v", err)
	}
}
