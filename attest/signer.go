package attest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/dsse"

	"github.com/wardgate/wardgate/verify"
)

// PasswordEnv is the environment variable holding the signing key's
// password. Passwords never come from flags.
const PasswordEnv = "WARDGATE_KEY_PASSWORD"

// Signer signs verdict statements and log checkpoints with the service key.
type Signer struct {
	sv    signature.SignerVerifier
	pub   crypto.PublicKey
	keyID string // hex SHA-256 of the DER public key
}

// LogValue keeps key material out of logs.
func (s *Signer) LogValue() slog.Value { return slog.StringValue("signer " + s.keyID) }

// NewSigner wraps a sigstore SignerVerifier.
func NewSigner(sv signature.SignerVerifier) (*Signer, error) {
	pub, err := sv.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("signer public key: %w", err)
	}
	id, err := KeyID(pub)
	if err != nil {
		return nil, err
	}
	return &Signer{sv: sv, pub: pub, keyID: id}, nil
}

// MaxKeyFileBytes bounds a key file.
const MaxKeyFileBytes = 64 << 10

// LoadSigner loads the service key the way cosign's --key names a signing
// key: a cosign key file (encrypted with the password in
// $WARDGATE_KEY_PASSWORD, empty if unset) read with cosign's loader; a KMS
// URI (awskms://, gcpkms://, azurekms://, hashivault://) through sigstore's
// KMS providers; or a pkcs11: URI naming a key in a hardware security
// module, through cosign's pkcs11key package (PIN from the URI's pin-value
// or $COSIGN_PKCS11_PIN). A KMS or token that does not answer within
// verify.KeyRefTimeout is an error, not a hang.
func LoadSigner(ctx context.Context, keyRef string) (*Signer, error) {
	if strings.HasPrefix(keyRef, verify.PKCS11Scheme) {
		sv, err := pkcs11Signer(keyRef)
		if err != nil {
			return nil, fmt.Errorf("signing key %s: %w", keyRef, err)
		}
		return NewSigner(sv)
	}
	if strings.Contains(keyRef, "://") {
		sv, err := kmsSigner(ctx, keyRef)
		if err != nil {
			return nil, fmt.Errorf("signing key %s: %w", keyRef, err)
		}
		return NewSigner(sv)
	}
	st, err := os.Stat(keyRef)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("signing key %s: not a regular file", keyRef)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("signing key %s: mode %v lets others read it; chmod 600 it", keyRef, st.Mode().Perm())
	}
	if st.Size() > MaxKeyFileBytes {
		return nil, fmt.Errorf("signing key %s: larger than %d bytes", keyRef, MaxKeyFileBytes)
	}
	pemBytes, err := os.ReadFile(keyRef)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	pass, _ := envPassword(false)
	sv, err := cosign.LoadPrivateKey(pemBytes, pass, nil)
	if err != nil {
		return nil, passwordError(keyRef, pemBytes, pass, err)
	}
	return NewSigner(sv)
}

func envPassword(bool) ([]byte, error) { return []byte(os.Getenv(PasswordEnv)), nil }

// passwordError says why a key file did not decrypt, naming it: no
// password set for an encrypted key, a password set for a key that has
// none, or a password that is not the key's (or a damaged file).
func passwordError(keyRef string, pemBytes, pass []byte, err error) error {
	if len(pass) == 0 {
		return fmt.Errorf("signing key %s is encrypted, and $%s is not set: set it to the key's password (%w)", keyRef, PasswordEnv, err)
	}
	if _, e := cosign.LoadPrivateKey(pemBytes, nil, nil); e == nil {
		return fmt.Errorf("signing key %s has no password, but $%s is set: unset it to use this key, or re-create the key encrypted (%w)", keyRef, PasswordEnv, err)
	}
	return fmt.Errorf("signing key %s does not decrypt with the password in $%s: a wrong password, or a damaged key file (%w)", keyRef, PasswordEnv, err)
}

// KeyID is the hex SHA-256 of a public key's DER SubjectPublicKeyInfo.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

// KeyID is the signer's key ID.
func (s *Signer) KeyID() string { return s.keyID }

// PublicKeyPEM is the service public key, PEM encoded.
func (s *Signer) PublicKeyPEM() ([]byte, error) { return cryptoutils.MarshalPublicKeyToPEM(s.pub) }

// SignStatement signs a statement as a DSSE envelope (payload type
// application/vnd.in-toto+json) and returns the envelope JSON.
func (s *Signer) SignStatement(ctx context.Context, st *Statement) ([]byte, error) {
	payload, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("statement: %w", err)
	}
	return s.SignPayload(ctx, PayloadType, payload)
}

