//go:build pkcs11key

package attest

import (
	"crypto"
	"crypto/elliptic"
	"errors"
	"fmt"
	"os"

	"github.com/ThalesIgnite/crypto11"
	"github.com/sigstore/cosign/v2/pkg/cosign/pkcs11key"
)

// PKCS11 reports whether this build can use PKCS#11 tokens.
const PKCS11 = true

// generateInToken generates an ECDSA P-256 key pair in the token the URI
// names, labelled with its object and id, with the library cosign uses
// (crypto11). A key already there under that label or id is refused.
func generateInToken(ref string) (crypto.PublicKey, error) {
	cfg := pkcs11key.NewPkcs11UriConfig()
	if err := cfg.Parse(ref); err != nil {
		return nil, err
	}
	if cfg.Pin == "" {
		cfg.Pin = os.Getenv("COSIGN_PKCS11_PIN")
	}
	if cfg.Pin == "" {
		return nil, errors.New("no PIN: give pin-value in the URI or set $COSIGN_PKCS11_PIN")
	}
	c11 := &crypto11.Config{Path: cfg.ModulePath, Pin: cfg.Pin, TokenLabel: cfg.TokenLabel, SlotNumber: cfg.SlotID}
	if cfg.SlotID != nil {
		c11.TokenLabel = ""
	}
	ctx, err := crypto11.Configure(c11)
	if err != nil {
		return nil, fmt.Errorf("PKCS#11 token: %w", err)
	}
	defer ctx.Close()
	id, label := cfg.KeyID, cfg.KeyLabel
	if existing, err := ctx.FindKeyPair(nonEmpty(id), nonEmpty(label)); err == nil && existing != nil {
		return nil, errors.New("the token already holds a key with this object label or id; refusing to make a second")
	}
	if len(id) == 0 {
		id = label
	}
	s, err := ctx.GenerateECDSAKeyPairWithLabel(id, label, elliptic.P256())
	if err != nil {
		return nil, fmt.Errorf("PKCS#11 token: generate key: %w", err)
	}
	return s.Public(), nil
}

func nonEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
