package attest

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/sigstore/cosign/v2/pkg/cosign/pkcs11key"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/kms"
	sigopts "github.com/sigstore/sigstore/pkg/signature/options"

	// sigstore's KMS providers, registered as cosign registers them.
	_ "github.com/sigstore/sigstore/pkg/signature/kms/aws"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/azure"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/gcp"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/hashivault"

	"github.com/wardgate/wardgate/verify"
)

// withDeadline runs f, giving up when ctx, bounded by verify.KeyRefTimeout,
// ends first: some providers do not watch ctx while they look for
// credentials.
func withDeadline[T any](ctx context.Context, what string, f func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, verify.KeyRefTimeout)
	defer cancel()
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := f(ctx)
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return zero, fmt.Errorf("no answer from the %s within %s", what, verify.KeyRefTimeout)
		}
		return zero, ctx.Err()
	}
}

// kmsSigner opens a signing key in a KMS and fetches its public key once
// (so an unreachable KMS fails here, at start, and not at the first
// verdict).
func kmsSigner(ctx context.Context, ref string) (signature.SignerVerifier, error) {
	return withDeadline(ctx, "KMS", func(ctx context.Context) (signature.SignerVerifier, error) {
		sv, err := kms.Get(ctx, ref, crypto.SHA256)
		if err != nil {
			return nil, err
		}
		if _, err := sv.PublicKey(sigopts.WithContext(ctx)); err != nil {
			return nil, err
		}
		return sv, nil
	})
}

// pkcs11Signer opens a key in a PKCS#11 token with cosign's pkcs11key
// package. The PIN comes from the URI's pin-value or $COSIGN_PKCS11_PIN;
// wardgate never prompts for it (a gate runs unattended).
func pkcs11Signer(ref string) (signature.SignerVerifier, error) {
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
	sk, err := pkcs11key.GetKeyWithURIConfig(cfg, false)
	if err != nil {
		if err.Error() == "unimplemented" {
			return nil, errNoPKCS11
		}
		return nil, fmt.Errorf("PKCS#11 token: %w", err)
	}
	return sk.SignerVerifier()
}

var errNoPKCS11 = errors.New("this wardgate was built without PKCS#11 support (build it with CGO_ENABLED=1 -tags pkcs11key, as make build does)")

// KeygenRef creates the service key inside a KMS or a PKCS#11 token, the
// private key never leaving it, and writes its public key (PEM) to pubPath.
// For a KMS it is cosign generate-key-pair --kms: the provider's CreateKey
// with its default algorithm. For a token, an ECDSA P-256 key pair is
// generated in the token under the URI's object label and id (cosign has no
// token key generation of its own). An existing key is refused.
func KeygenRef(ctx context.Context, ref, pubPath string) error {
	if _, err := os.Lstat(pubPath); err == nil {
		return fmt.Errorf("keygen: %s exists; refusing to overwrite", pubPath)
	}
	var pub crypto.PublicKey
	var err error
	switch {
	case strings.HasPrefix(ref, verify.PKCS11Scheme):
		pub, err = generateInToken(ref)
	case verify.IsKeyRef(ref):
		pub, err = withDeadline(ctx, "KMS", func(ctx context.Context) (crypto.PublicKey, error) {
			sv, err := kms.Get(ctx, ref, crypto.SHA256)
			if err != nil {
				return nil, err
			}
			return sv.CreateKey(ctx, sv.DefaultAlgorithm())
		})
	default:
		return fmt.Errorf("keygen: %q is not a KMS or pkcs11: key reference", ref)
	}
	if err != nil {
		return fmt.Errorf("keygen %s: %w", ref, err)
	}
	pemBytes, err := cryptoutils.MarshalPublicKeyToPEM(pub)
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	return writeExclusive(pubPath, pemBytes, 0o644)
}
