package attest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"sync"

	"github.com/transparency-dev/merkle/proof"
)

// Problem codes reported by VerifyPack. Stable.
const (
	ProblemManifestSignature = "manifest-signature" // manifest.sig does not verify, or is missing
	ProblemFileMissing       = "file-missing"       // a file the manifest lists is absent
	ProblemFileExtra         = "file-unexpected"    // a file the manifest does not list
	ProblemFileDigest        = "file-digest"        // a file's SHA-256 differs from the manifest's
	ProblemCheckpoint        = "checkpoint"         // the checkpoint is forged, from another log, or disagrees with the manifest
	ProblemEntrySignature    = "entry-signature"    // an envelope does not verify with the key
	ProblemEntryProof        = "entry-inclusion"    // an entry's inclusion proof fails
	ProblemEntryOrder        = "entry-order"        // indices not strictly increasing, or beyond the tree
	ProblemEntryCount        = "entry-count"        // fewer or more entries than the manifest says
	ProblemRoot              = "root-mismatch"      // a complete pack's entries do not rebuild the checkpoint root
	ProblemConsistency       = "consistency"        // the auditor's earlier checkpoint is not a prefix of this one
	ProblemKey               = "key-mismatch"       // the pack was signed by another key than the one given
	ProblemFileType          = "file-type"          // a pack file is not a regular file (named pipe, device...); it is not read
	ProblemArchive           = "archive-integrity"  // a .tar.gz pack's gzip stream fails its CRC or length, ends early, or has data after it
	ProblemNotChecked        = "not-checked"        // a .tar.gz pack whose manifest signature fails is not read further
)

// Problem is one precise verification failure.
type Problem struct {
	Code    string `json:"code"`
	File    string `json:"file,omitempty"`
	Index   *int64 `json:"index,omitempty"`
	Message string `json:"message"`
}

// PackReport is the result of verifying a pack.
type PackReport struct {
	Intact     bool      `json:"intact"`
	Origin     string    `json:"origin"`
	TreeSize   uint64    `json:"treeSize"`
	Entries    uint64    `json:"entries"`
	Complete   bool      `json:"complete"`
	Consistent *bool     `json:"consistentWithEarlierCheckpoint,omitempty"`
	Problems   []Problem `json:"problems"`
}

func (r *PackReport) add(code, file string, index int64, format string, args ...any) {
	p := Problem{Code: code, File: file, Message: fmt.Sprintf(format, args...)}
	if index >= 0 {
		i := index
		p.Index = &i
	}
	r.Problems = append(r.Problems, p)
}

// Pack reading limits. A .tar.gz pack is never unpacked: it is read as a
// stream, twice at most, and these bound what the stream may hold.
const (
	MaxPackFiles     = 100_000
	MaxPackFileBytes = 8 << 30  // index.jsonl of a large log
	MaxPackBytes     = 16 << 30 // the whole pack, uncompressed
	// MaxPackRatio bounds how far a .tar.gz pack may expand: at most this
	// many times its compressed size (and at least minPackBudget). Packs
	// hold JSON, base64 and PEM, which gzip shrinks about 3 to 5 times.
	MaxPackRatio     = 100
	minPackBudget    = 64 << 20
	maxIndexLine     = 16 << 20 // one index line (an envelope and its proof)
	maxManifestBytes = 64 << 20
)

// VerifyPack verifies a pack (directory or .tar.gz) offline with nothing but
// the service public key. sinceCheckpoint, if not nil, is an earlier
// checkpoint the auditor kept: the pack's must extend it. An error is
// returned only when the pack cannot be read at all (ErrPackUnreadable) or
// ctx is done; tampering is reported as problems in the report.
//
// Only regular files are read: a named pipe, device or socket in a
// directory pack is reported (file-type), never opened. A .tar.gz pack is
// never unpacked: a first pass over the stream reads the manifest, its
// signature and the other small files into memory and hashes the rest,
// within MaxPackFiles, MaxPackBytes and MaxPackRatio, and checks the gzip
// trailer (CRC and length) and that nothing follows it; only when the
// manifest's signature verifies does a second pass verify the index's
// entries.
func VerifyPack(ctx context.Context, packPath string, pubPEM []byte, sinceCheckpoint []byte) (*PackReport, error) {
	v, err := NewVerifier(pubPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: key: %v", ErrPackUnreadable, err)
	}
	st, err := os.Stat(packPath)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPackUnreadable, err)
	}
	var src packSource
	switch {
	case st.IsDir():
		src = &dirPack{dir: packPath}
	case st.Mode().IsRegular():
		tp, err := openTarPack(ctx, packPath)
		if err != nil {
			return nil, err
		}
		defer tp.f.Close()
		src = tp
	default:
		return nil, fmt.Errorf("%w: %s is a %s, not a directory or a regular file", ErrPackUnreadable, packPath, fileKind(st.Mode()))
	}
	return verifyPack(ctx, src, v, sinceCheckpoint)
}

