package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
// after the rows are written, as a crash before the commit would.
var failImport func(dir string) error

// importLegacy moves what an earlier wardgate kept in files into the
// databases: the kept evaluations into ledger.db, the SBOMs into log.db's
// blobs. Each directory is imported in one transaction and removed only
// once that transaction is committed: a crash at any point leaves either
// the files (imported again, idempotently, on the next open) or the rows,
// never neither.
func (db *DB) importLegacy(ctx context.Context) error {
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
	return importDir(ctx, db.ledger, dir, ".json", func(tx *sql.Tx, digest, path string, b []byte) error {
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
	return importDir(ctx, db.log, dir, "", func(tx *sql.Tx, digest, path string, b []byte) error {
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
	d, err := os.Open(filepath.Dir(dir))
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
