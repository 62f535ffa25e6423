package sqlite_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