// packSource is a pack to verify: a directory, or a .tar.gz read as a
// stream.
type packSource interface {
	// files lists the regular files by slash-separated name, and reports
	// what else the pack holds (links, pipes...) into rep.
	files(ctx context.Context, rep *PackReport) (map[string]bool, error)
	// read returns a small file whole, within max bytes.
	read(name string, max int64) ([]byte, error)
	// digest returns a file's sha256:<hex>.
	digest(ctx context.Context, name string) (string, error)
	// index calls fn with index.jsonl's content; ok false when the pack's
	// index could not be read (a problem is in rep).
	index(ctx context.Context, rep *PackReport, fn func(io.Reader)) error
	// streamed reports whether the pack is read as a stream (a .tar.gz),
	// whose index is not read when the manifest signature fails.
	streamed() bool
}

func verifyPack(ctx context.Context, src packSource, v *Verifier, since []byte) (*PackReport, error) {
	rep := &PackReport{Problems: []Problem{}}
	if tp, ok := src.(*tarPack); ok {
		rep.Problems = append(rep.Problems, tp.problems...)
	}
	mb, err := src.read(fileManifest, maxManifestBytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrPackUnreadable, fileManifest, err)
	}
	var m Manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrPackUnreadable, fileManifest, err)
	}
	if m.Schema != PackSchema {
		return nil, fmt.Errorf("%w: %s: schema %q, want %q", ErrPackUnreadable, fileManifest, m.Schema, PackSchema)
	}
	rep.Origin, rep.TreeSize, rep.Complete = m.Origin, m.TreeSize, m.Complete
	if m.KeyID != v.KeyID() {
		rep.add(ProblemKey, fileManifest, -1, "pack says it was signed by key %s, the key given is %s", m.KeyID, v.KeyID())
	}
	// 1. The manifest's signature.
	signed := false
	sig, err := src.read(fileManifestSig, MaxStatementBytes)
	switch {
	case err != nil:
		rep.add(ProblemManifestSignature, fileManifestSig, -1, "manifest signature missing: %v", err)
	default:
		pt, payload, err := v.OpenEnvelope(sig)
		switch {
		case err != nil:
			rep.add(ProblemManifestSignature, fileManifestSig, -1, "manifest signature does not verify: %v", err)
		case pt != ManifestPayloadType || !bytes.Equal(payload, mb):
			rep.add(ProblemManifestSignature, fileManifest, -1, "manifest.json is not the manifest that was signed")
		default:
			signed = true
		}
	}
	// 2. Every file listed, present, unchanged; nothing extra.
	present, err := src.files(ctx, rep)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(m.Files))
	for n := range m.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if !present[n] {
			if !hasProblem(rep, ProblemFileType, n) {
				rep.add(ProblemFileMissing, n, -1, "listed in the manifest but missing from the pack")
			}
			continue
		}
		got, err := src.digest(ctx, n)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			rep.add(ProblemFileMissing, n, -1, "unreadable: %v", err)
			continue
		}
		if got != m.Files[n] {
			rep.add(ProblemFileDigest, n, -1, "SHA-256 is %s, the manifest says %s", got, m.Files[n])
		}
	}
	var extra []string
	for n := range present {
		if _, ok := m.Files[n]; !ok && n != fileManifest && n != fileManifestSig {
			extra = append(extra, n)
		}
	}
	sort.Strings(extra)
	for _, n := range extra {
		rep.add(ProblemFileExtra, n, -1, "not listed in the manifest")
	}
	// 3. The checkpoint.
	cpb, err := src.read(fileCheckpoint, maxCheckpointBytes)
	if err != nil {
		rep.add(ProblemCheckpoint, fileCheckpoint, -1, "checkpoint unreadable: %v", err)
		return finish(rep), nil
	}
	cp, err := ParseCheckpoint(cpb, m.Origin, v)
	if err != nil {
		rep.add(ProblemCheckpoint, fileCheckpoint, -1, "%v", err)
		return finish(rep), nil
	}
	if cp.Size != m.TreeSize {
		rep.add(ProblemCheckpoint, fileCheckpoint, -1, "checkpoint size %d, the manifest says %d", cp.Size, m.TreeSize)
	}
	// 4. Consistency with the auditor's earlier checkpoint.
	if since != nil {
		ok := verifyConsistency(rep, src, since, cp, v)
		rep.Consistent = &ok
	}
	// 5. Every entry: signature, order, inclusion in the checkpoint's tree.
	if !signed && src.streamed() {
		rep.add(ProblemNotChecked, fileIndex, -1, "the manifest signature does not verify: the entries were not read")
		return finish(rep), nil
	}
	if err := src.index(ctx, rep, func(r io.Reader) { verifyIndex(ctx, rep, r, cp, v, m) }); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return finish(rep), nil
}

