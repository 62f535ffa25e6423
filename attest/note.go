package attest

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"fmt"

	"golang.org/x/mod/sumdb/note"
)

// sigTypeECDSA is the C2SP signed-note signature type byte wardgate uses for
// its ECDSA P-256 checkpoint signatures (the same key signs DSSE envelopes,
// so an auditor needs one public key).
const sigTypeECDSA = 0x02

// keyHash is the C2SP signed-note key ID: the first four bytes of
// SHA-256(name || "\n" || type || DER public key).
func keyHash(name string, der []byte) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{'\n', sigTypeECDSA})
	h.Write(der)
	return binary.BigEndian.Uint32(h.Sum(nil)[:4])
}

type noteSigner struct {
	name string
	hash uint32
	s    *Signer
}

func (n *noteSigner) Name() string                    { return n.name }
func (n *noteSigner) KeyHash() uint32                 { return n.hash }
func (n *noteSigner) Sign(msg []byte) ([]byte, error) { return n.s.sign(msg) }

// NoteSigner is the signer's checkpoint signer under the log's origin name.
func (s *Signer) NoteSigner(origin string) (note.Signer, error) {
	der, err := x509.MarshalPKIXPublicKey(s.pub)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	return &noteSigner{name: origin, hash: keyHash(origin, der), s: s}, nil
}

type noteVerifier struct {
	name string
	hash uint32
	v    *Verifier
}

func (n *noteVerifier) Name() string    { return n.name }
func (n *noteVerifier) KeyHash() uint32 { return n.hash }
func (n *noteVerifier) Verify(msg, sig []byte) bool {
	return n.v.verify(msg, sig) == nil
}

// NoteVerifier checks checkpoints signed under origin with this key.
func (v *Verifier) NoteVerifier(origin string) (note.Verifier, error) {
	der, err := x509.MarshalPKIXPublicKey(v.pub)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	return &noteVerifier{name: origin, hash: keyHash(origin, der), v: v}, nil
}
