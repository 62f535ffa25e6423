// Command mkblobs writes N random blobs of a given size, signs each with a
// fresh ECDSA P-256 key the way `cosign sign-blob` does (base64 signature of
// the SHA-256), and writes the public key and a --batch list. It is the
// input generator for the verify benchmarks under bench/.
package main

import (
	"bufio"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"
)

func main() {
	dir := flag.String("dir", "bench/out/blobs", "output directory")
	n := flag.Int("n", 200, "number of blobs")
	size := flag.Int64("size", 1<<20, "bytes per blob")
	flag.Parse()
	if err := run(*dir, *n, *size); err != nil {
		fmt.Fprintln(os.Stderr, "mkblobs:", err)
		os.Exit(1)
	}
}

func run(dir string, n int, size int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	pub, err := cryptoutils.MarshalPublicKeyToPEM(key.Public())
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pub"), pub, 0o644); err != nil {
		return err
	}
	signer, err := signature.LoadECDSASigner(key, crypto.SHA256)
	if err != nil {
		return err
	}
	list, err := os.Create(filepath.Join(dir, "list.txt"))
	if err != nil {
		return err
	}
	defer list.Close()
	lw := bufio.NewWriter(list)
	rng := mrand.NewChaCha8([32]byte{1})
	for i := range n {
		path := filepath.Join(dir, fmt.Sprintf("blob-%04d.bin", i))
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		h := sha256.New()
		if _, err := io.CopyN(io.MultiWriter(f, h), rng, size); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		sig, err := signer.SignMessage(nil, options.WithDigest(h.Sum(nil)))
		if err != nil {
			return err
		}
		sigPath := path + ".sig"
		if err := os.WriteFile(sigPath, []byte(base64.StdEncoding.EncodeToString(sig)), 0o644); err != nil {
			return err
		}
		abs, _ := filepath.Abs(path)
		absSig, _ := filepath.Abs(sigPath)
		fmt.Fprintf(lw, "%s %s\n", abs, absSig)
	}
	return lw.Flush()
}