func hasProblem(rep *PackReport, code, file string) bool {
	for _, p := range rep.Problems {
		if p.Code == code && p.File == file {
			return true
		}
	}
	return false
}

func finish(rep *PackReport) *PackReport {
	rep.Intact = len(rep.Problems) == 0
	return rep
}

func verifyConsistency(rep *PackReport, src packSource, since []byte, cp Checkpoint, v *Verifier) bool {
	old, err := ParseCheckpoint(since, cp.Origin, v)
	if err != nil {
		rep.add(ProblemConsistency, "", -1, "earlier checkpoint: %v", err)
		return false
	}
	if old.Size > cp.Size {
		rep.add(ProblemConsistency, "", -1, "earlier checkpoint has %d entries, the pack's only %d: the log was truncated", old.Size, cp.Size)
		return false
	}
	b, err := src.read(fileConsistency, maxManifestBytes)
	if err != nil {
		rep.add(ProblemConsistency, fileConsistency, -1, "the pack has no consistency proof; export it with --since-checkpoint")
		return false
	}
	var c ConsistencyFile
	if err := json.Unmarshal(b, &c); err != nil {
		rep.add(ProblemConsistency, fileConsistency, -1, "%v", err)
		return false
	}
	if c.FromSize != old.Size || c.ToSize != cp.Size {
		rep.add(ProblemConsistency, fileConsistency, -1, "proof is from %d to %d, need %d to %d", c.FromSize, c.ToSize, old.Size, cp.Size)
		return false
	}
	p, err := unhexAll(c.Proof)
	if err == nil {
		err = proof.VerifyConsistency(hasher, old.Size, cp.Size, p, old.Root, cp.Root)
	}
	if err != nil {
		rep.add(ProblemConsistency, fileConsistency, -1, "the earlier checkpoint is not a prefix of this log: %v", err)
		return false
	}
	return true
}