// SignPayload signs any payload as a DSSE envelope.
func (s *Signer) SignPayload(_ context.Context, payloadType string, payload []byte) ([]byte, error) {
	env, err := dsse.WrapSigner(s.sv, payloadType).SignMessage(bytes.NewReader(payload))
	if err != nil {
		return nil, fmt.Errorf("sign envelope: %w", err)
	}
	return env, nil
}

// sign signs raw bytes (checkpoint notes).
func (s *Signer) sign(msg []byte) ([]byte, error) {
	return s.sv.SignMessage(bytes.NewReader(msg))
}

// Verifier checks envelopes and checkpoints with the service public key.
type Verifier struct {
	v     signature.Verifier
	pub   crypto.PublicKey
	keyID string
}

// NewVerifier parses a PEM public key.
func NewVerifier(pemBytes []byte) (*Verifier, error) {
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	id, err := KeyID(pub)
	if err != nil {
		return nil, err
	}
	return &Verifier{v: v, pub: pub, keyID: id}, nil
}

// Verifier returns the verifier for the signer's own key.
func (s *Signer) Verifier() *Verifier {
	return &Verifier{v: s.sv, pub: s.pub, keyID: s.keyID}
}

// KeyID is the verifier's key ID.
func (v *Verifier) KeyID() string { return v.keyID }

// ErrBadSignature is wrapped by every signature failure.
var ErrBadSignature = errors.New("signature does not verify with the service key")

// Envelope is the DSSE JSON form.
type Envelope struct {
	PayloadType string `json:"payloadType"`
	Payload     string `json:"payload"`
	Signatures  []struct {
		KeyID string `json:"keyid"`
		Sig   string `json:"sig"`
	} `json:"signatures"`
}

// OpenEnvelope verifies a DSSE envelope's signature and returns its payload
// type and payload.
func (v *Verifier) OpenEnvelope(env []byte) (string, []byte, error) {
	if len(env) > MaxStatementBytes {
		return "", nil, fmt.Errorf("envelope: %d bytes is over the %d byte limit", len(env), MaxStatementBytes)
	}
	var e Envelope
	if err := json.Unmarshal(env, &e); err != nil {
		return "", nil, fmt.Errorf("envelope: %w", err)
	}
	if len(e.Signatures) == 0 {
		return "", nil, fmt.Errorf("envelope: no signatures: %w", ErrBadSignature)
	}
	if err := dsse.WrapVerifier(v.v).VerifySignature(bytes.NewReader(env), nil); err != nil {
		return "", nil, fmt.Errorf("envelope: %w: %v", ErrBadSignature, err)
	}
	payload, err := base64.StdEncoding.DecodeString(e.Payload)
	if err != nil {
		return "", nil, fmt.Errorf("envelope payload: %w", err)
	}
	return e.PayloadType, payload, nil
}

// VerifyStatement opens an envelope and parses the VSA statement in it.
func (v *Verifier) VerifyStatement(env []byte) (*Statement, error) {
	pt, payload, err := v.OpenEnvelope(env)
	if err != nil {
		return nil, err
	}
	if pt != PayloadType {
		return nil, fmt.Errorf("envelope: payload type %q, want %q", pt, PayloadType)
	}
	return ParseStatement(payload)
}

func (v *Verifier) verify(msg, sig []byte) error {
	if err := v.v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(msg)); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return nil
}

// Keygen writes a new ECDSA P-256 key pair in cosign's format with cosign's
// own generator: PREFIX.key (encrypted with $WARDGATE_KEY_PASSWORD, mode
// 0600) and PREFIX.pub (0644). Existing files are never overwritten.
func Keygen(prefix string) (keyPath, pubPath string, err error) {
	keyPath, pubPath = prefix+".key", prefix+".pub"
	for _, p := range []string{keyPath, pubPath} {
		if _, err := os.Lstat(p); err == nil {
			return "", "", fmt.Errorf("keygen: %s exists; refusing to overwrite", p)
		}
	}
	kb, err := cosign.GenerateKeyPair(envPassword)
	if err != nil {
		return "", "", fmt.Errorf("keygen: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(keyPath), 0o700); err != nil {
		return "", "", fmt.Errorf("keygen: %w", err)
	}
	if err := writeExclusive(keyPath, kb.PrivateBytes, 0o600); err != nil {
		return "", "", err
	}
	if err := writeExclusive(pubPath, kb.PublicBytes, 0o644); err != nil {
		os.Remove(keyPath)
		return "", "", err
	}
	return keyPath, pubPath, nil
}

func writeExclusive(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("keygen: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("keygen: %w", err)
	}
	return f.Close()
}
