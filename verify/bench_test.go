package verify_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"

	"github.com/wardgate/wardgate/verify"
)

// signedBlob writes a random blob of size bytes and its cosign-style
// ECDSA signature, and returns the paths and the policy that trusts the key.
func signedBlob(b *testing.B, size int64) (string, verify.Signature, *verify.Policy) {
	b.Helper()
	dir := b.TempDir()
	path := filepath.Join(dir, "blob.bin")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), mrand.NewChaCha8([32]byte{7}), size); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	s, err := signature.LoadECDSASigner(key, crypto.SHA256)
	if err != nil {
		b.Fatal(err)
	}
	sig, err := s.SignMessage(nil, options.WithDigest(h.Sum(nil)))
	if err != nil {
		b.Fatal(err)
	}
	pem, err := cryptoutils.MarshalPublicKeyToPEM(key.Public())
	if err != nil {
		b.Fatal(err)
	}
	k, err := verify.ParsePublicKey(pem, "bench")
	if err != nil {
		b.Fatal(err)
	}
	return path, verify.Signature{Source: "bench.sig", Data: []byte(base64.StdEncoding.EncodeToString(sig))}, &verify.Policy{Keys: []verify.Key{k}}
}

var benchSizes = []int64{1 << 20, 256 << 20}

// BenchmarkSHA256File is the baseline: read and SHA-256 the file, nothing
// else. BenchmarkVerifyBlob must stay within 1.2x of it.
func BenchmarkSHA256File(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			path, _, _ := signedBlob(b, size)
			buf := make([]byte, 1<<20)
			b.SetBytes(size)
			for b.Loop() {
				f, err := os.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				h := sha256.New()
				if _, err := io.CopyBuffer(h, struct{ io.Reader }{f}, buf); err != nil {
					b.Fatal(err)
				}
				f.Close()
				_ = h.Sum(nil)
			}
		})
	}
}

// BenchmarkVerifyBlob hashes the file and verifies its signature, end to end
// through the verify API.
func BenchmarkVerifyBlob(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			path, sig, pol := signedBlob(b, size)
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				art, err := verify.HashFile(path)
				if err != nil {
					b.Fatal(err)
				}
				res, err := verify.Blob(b.Context(), art, []verify.Signature{sig}, pol)
				if err != nil || !res.Verified {
					b.Fatalf("%v %v", err, res.Reasons)
				}
			}
		})
	}
}