func verifyIndex(ctx context.Context, rep *PackReport, r io.Reader, cp Checkpoint, v *Verifier, m Manifest) {
	br := bufio.NewReaderSize(r, 1<<20)
	sigs := newSigChecker(v)
	defer func() {
		rep.Problems = append(rep.Problems, sigs.wait()...)
	}()
	var n uint64
	next := int64(0)
	tree := factory.NewEmptyRange(0)
	complete := m.Complete
	for lineNo := 1; ; lineNo++ {
		if lineNo%1024 == 0 && ctx.Err() != nil {
			return // VerifyPack returns ctx's error
		}
		line, err := readLine(br)
		if err == io.EOF {
			break
		}
		if err != nil {
			rep.add(ProblemEntryOrder, fileIndex, -1, "line %d: %v", lineNo, err)
			return
		}
		var l IndexLine
		if err := json.Unmarshal(line, &l); err != nil {
			rep.add(ProblemEntryOrder, fileIndex, -1, "line %d: %v", lineNo, err)
			continue
		}
		n++
		idx := int64(l.Index)
		if idx < next || l.Index >= cp.Size {
			rep.add(ProblemEntryOrder, fileIndex, idx, "entry %d on line %d is out of order (expected index %d or later, below tree size %d)", l.Index, lineNo, next, cp.Size)
		}
		if complete && idx != next {
			rep.add(ProblemEntryOrder, fileIndex, idx, "entry %d on line %d: a complete pack must hold entry %d here (removed or swapped)", l.Index, lineNo, next)
			complete = false // root rebuild is meaningless now; inclusion proofs still say which
		}
		next = idx + 1
		env, err := base64.StdEncoding.DecodeString(l.Envelope)
		if err != nil {
			rep.add(ProblemEntrySignature, fileIndex, idx, "entry %d: envelope is not base64", l.Index)
			continue
		}
		sigs.check(idx, env)
		leaf := hasher.HashLeaf(env)
		p, err := unhexAll(l.InclusionProof)
		if err == nil {
			err = proof.VerifyInclusion(hasher, l.Index, cp.Size, leaf, p, cp.Root)
		}
		var rm proof.RootMismatchError
		switch {
		case errors.As(err, &rm):
			rep.add(ProblemEntryProof, fileIndex, idx, "entry %d is not in the checkpoint's tree: its proof gives root %x, the checkpoint says %x", l.Index, rm.CalculatedRoot, rm.ExpectedRoot)
		case err != nil:
			rep.add(ProblemEntryProof, fileIndex, idx, "entry %d is not in the checkpoint's tree: %v", l.Index, err)
		}
		if complete {
			if err := tree.Append(leaf, nil); err != nil {
				complete = false
			}
		}
	}
	rep.Entries = n
	if n != m.Entries {
		rep.add(ProblemEntryCount, fileIndex, -1, "%d entries, the manifest says %d", n, m.Entries)
	}
	if m.Complete && complete {
		if tree.End() != cp.Size {
			rep.add(ProblemEntryCount, fileIndex, -1, "a complete pack must hold all %d entries, it holds %d", cp.Size, tree.End())
		} else if root, err := tree.GetRootHash(nil); err != nil || (cp.Size > 0 && !bytes.Equal(root, cp.Root)) {
			rep.add(ProblemRoot, fileIndex, -1, "the entries rebuild root %x, the checkpoint says %x", root, cp.Root)
		}
	}
}

func readLine(br *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > maxIndexLine {
			return nil, fmt.Errorf("line longer than %d bytes", maxIndexLine)
		}
		switch {
		case err == nil:
			return bytes.TrimRight(buf, "\r\n"), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF && len(buf) > 0:
			return buf, nil
		default:
			return nil, err
		}
	}
}

func unhexAll(ss []string) ([][]byte, error) {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		b, err := hex.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("proof hash %d is not hex", i)
		}
		out[i] = b
	}
	return out, nil
}

// sigChecker verifies envelope signatures on every core while the index is
// read in order; memory stays bounded by the queue length.
type sigChecker struct {
	jobs     chan sigJob
	problems chan Problem
	done     chan []Problem
	workers  sync.WaitGroup
}

type sigJob struct {
	index int64
	env   []byte
}

func newSigChecker(v *Verifier) *sigChecker {
	c := &sigChecker{jobs: make(chan sigJob, 256), problems: make(chan Problem, 64), done: make(chan []Problem, 1)}
	for range runtime.GOMAXPROCS(0) {
		c.workers.Add(1)
		go func() {
			defer c.workers.Done()
			for j := range c.jobs {
				if _, err := v.VerifyStatement(j.env); err != nil {
					i := j.index
					c.problems <- Problem{Code: ProblemEntrySignature, File: fileIndex, Index: &i, Message: fmt.Sprintf("entry %d: %v", j.index, err)}
				}
			}
		}()
	}
	go func() {
		var ps []Problem
		for p := range c.problems {
			ps = append(ps, p)
		}
		sort.Slice(ps, func(a, b int) bool { return *ps[a].Index < *ps[b].Index })
		c.done <- ps
	}()
	return c
}

func (c *sigChecker) check(index int64, env []byte) { c.jobs <- sigJob{index, env} }

// wait returns the signature problems, in index order.
func (c *sigChecker) wait() []Problem {
	close(c.jobs)
	c.workers.Wait()
	close(c.problems)
	return <-c.done
}
