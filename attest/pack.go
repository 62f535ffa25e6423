package attest

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
)

// Pack file names and types.
const (
	PackSchema          = "wardgate.dev/evidence-pack/v1"
	ManifestPayloadType = "application/vnd.wardgate.pack-manifest+json"
	fileManifest        = "manifest.json"
	fileManifestSig     = "manifest.sig"
	fileCheckpoint      = "checkpoint"
	fileKey             = "key.pub"
	fileIndex           = "index.jsonl"
	fileConsistency     = "consistency.json"
	dirBlobs            = "blobs"
)

// Manifest lists every file of a pack with its SHA-256; it is signed
// (manifest.sig, a DSSE envelope) so that a pack cannot lose or gain entries
// unnoticed even when it holds only some of the log.
type Manifest struct {
	Schema   string            `json:"schema"`
	Origin   string            `json:"origin"`
	KeyID    string            `json:"keyId"`
	Created  time.Time         `json:"created"`
	TreeSize uint64            `json:"treeSize"`
	Entries  uint64            `json:"entries"`
	Complete bool              `json:"complete"` // every entry of the log up to treeSize
	Filter   ExportFilter      `json:"filter"`
	Files    map[string]string `json:"files"` // name -> sha256:<hex>
}

// ExportFilter records what an export selected.
type ExportFilter struct {
	Since    *time.Time `json:"since,omitempty"`
	Until    *time.Time `json:"until,omitempty"`
	Artifact string     `json:"artifact,omitempty"`
	Device   string     `json:"device,omitempty"`
}

// IndexLine is one line of index.jsonl: an entry with its inclusion proof
// against the pack's checkpoint.
type IndexLine struct {
	Index          uint64    `json:"index"`
	Time           time.Time `json:"time"`
	Artifact       string    `json:"artifact"`
	Device         string    `json:"device,omitempty"`
	Envelope       string    `json:"envelope"` // base64 of the exact bytes logged
	InclusionProof []string  `json:"inclusionProof"`
	Refs           []string  `json:"refs,omitempty"`
}

// ConsistencyFile proves an earlier checkpoint is a prefix of this pack's.
type ConsistencyFile struct {
	FromSize uint64   `json:"fromSize"`
	ToSize   uint64   `json:"toSize"`
	Proof    []string `json:"proof"`
}

// ExportOptions select entries and extras.
type ExportOptions struct {
	Filter Filter
	// SinceCheckpoint, when set, is an auditor's earlier checkpoint note:
	// the pack carries a consistency proof from it.
	SinceCheckpoint []byte
	Now             func() time.Time
}

// Export writes an evidence pack to out: a directory, or a .tar.gz when out
// ends in .tar.gz or .tgz. It is written beside out under a temporary name
// and renamed into place, so a failed export leaves nothing behind. At
// most WithExports exports of one Log run at once; Export waits for its
// turn within ctx.
func (l *Log) Export(ctx context.Context, out string, opts ExportOptions) (*Manifest, error) {
	if _, err := os.Lstat(out); err == nil {
		return nil, fmt.Errorf("export: %s exists; refusing to overwrite", out)
	}
	select {
	case l.exports <- struct{}{}:
		defer func() { <-l.exports }()
	case <-ctx.Done():
		return nil, fmt.Errorf("export: waiting for one of %d export slots: %w", cap(l.exports), ctx.Err())
	}
	tarball := strings.HasSuffix(out, ".tar.gz") || strings.HasSuffix(out, ".tgz")
	stage, err := os.MkdirTemp(filepath.Dir(out), ".wardgate-pack-")
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	defer os.RemoveAll(stage)
	m, err := l.stage(ctx, stage, opts)
	if err != nil {
		return nil, err
	}
	if tarball {
		tmp := stage + ".tar.gz"
		if err := writeTarGz(tmp, stage); err != nil {
			os.Remove(tmp)
			return nil, err
		}
		if err := os.Rename(tmp, out); err != nil {
			os.Remove(tmp)
			return nil, fmt.Errorf("export: %w", err)
		}
		return m, nil
	}
	if err := os.Rename(stage, out); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	return m, nil
}

