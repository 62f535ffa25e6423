// Command mkfirmware writes a large signed pump firmware for the admit
// benchmark: an Alpine root filesystem (tar.gz) whose control program is
// SIZE random bytes, its cosign-style ECDSA signature, the vendor SBOM, the
// public key and a trust configuration that trusts it.
package main

import (
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

	"github.com/wardgate/wardgate/fixtures"
)

func main() {
	dir := flag.String("dir", "bench/out/admit", "output directory")
	size := flag.Int("size", 64<<20, "bytes of the control program")
	flag.Parse()
	if err := run(*dir, *size); err != nil {
		fmt.Fprintln(os.Stderr, "mkfirmware:", err)
		os.Exit(1)
	}
}

func run(dir string, size int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	program := make([]byte, size)
	if _, err := io.ReadFull(mrand.NewChaCha8([32]byte{9}), program); err != nil {
		return err
	}
	fw := fixtures.PumpImage("2.4.0", program)
	fwPath := filepath.Join(dir, "infusion-pump-2.4.0.bin")
	if err := os.WriteFile(fwPath, fw, 0o644); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	s, err := signature.LoadECDSASigner(key, crypto.SHA256)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(fw)
	sig, err := s.SignMessage(nil, options.WithDigest(sum[:]))
	if err != nil {
		return err
	}
	if err := os.WriteFile(fwPath+".sig", []byte(base64.StdEncoding.EncodeToString(sig)), 0o644); err != nil {
		return err
	}
	pub, err := cryptoutils.MarshalPublicKeyToPEM(key.Public())
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "vendor.pub"), pub, 0o644); err != nil {
		return err
	}
	sb, err := fixtures.PumpSBOM("2.4.0")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "infusion-pump-2.4.0.cdx.json"), sb, 0o644); err != nil {
		return err
	}
	trust := `version: 1
sbom:
  required: true
  drift_allowance:
    missing: 1
vendors:
  acme-infusion:
    products:
      infusion-pump:
        device_classes: [infusion-pump]
        authorities:
          keys:
            - path: vendor.pub
`
	return os.WriteFile(filepath.Join(dir, "trust.yaml"), []byte(trust), 0o644)
}
