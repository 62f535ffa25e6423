package vuln

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	osvpb "github.com/ossf/osv-schema/bindings/go/osvschema"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
)

// FileName is the database file Import writes in the state directory.
const FileName = "vulndb.osv.gz"

// FormatOSV names the only database format: OSV records.
const FormatOSV = "osv"

// fileFormat is the first line's format of the database file; another
// value is refused by Open.
const fileFormat = "wardgate.dev/vulndb/osv/v1"

// Limits on what Import reads and Open loads.
const (
	MaxRecordBytes = 8 << 20   // one OSV record (JSON)
	MaxRecords     = 2_000_000 // records in one database
	MaxTotalBytes  = 4 << 30   // all records, uncompressed
)

// ErrNoDatabase is wrapped by Open when no database was imported (it also
// matches os.ErrNotExist).
var ErrNoDatabase = errors.New("vuln: no vulnerability database is imported; import one with wardgate vuln db import")

// ErrInvalid is wrapped by every error about a record or a database file
// that is not what it must be.
var ErrInvalid = errors.New("vuln: invalid database")

// Info describes an imported database. It is written at import and shown
// with every result.
type Info struct {
	// Format is FormatOSV.
	Format string `json:"format"`
	// Digest is "sha256:<hex>" over the stored records (one JSON record a
	// line, sorted by ID): the same records give the same digest.
	Digest string `json:"digest"`
	// Sources are the files or directories imported (base names).
	Sources []string `json:"sources"`
	// Records is the number of records.
	Records int `json:"records"`
	// Ecosystems counts records by the ecosystems they name (a record
	// naming two counts in both).
	Ecosystems map[string]int `json:"ecosystems"`
	// BuiltAt is the newest record's modified time: the export is at least
	// this old.
	BuiltAt time.Time `json:"builtAt"`
	// ImportedAt is when Import ran.
	ImportedAt time.Time `json:"importedAt"`
}

// Age is how old the database is at now: the time since BuiltAt.
func (i Info) Age(now time.Time) time.Duration { return now.Sub(i.BuiltAt) }

// header is the first line of the database file.
type header struct {
	Format string `json:"format"`
	Info   Info   `json:"info"`
}

// Path is the database file in the state directory dir.
func Path(dir string) string { return filepath.Join(dir, FileName) }

// ImportOption changes how Import works.
type ImportOption func(*importConfig) error

type importConfig struct {
	now func() time.Time
}

// WithImportClock sets the clock Import records and checks records
// against (no record may be modified more than a day after it).
func WithImportClock(now func() time.Time) ImportOption {
	return func(c *importConfig) error {
		if now == nil {
			return errors.New("vuln: nil clock")
		}
		c.now = now
		return nil
	}
}

// maxFutureSkew is how far after the import clock a record's modified time
// may lie: further would make a stale database look fresh.
const maxFutureSkew = 24 * time.Hour

// Import reads OSV records from sources (each a zip of JSON files as
// osv.dev exports an ecosystem, a directory of JSON files, or one JSON
// file), checks every record, and replaces the database in the state
// directory dir with them. Nothing is written unless every record is good:
// the error names the source, the file and what is wrong.
func Import(ctx context.Context, dir string, sources []string, opts ...ImportOption) (Info, error) {
	cfg := importConfig{now: time.Now}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return Info{}, err
		}
	}
	if len(sources) == 0 {
		return Info{}, errors.New("vuln: no source to import")
	}
	now := cfg.now().UTC()
	type rec struct {
		id       string
		modified time.Time
		data     []byte
		where    string
	}
	byID := map[string]rec{}
	info := Info{Format: FormatOSV, Ecosystems: map[string]int{}, ImportedAt: now}
	var total int64
	var errs []error
	for _, src := range sources {
		info.Sources = append(info.Sources, filepath.Base(src))
		err := readSource(ctx, src, func(name string, data []byte) error {
			where := src + ": " + name
			total += int64(len(data))
			if total > MaxTotalBytes {
				return fmt.Errorf("%w: %s: the records are larger than %d bytes in all", ErrInvalid, src, int64(MaxTotalBytes))
			}
			v, compact, err := checkRecord(data, now)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", where, err))
				if len(errs) >= 20 {
					return errors.New("vuln: stopped after 20 bad records")
				}
				return nil
			}
			r := rec{id: v.GetId(), modified: v.GetModified().AsTime(), data: compact, where: where}
			if old, ok := byID[r.id]; ok && !r.modified.After(old.modified) {
				return nil // the same record from another export: keep the newest
			}
			if _, ok := byID[r.id]; !ok && len(byID) >= MaxRecords {
				return fmt.Errorf("%w: more than %d records", ErrInvalid, MaxRecords)
			}
			byID[r.id] = r
			return nil
		})
		if err != nil {
			return Info{}, errors.Join(append(errs, err)...)
		}
	}
	if len(errs) > 0 {
		return Info{}, errors.Join(errs...)
	}
	if len(byID) == 0 {
		return Info{}, fmt.Errorf("%w: no OSV records in %v", ErrInvalid, sources)
	}
	recs := slices.SortedFunc(maps.Values(byID), func(a, b rec) int { return cmp.Compare(a.id, b.id) })
	h := sha256.New()
	for _, r := range recs {
		h.Write(r.data)
		h.Write([]byte{'\n'})
		if r.modified.After(info.BuiltAt) {
			info.BuiltAt = r.modified
		}
		for _, e := range recordEcosystems(r.data) {
			info.Ecosystems[e]++
		}
	}
	info.Records = len(recs)
	info.Digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	info.BuiltAt = info.BuiltAt.UTC()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Info{}, fmt.Errorf("vuln: state directory: %w", err)
	}
	err := writeAtomic(Path(dir), func(w io.Writer) error {
		zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
		hb, err := json.Marshal(header{Format: fileFormat, Info: info})
		if err != nil {
			return err
		}
		zw.Write(hb)
		zw.Write([]byte{'\n'})
		for _, r := range recs {
			zw.Write(r.data)
			if _, err := zw.Write([]byte{'\n'}); err != nil {
				return err
			}
		}
		return zw.Close()
	})
	if err != nil {
		return Info{}, fmt.Errorf("vuln: write %s: %w", Path(dir), err)
	}
	return info, nil
}

