package gate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sigstore/sigstore-go/pkg/root"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/trust"
	"github.com/wardgate/wardgate/verify"
)

// ErrUnverifiedManifest is wrapped by every error VerifyEgressManifest
// returns for a manifest it does not accept.
var ErrUnverifiedManifest = errors.New("egress manifest not accepted")

// VerifyEgressManifest accepts a vendor's egress manifest (a DSSE
// envelope of an in-toto statement, predicate egress.EgressManifestPredicateType)
// only when its signature verifies against the authorities the trust
// configuration gives the product it is for: for each subject digest,
// productsOf names the products devices installed it as, and one of those
// products' authorities (any vendor's product of that name; one signer is
// enough, as for attestations) must have signed the envelope. An unsigned
// manifest, one nobody trusted signed, or one for an update no device
// installed is an error naming the source: a manifest silences
// expected-egress findings, so it must be the vendor's.
func VerifyEgressManifest(ctx context.Context, cfg *trust.Config, sig verify.Signature, productsOf func(digest string) []string) ([]egress.EgressManifest, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrUnverifiedManifest, sig.Source, fmt.Sprintf(format, args...))
	}
	ms, err := egress.ReadEgressManifest(bytes.NewReader(sig.Data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", sig.Source, err)
	}
	if !verify.IsAttestation(sig) {
		return nil, fail("not a signed envelope (DSSE): an unsigned manifest is refused; have the vendor sign it (cosign attest-blob)")
	}
	var tr root.TrustedMaterial
	if cfg.TrustedRoot != "" {
		if tr, err = verify.LoadTrustedRoot(cfg.TrustedRoot); err != nil {
			return nil, err
		}
	}
	for _, m := range ms {
		products := productsOf(m.Digest)
		if len(products) == 0 {
			return nil, fail("no device is recorded installing %s, so whose manifest it is cannot be told", m.Digest)
		}
		d, err := verify.ParseDigest(m.Digest)
		if err != nil {
			return nil, fail("subject %s: %v", m.Digest, err)
		}
		var tried []string
		verified := false
		for _, vn := range cfg.VendorNames() {
			for _, pn := range products {
				prod, ok := cfg.Product(vn, pn)
				if !ok {
					continue
				}
				pol, err := newVerifyPolicy(cfg, tr, prod)
				if err != nil {
					return nil, err
				}
				pol.Threshold = 1
				if len(pol.Identities) > 0 && pol.TrustedRoot == nil {
					pol.Identities = nil
				}
				if len(pol.Keys) == 0 && len(pol.Identities) == 0 {
					continue
				}
				res, err := verify.Attestation(ctx, verify.Artifact{Name: m.Digest, Digest: d}, []verify.Signature{sig}, egress.EgressManifestPredicateType, pol)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", sig.Source, err)
				}
				if res.Verified {
					verified = true
					break
				}
				tried = append(tried, fmt.Sprintf("%s/%s (%s)", vn, pn, res.Message))
			}
			if verified {
				break
			}
		}
		switch {
		case verified:
		case len(tried) == 0:
			return nil, fail("%s is installed as %s, which no vendor in the trust configuration has", m.Digest, strings.Join(slices.Sorted(slices.Values(products)), ", "))
		default:
			return nil, fail("no authority of the product %s was installed as signed it: %s", m.Digest, strings.Join(tried, "; "))
		}
	}
	return ms, nil
}