func (l *Log) stage(ctx context.Context, dir string, opts ExportOptions) (*Manifest, error) {
	cp := l.Checkpoint()
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	m := &Manifest{Schema: PackSchema, Origin: cp.Origin, KeyID: l.signer.KeyID(), Created: now().UTC(), TreeSize: cp.Size, Files: map[string]string{}}
	f := opts.Filter
	if !f.Since.IsZero() {
		t := f.Since.UTC()
		m.Filter.Since = &t
	}
	if !f.Until.IsZero() {
		t := f.Until.UTC()
		m.Filter.Until = &t
	}
	m.Filter.Artifact, m.Filter.Device = f.Artifact, f.Device
	if err := os.WriteFile(filepath.Join(dir, fileCheckpoint), cp.Note, 0o644); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	pub, err := l.signer.PublicKeyPEM()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, fileKey), pub, 0o644); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if opts.SinceCheckpoint != nil {
		old, err := ParseCheckpoint(opts.SinceCheckpoint, cp.Origin, l.signer.Verifier())
		if err != nil {
			return nil, fmt.Errorf("export: --since-checkpoint: %w", err)
		}
		p, err := l.ConsistencyProof(ctx, old.Size, cp.Size)
		if err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
		b, _ := json.MarshalIndent(ConsistencyFile{FromSize: old.Size, ToSize: cp.Size, Proof: hexAll(p)}, "", "  ")
		if err := os.WriteFile(filepath.Join(dir, fileConsistency), b, 0o644); err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
	}
	idx, err := os.Create(filepath.Join(dir, fileIndex))
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	bw := bufio.NewWriterSize(idx, 1<<20)
	refs := map[string]bool{}
	cache := &nodeCache{m: map[compact.NodeID][]byte{}, max: 1 << 18} // at most ~40 MB
	err = l.Entries(ctx, f, func(e Entry) error {
		if e.Index >= cp.Size {
			return nil // appended after the checkpoint was taken
		}
		p, err := l.inclusionProof(ctx, e.Index, cp.Size, cache)
		if err != nil {
			return err
		}
		line, err := json.Marshal(IndexLine{Index: e.Index, Time: e.Time, Artifact: e.Artifact, Device: e.Device,
			Envelope: base64.StdEncoding.EncodeToString(e.Envelope), InclusionProof: hexAll(p), Refs: e.Refs})
		if err != nil {
			return err
		}
		bw.Write(line)
		bw.WriteByte('\n')
		for _, r := range e.Refs {
			refs[r] = true
		}
		m.Entries++
		return nil
	})
	if err == nil {
		err = bw.Flush()
	}
	if cerr := idx.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	m.Complete = m.Entries == cp.Size && f == (Filter{})
	if len(refs) > 0 {
		if err := os.Mkdir(filepath.Join(dir, dirBlobs), 0o755); err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
	}
	for r := range refs {
		b, err := l.Blob(ctx, r)
		if err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, dirBlobs, blobFileName(r)), b.Data, 0o644); err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
	}
	if err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		sum, err := fileDigest(path)
		if err != nil {
			return err
		}
		m.Files[filepath.ToSlash(rel)] = sum
		return nil
	}); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, fileManifest), mb, 0o644); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	sig, err := l.signer.SignPayload(ctx, ManifestPayloadType, mb)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, fileManifestSig), sig, 0o644); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	return m, nil
}

func blobFileName(digest string) string { return strings.Replace(digest, ":", "-", 1) }

func hexAll(bs [][]byte) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = hex.EncodeToString(b)
	}
	return out
}

func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

func writeTarGz(dst, dir string) error {
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	var names []string
	err = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		names = append(names, path)
		return nil
	})
	sort.Strings(names)
	for _, path := range names {
		if err != nil {
			break
		}
		err = func() error {
			st, err := os.Stat(path)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, path)
			if err := tw.WriteHeader(&tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, Size: st.Size(), ModTime: st.ModTime(), Typeflag: tar.TypeReg}); err != nil {
				return err
			}
			src, err := os.Open(path)
			if err != nil {
				return err
			}
			defer src.Close()
			_, err = io.Copy(tw, src)
			return err
		}()
	}
	for _, c := range []io.Closer{tw, gz} {
		if cerr := c.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// ParseCheckpoint verifies a signed checkpoint note against the key and
// origin and returns it.
func ParseCheckpoint(noteBytes []byte, origin string, v *Verifier) (Checkpoint, error) {
	if len(noteBytes) > maxCheckpointBytes {
		return Checkpoint{}, fmt.Errorf("checkpoint: over %d bytes", maxCheckpointBytes)
	}
	nv, err := v.NoteVerifier(origin)
	if err != nil {
		return Checkpoint{}, err
	}
	cp, _, _, err := log.ParseCheckpoint(noteBytes, origin, nv)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint: %w", err)
	}
	return Checkpoint{Origin: cp.Origin, Size: cp.Size, Root: cp.Hash, Note: noteBytes}, nil
}

const maxCheckpointBytes = 64 << 10

// ErrPackUnreadable is wrapped when a pack cannot be read at all (exit 2),
// as against a pack that reads but fails verification (exit 1).
var ErrPackUnreadable = errors.New("pack unreadable")
