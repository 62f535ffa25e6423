package verify

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sigstore/cosign/v2/pkg/cosign/pkcs11key"
	"github.com/sigstore/sigstore/pkg/signature/kms"

	// sigstore's KMS providers, as cosign registers them: each adds its
	// scheme to kms.Get.
	_ "github.com/sigstore/sigstore/pkg/signature/kms/aws"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/azure"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/gcp"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/hashivault"
)

// KMSSchemes are the key reference schemes sigstore's KMS providers serve,
// the ones cosign's --key takes.
var KMSSchemes = []string{"awskms://", "gcpkms://", "azurekms://", "hashivault://"}

// PKCS11Scheme starts a PKCS#11 URI (RFC 7512) naming a key in a hardware
// security module, as cosign's --key takes it.
const PKCS11Scheme = pkcs11key.ReferenceScheme

// KeyRefTimeout bounds the fetch of a public key from a KMS or token: an
// unreachable service is a clear "could not verify", not a hang.
const KeyRefTimeout = 30 * time.Second

// IsKeyRef reports whether ref names a key in a KMS or a PKCS#11 token
// rather than a file.
func IsKeyRef(ref string) bool {
	if strings.HasPrefix(ref, PKCS11Scheme) {
		return true
	}
	for _, s := range KMSSchemes {
		if strings.HasPrefix(ref, s) {
			return true
		}
	}
	return false
}

// LoadKey loads a trusted public key the way cosign's --key names one: a PEM
// (or DER) file, a KMS URI (awskms://, gcpkms://, azurekms://,
// hashivault://) read through sigstore's KMS providers, or a pkcs11: URI
// read through cosign's pkcs11key package (in builds with the pkcs11key
// tag). Only the public key is fetched; verification is local.
func LoadKey(ctx context.Context, ref string) (Key, error) {
	if !IsKeyRef(ref) {
		return LoadPublicKey(ref)
	}
	ctx, cancel := context.WithTimeout(ctx, KeyRefTimeout)
	defer cancel()
	var pub crypto.PublicKey
	var err error
	if strings.HasPrefix(ref, PKCS11Scheme) {
		pub, err = pkcs11PublicKey(ref)
	} else {
		pub, err = kmsPublicKey(ctx, ref)
	}
	if err != nil {
		return Key{}, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return Key{}, inputErr(ReasonBadInput, "key %s: %v", ref, err)
	}
	return ParsePublicKey(der, ref)
}

func kmsPublicKey(ctx context.Context, ref string) (crypto.PublicKey, error) {
	type result struct {
		pub crypto.PublicKey
		err error
	}
	// Some providers do not watch ctx while they set up credentials: the
	// deadline is kept here too.
	done := make(chan result, 1)
	go func() {
		sv, err := kms.Get(ctx, ref, crypto.SHA256)
		if err != nil {
			done <- result{err: err}
			return
		}
		pub, err := sv.PublicKey()
		done <- result{pub, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, inputErr(ReasonBadInput, "key %s: %v", ref, r.err)
		}
		return r.pub, nil
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, inputErr(ReasonBadInput, "key %s: no answer from the KMS within %s", ref, KeyRefTimeout)
		}
		return nil, ctx.Err()
	}
}

func pkcs11PublicKey(ref string) (crypto.PublicKey, error) {
	cfg := pkcs11key.NewPkcs11UriConfig()
	if err := cfg.Parse(ref); err != nil {
		return nil, inputErr(ReasonBadInput, "key %s: %v", ref, err)
	}
	sk, err := pkcs11key.GetKeyWithURIConfig(cfg, false)
	if err != nil {
		return nil, inputErr(ReasonBadInput, "key %s: %s", ref, pkcs11Error(err))
	}
	defer sk.Close()
	pub, err := sk.PublicKey()
	if err != nil {
		return nil, inputErr(ReasonBadInput, "key %s: %v", ref, err)
	}
	return pub, nil
}

// pkcs11Error explains cosign's "unimplemented": this binary was built
// without PKCS#11 support.
func pkcs11Error(err error) string {
	if err.Error() == "unimplemented" {
		return "this wardgate was built without PKCS#11 support (build it with CGO_ENABLED=1 -tags pkcs11key, as make build does)"
	}
	return fmt.Sprintf("PKCS#11 token: %v", err)
}
