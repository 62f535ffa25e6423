package verify

import (
	"context"
	"fmt"

	sgverify "github.com/sigstore/sigstore-go/pkg/verify"
)

// Attestation verifies DSSE envelopes holding in-toto statements: a trusted
// signature (as for Blob), a subject whose digest equals the artifact's (the
// statement is bound to this artifact), and, when predicateType is not
// empty, that predicate type. Envelopes may be bare DSSE JSON (keyed) or
// Sigstore bundles with a DSSE envelope (keyed or keyless).
func Attestation(ctx context.Context, art Artifact, envs []Signature, predicateType string, pol *Policy) (*Result, error) {
	return attestation(ctx, Subject{Kind: "blob", Name: art.Name, Digest: art.DigestString(), Size: art.Size}, artifactInput{digest: art.Digest}, envs, predicateType, pol)
}

func attestation(ctx context.Context, subj Subject, in artifactInput, envs []Signature, predicateType string, pol *Policy) (*Result, error) {
	if err := pol.Validate(); err != nil {
		return nil, err
	}
	e := &engine{pol: pol}
	check := func(res *sgverify.VerificationResult) (Reason, string) {
		if res.Statement == nil {
			return ReasonMalformed, "envelope does not hold an in-toto statement"
		}
		if predicateType != "" && res.Statement.GetPredicateType() != predicateType {
			return ReasonPredicateTypeMismatch, fmt.Sprintf("predicate type is %q, want %q", res.Statement.GetPredicateType(), predicateType)
		}
		return "", ""
	}
	var results []SignatureResult
	for _, s := range envs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p, err := parseInput(s)
		if err != nil {
			results = append(results, SignatureResult{Source: s.Source, Format: "unknown", Reason: ReasonMalformed, Detail: err.Error()})
			continue
		}
		if p.b == nil || p.b.GetDsseEnvelope() == nil {
			results = append(results, SignatureResult{Source: s.Source, Format: describeFormat(p), Reason: ReasonMalformed,
				Detail: "not an attestation: a DSSE envelope or a Sigstore bundle holding one is needed"})
			continue
		}
		results = append(results, e.checkOne(p, s.Source, in, check))
	}
	return e.conclude(subj, results), nil
}

// IsAttestation reports whether a signature input is a DSSE envelope (bare
// or in a Sigstore bundle).
func IsAttestation(s Signature) bool {
	p, err := parseInput(s)
	return err == nil && p.b != nil && p.b.GetDsseEnvelope() != nil
}
