package verify

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/sigstore/sigstore-go/pkg/bundle"
	"google.golang.org/protobuf/proto"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
)

// Artifact is a blob to verify: a file on disk, or only its SHA-256 when the
// caller has the digest and not the content.
type Artifact struct {
	Name   string
	Path   string // empty when only the digest is known
	Digest []byte // SHA-256
	Size   int64
}

// hashBufSize is the read size for hashing: large enough that syscalls are
// noise next to SHA-256, small enough to keep RSS flat.
const hashBufSize = 256 << 10

// hashBufs reuses read buffers across blobs (batch verification hashes
// hundreds of blobs; a fresh buffer each would cost more than the crypto).
var hashBufs = sync.Pool{New: func() any { b := make([]byte, hashBufSize); return &b }}

// HashFile hashes a regular file in one streaming pass; it never holds more
// than one buffer of it in memory.
func HashFile(path string) (Artifact, error) {
	f, err := OpenRegular(path)
	if err != nil {
		return Artifact{}, err
	}
	defer f.Close()
	h := sha256.New()
	buf := hashBufs.Get().(*[]byte)
	defer hashBufs.Put(buf)
	n, err := io.CopyBuffer(h, onlyReader{f}, *buf)
	if err != nil {
		return Artifact{}, inputErr(ReasonBadInput, "read %s: %v", path, err)
	}
	return Artifact{Name: path, Path: path, Digest: h.Sum(nil), Size: n}, nil
}

// onlyReader hides WriterTo/ReaderFrom so CopyBuffer uses our buffer.
type onlyReader struct{ io.Reader }

// ParseDigest parses "sha256:<64 hex>".
func ParseDigest(s string) ([]byte, error) {
	alg, hexd, ok := strings.Cut(s, ":")
	if !ok || alg != "sha256" {
		return nil, inputErr(ReasonBadInput, "digest %q: want sha256:<64 hex digits>", s)
	}
	d, err := hex.DecodeString(hexd)
	if err != nil || len(d) != sha256.Size {
		return nil, inputErr(ReasonBadInput, "digest %q: want sha256:<64 hex digits>", s)
	}
	return d, nil
}

// ArtifactFromArg treats "sha256:<hex>" as a digest and anything else as a
// path to hash.
func ArtifactFromArg(arg string) (Artifact, error) {
	if strings.HasPrefix(arg, "sha256:") {
		if _, err := os.Lstat(arg); err != nil {
			d, err := ParseDigest(arg)
			if err != nil {
				return Artifact{}, err
			}
			return Artifact{Name: arg, Digest: d}, nil
		}
	}
	return HashFile(arg)
}

// DigestString is the artifact's digest as "sha256:<hex>".
func (a Artifact) DigestString() string { return "sha256:" + hex.EncodeToString(a.Digest) }

func (a Artifact) input() artifactInput {
	in := artifactInput{digest: a.Digest}
	if a.Path != "" {
		path := a.Path
		in.open = func() (io.ReadCloser, error) {
			f, err := OpenRegular(path)
			if err != nil {
				return nil, err
			}
			return f, nil
		}
	}
	return in
}

// Blob verifies a blob against its signatures under the policy. It returns a
// Result for every verdict, passed or failed; an error only when no verdict
// could be reached (a bad policy).
func Blob(ctx context.Context, art Artifact, sigs []Signature, pol *Policy) (*Result, error) {
	if err := pol.Validate(); err != nil {
		return nil, err
	}
	e := &engine{pol: pol}
	var results []SignatureResult
	for _, s := range sigs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p, err := parseInput(s)
		if err != nil {
			results = append(results, SignatureResult{Source: s.Source, Format: "unknown", Reason: ReasonMalformed, Detail: err.Error()})
			continue
		}
		if p.b != nil && p.b.GetDsseEnvelope() != nil {
			results = append(results, SignatureResult{Source: s.Source, Format: describeFormat(p), Reason: ReasonMalformed,
				Detail: "this is an attestation (DSSE envelope), not a signature: use `wardgate verify attestation`"})
			continue
		}
		results = append(results, e.checkOne(p, s.Source, art.input(), nil))
	}
	return e.conclude(Subject{Kind: "blob", Name: art.Name, Digest: art.DigestString(), Size: art.Size}, results), nil
}

func isEd25519(k Key) bool {
	_, ok := k.Public.(ed25519.PublicKey)
	return ok
}

func cloneBundle(b *bundle.Bundle) *protobundle.Bundle {
	return proto.Clone(b.Bundle).(*protobundle.Bundle)
}
