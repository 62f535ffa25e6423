package gate

import (
	"github.com/sigstore/sigstore-go/pkg/root"

	"github.com/wardgate/wardgate/trust"
	"github.com/wardgate/wardgate/verify"
)

type productKey struct{ vendor, product string }

// productPolicy is one product's verify policy, built once when the gate is
// built: its keys are read and parsed then, not on every evaluation. A key
// that cannot be read fails every evaluation of its product (closed), and
// only of its product.
type productPolicy struct {
	pol *verify.Policy
	err error
}

// buildPolicies builds the verify policy of every product the trust
// configuration names.
func buildPolicies(cfg *trust.Config, tr root.TrustedMaterial) map[productKey]productPolicy {
	out := map[productKey]productPolicy{}
	for vendor, v := range cfg.Vendors {
		for product, p := range v.Products {
			out[productKey{vendor, product}] = buildPolicy(cfg, tr, p)
		}
	}
	return out
}

func buildPolicy(cfg *trust.Config, tr root.TrustedMaterial, prod trust.Product) productPolicy {
	pol, err := newVerifyPolicy(cfg, tr, prod)
	return productPolicy{pol: pol, err: err}
}

// newVerifyPolicy builds the verify policy of a product's authorities: its
// keys (with their validity windows), keyless identities and threshold.
func newVerifyPolicy(cfg *trust.Config, tr root.TrustedMaterial, prod trust.Product) (*verify.Policy, error) {
	pol := &verify.Policy{TrustedRoot: tr, Threshold: prod.Authorities.Threshold}
	for _, k := range prod.Authorities.Keys {
		key, err := verify.LoadPublicKey(cfg.ResolvePath(k.Path))
		if err != nil {
			return nil, err
		}
		key.Valid = verify.Window{From: k.ValidFrom, Until: k.ValidUntil}
		pol.Keys = append(pol.Keys, key)
	}
	for _, id := range prod.Authorities.Keyless {
		pol.Identities = append(pol.Identities, verify.Identity{Subject: id.Identity, SubjectRegexp: id.IdentityRegexp, Issuer: id.Issuer, IssuerRegexp: id.IssuerRegexp,
			Valid: verify.Window{From: id.ValidFrom, Until: id.ValidUntil}})
	}
	if pol.Threshold > len(pol.Keys)+len(pol.Identities) {
		pol.Threshold = len(pol.Keys) + len(pol.Identities)
	}
	return pol, nil
}

// policy returns the verify policy of a product: the one built with the
// gate, or an empty one (no trusted signer) for a product the trust
// configuration does not name. Callers must not modify it.
func (g *Gate) policy(vendor, product string) (*verify.Policy, error) {
	pp, ok := g.policies[productKey{vendor, product}]
	if !ok {
		return &verify.Policy{TrustedRoot: g.trustedRoot}, nil
	}
	return pp.pol, pp.err
}
