package verify

import (
	"net/url"
	"slices"

	"github.com/in-toto/in-toto-golang/in_toto"
	slsa02 "github.com/in-toto/in-toto-golang/in_toto/slsa_provenance/v0.2"
	slsa1 "github.com/in-toto/in-toto-golang/in_toto/slsa_provenance/v1"
	cosignatt "github.com/sigstore/cosign/v2/pkg/cosign/attestation"
)

// PredicateTypes maps cosign's short predicate type names (cosign attest
// --type, cosign verify-attestation --type) to predicate type URIs. It is
// cosign v2's options.PredicateTypeMap (cmd/cosign/cli/options/predicate.go),
// built from the same constants; TestPredicateTypesMatchCosign compares the
// two. cosign's options package itself is not imported: it brings cosign's
// Kubernetes and GitLab clients.
var PredicateTypes = map[string]string{
	"custom":           cosignatt.CosignCustomProvenanceV01,
	"slsaprovenance":   slsa02.PredicateSLSAProvenance,
	"slsaprovenance02": slsa02.PredicateSLSAProvenance,
	"slsaprovenance1":  slsa1.PredicateSLSAProvenance,
	"spdx":             in_toto.PredicateSPDX,
	"spdxjson":         in_toto.PredicateSPDX,
	"cyclonedx":        in_toto.PredicateCycloneDX,
	"link":             in_toto.PredicateLinkV1,
	"vuln":             cosignatt.CosignVulnProvenanceV01,
	"openvex":          cosignatt.OpenVexNamespace,
}

// PredicateTypeNames lists the short names PredicateType accepts, sorted.
func PredicateTypeNames() []string {
	var names []string
	for n := range PredicateTypes {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// PredicateType resolves a --type value as cosign does: a short name from
// PredicateTypes, or else an absolute URI taken as it is.
func PredicateType(t string) (string, error) {
	if uri, ok := PredicateTypes[t]; ok {
		return uri, nil
	}
	if u, err := url.ParseRequestURI(t); err != nil || u.Scheme == "" {
		return "", inputErr(ReasonBadInput, "--type %q: not a predicate type URI nor one of cosign's names (%v)", t, PredicateTypeNames())
	}
	return t, nil
}
