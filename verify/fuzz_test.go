package verify

import (
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/sigstore/sigstore-go/pkg/root"
)

func addFiles(f *testing.F, globs ...string) {
	f.Helper()
	for _, g := range globs {
		matches, err := filepath.Glob(g)
		if err != nil {
			f.Fatal(err)
		}
		for _, m := range matches {
			b, err := os.ReadFile(m)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
}

// FuzzParseSignature: any input either parses into a known format whose
// entity is built or refused as malformed, or is refused as malformed; it
// never panics and never yields an unknown format.
func FuzzParseSignature(f *testing.F) {
	addFiles(f, "../fixtures/testdata/sig/*", "../fixtures/testdata/keyless/*.sigstore.json", "../fixtures/testdata/tampered/*.json", "../fixtures/testdata/tampered/*.sig")
	f.Add([]byte(`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"sig":"AAAA"}]}`))
	f.Add([]byte(`{"base64Signature":"AAAA","rekorBundle":{"SignedEntryTimestamp":"AAAA","Payload":{"body":"e30=","integratedTime":1,"logIndex":1,"logID":"00"}}}`))
	digest := sha256.Sum256([]byte("artifact"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := parseSignature(data)
		if err != nil {
			var m *malformedError
			if !errors.As(err, &m) {
				t.Fatalf("parse error is not a malformed error: %T %v", err, err)
			}
			return
		}
		switch p.format {
		case FormatCosignSignature, FormatCosignBundle, FormatSigstoreBundle, FormatDSSE:
		default:
			t.Fatalf("unknown format %q", p.format)
		}
		b, err := p.entity(digest[:])
		if err != nil {
			return
		}
		if b == nil {
			t.Fatal("nil bundle without error")
		}
		_ = p.hasCertificate()
		_ = logEntries(b)
	})
}

// FuzzParsePublicKey: a parsed key always has a 64-hex-digit ID and a
// verifier.
func FuzzParsePublicKey(f *testing.F) {
	addFiles(f, "../fixtures/testdata/keys/*.pub", "../fixtures/testdata/keys/*.key")
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParsePublicKey(data, "fuzz")
		if err != nil {
			var ie *InputError
			if !errors.As(err, &ie) || ie.Code != ReasonBadInput {
				t.Fatalf("want bad-input InputError, got %T %v", err, err)
			}
			return
		}
		if len(k.ID) != 64 {
			t.Fatalf("key ID %q", k.ID)
		}
		if _, err := k.verifier(); err != nil {
			t.Fatalf("parsed key has no verifier: %v", err)
		}
	})
}

// FuzzTrustedRoot: sigstore-go's trusted root parser, as wardgate wraps it,
// never panics.
func FuzzTrustedRoot(f *testing.F) {
	addFiles(f, "../fixtures/testdata/keyless/trusted_root.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := root.NewTrustedRootFromJSON(data)
		if err == nil && tr == nil {
			t.Fatal("nil root without error")
		}
	})
}