// recordEcosystems are the distinct ecosystems a (checked) record names.
func recordEcosystems(data []byte) []string {
	var v struct {
		Affected []struct {
			Package struct {
				Ecosystem string `json:"ecosystem"`
			} `json:"package"`
		} `json:"affected"`
	}
	_ = json.Unmarshal(data, &v) // checked by checkRecord already
	var out []string
	for _, a := range v.Affected {
		if e := a.Package.Ecosystem; e != "" && !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out
}

// writeAtomic writes path through a temporary file in the same directory,
// synced and renamed into place: readers see the old file or the new one.
func writeAtomic(path string, fn func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename it is already gone
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := fn(bw); err != nil {
		f.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// DB is a loaded database. It is safe for concurrent use.
type DB struct {
	info Info
	// byName holds the records naming a package, by package name, in
	// record ID order.
	byName map[string][]*osvpb.Vulnerability
	// byID holds every record by ID and by each alias and upstream ID, to
	// rate a record that carries no severity of its own.
	byID map[string][]*osvpb.Vulnerability
	// workers are the matching workers' record copies (Match), one per
	// GOMAXPROCS: the matcher sorts range events in place, so no two
	// goroutines may match against the same copy.
	workers []*workerCache
}

// Info describes the database.
func (db *DB) Info() Info { return db.info }

// Open loads the database in the state directory dir. Without one it
// returns an error wrapping ErrNoDatabase and os.ErrNotExist.
func Open(dir string) (*DB, error) {
	p := Path(dir)
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w (%s): %w", ErrNoDatabase, p, os.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("vuln: %w", err)
	}
	defer f.Close()
	db, err := load(f)
	if err != nil {
		return nil, fmt.Errorf("vuln: %s: %w", p, err)
	}
	return db, nil
}

// ReadInfo reads only the header of the database in dir.
func ReadInfo(dir string) (Info, error) {
	p := Path(dir)
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return Info{}, fmt.Errorf("%w (%s): %w", ErrNoDatabase, p, os.ErrNotExist)
	}
	if err != nil {
		return Info{}, fmt.Errorf("vuln: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return Info{}, fmt.Errorf("vuln: %s: %w: %w", p, ErrInvalid, err)
	}
	br := bufio.NewReaderSize(zr, 64<<10)
	h, err := readHeader(br)
	if err != nil {
		return Info{}, fmt.Errorf("vuln: %s: %w", p, err)
	}
	return h.Info, nil
}

func readHeader(br *bufio.Reader) (header, error) {
	line, err := readLine(br)
	if err != nil {
		return header{}, fmt.Errorf("%w: header: %w", ErrInvalid, err)
	}
	var h header
	if err := json.Unmarshal(line, &h); err != nil {
		return header{}, fmt.Errorf("%w: header: %w", ErrInvalid, err)
	}
	if h.Format != fileFormat {
		return header{}, fmt.Errorf("%w: format %q, want %q (import the database again)", ErrInvalid, h.Format, fileFormat)
	}
	return h, nil
}

// readLine reads one line of at most MaxRecordBytes, without the newline.
func readLine(br *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > MaxRecordBytes+1 {
			return nil, fmt.Errorf("a line longer than %d bytes", MaxRecordBytes)
		}
		switch {
		case err == nil:
			return buf[:len(buf)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(buf) == 0:
			return nil, io.EOF
		case errors.Is(err, io.EOF):
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}

func load(r io.Reader) (*DB, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	br := bufio.NewReaderSize(zr, 1<<20)
	h, err := readHeader(br)
	if err != nil {
		return nil, err
	}
	db := &DB{info: h.Info, byName: map[string][]*osvpb.Vulnerability{}, byID: map[string][]*osvpb.Vulnerability{}}
	for range runtime.GOMAXPROCS(0) {
		db.workers = append(db.workers, &workerCache{copies: map[*osvpb.Vulnerability]*osvpb.Vulnerability{}})
	}
	sum := sha256.New()
	n := 0
	dec := protojson.UnmarshalOptions{DiscardUnknown: true}
	for {
		line, err := readLine(br)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: record %d: %w", ErrInvalid, n+1, err)
		}
		n++
		if n > MaxRecords {
			return nil, fmt.Errorf("%w: more than %d records", ErrInvalid, MaxRecords)
		}
		sum.Write(line)
		sum.Write([]byte{'\n'})
		v := &osvpb.Vulnerability{}
		if err := dec.Unmarshal(line, v); err != nil {
			return nil, fmt.Errorf("%w: record %d: %w", ErrInvalid, n, err)
		}
		trim(v)
		db.add(v)
	}
	if d := "sha256:" + hex.EncodeToString(sum.Sum(nil)); d != h.Info.Digest || n != h.Info.Records {
		return nil, fmt.Errorf("%w: %d records with digest %s, the header says %d with %s: the file is damaged, import the database again", ErrInvalid, n, d, h.Info.Records, h.Info.Digest)
	}
	return db, nil
}

// trim drops what matching and reporting do not read (references,
// credits, all but the first line of the details, database- and
// ecosystem-specific data other than a severity label), so that a loaded
// database costs less memory and less garbage-collector work.
func trim(v *osvpb.Vulnerability) {
	v.References, v.Credits, v.Related = nil, nil, nil
	v.Summary, v.Details = summary(v), ""
	if ds := v.GetDatabaseSpecific(); ds != nil {
		if sev, ok := ds.GetFields()["severity"]; ok {
			v.DatabaseSpecific = &structpb.Struct{Fields: map[string]*structpb.Value{"severity": sev}}
		} else {
			v.DatabaseSpecific = nil
		}
	}
	for _, a := range v.GetAffected() {
		a.DatabaseSpecific, a.EcosystemSpecific = nil, nil
	}
}

func (db *DB) add(v *osvpb.Vulnerability) {
	var names []string
	for _, a := range v.GetAffected() {
		if n := a.GetPackage().GetName(); n != "" && !slices.Contains(names, n) {
			names = append(names, n)
			db.byName[n] = append(db.byName[n], v)
		}
	}
	ids := append([]string{v.GetId()}, v.GetAliases()...)
	for _, id := range append(ids, v.GetUpstream()...) {
		db.byID[id] = append(db.byID[id], v)
	}
}

// checkRecord parses one OSV record and checks what matching relies on.
// It returns the record and its compact JSON.
func checkRecord(data []byte, now time.Time) (*osvpb.Vulnerability, []byte, error) {
	v := &osvpb.Vulnerability{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, v); err != nil {
		return nil, nil, fmt.Errorf("%w: not an OSV record: %w", ErrInvalid, err)
	}
	if v.GetId() == "" {
		return nil, nil, fmt.Errorf("%w: no id", ErrInvalid)
	}
	if v.GetModified() == nil {
		return nil, nil, fmt.Errorf("%w: %s: no modified time (the schema requires one)", ErrInvalid, v.GetId())
	}
	if m := v.GetModified().AsTime(); m.After(now.Add(maxFutureSkew)) {
		return nil, nil, fmt.Errorf("%w: %s: modified %s, after the import time %s: a future-dated record would make the database look fresh", ErrInvalid, v.GetId(), m.Format(time.RFC3339), now.Format(time.RFC3339))
	}
	for i, a := range v.GetAffected() {
		if err := checkAffected(a); err != nil {
			return nil, nil, fmt.Errorf("%w: %s: affected[%d]: %w", ErrInvalid, v.GetId(), i, err)
		}
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, data); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return v, buf.Bytes(), nil
}
