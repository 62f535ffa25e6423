package attest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"
)

// Media and predicate types.
const (
	StatementType    = "https://in-toto.io/Statement/v1"
	VSAPredicateType = "https://slsa.dev/verification_summary/v1"
	PayloadType      = "application/vnd.in-toto+json"
	// ExtensionKey namespaces wardgate's own fields inside the VSA predicate.
	ExtensionKey = "https://wardgate.dev/verdict/v1"
	// VerifierID identifies wardgate as the VSA verifier.
	VerifierID = "https://wardgate.dev/wardgate"
)

// Verdict is one gate decision in the terms an attestation needs. The gate
// fills it from its decision and evidence.
type Verdict struct {
	// Subject: the artifact decided on.
	SubjectName   string
	SubjectDigest map[string]string // e.g. {"sha256": "<hex>"}
	ResourceURI   string            // e.g. oci://registry/repo@sha256:..., file:///…, or urn:wardgate:artifact:sha256:…
	Passed        bool
	ReasonCodes   []string
	// Policy: where the policy set came from and its digest.
	PolicyURI    string
	PolicyDigest map[string]string
	// InputAttestations: the signatures, SBOMs and attestations used.
	Inputs         []Input
	VerifiedLevels []string
	// wardgate's own fields.
	TrustConfigDigest string
	TrustedRootDigest string
	SBOMDigest        string
	DeviceClass       string
	DeviceID          string
	// The release decided on, as the trust configuration names it.
	Vendor, Product, Version string
	Time                     time.Time
	// ReleaseMetadata are the vendor's TUF metadata the verdict relied on.
	ReleaseMetadata []MetadataRef
	// Warnings are the findings that did not deny: rules the trust
	// configuration sets to warn, and findings it accepts with a reason (a
	// downgrade it allows, a vulnerability exception), the reason in the
	// message.
	Warnings []Warning
}

// Warning is one finding of a verdict that did not deny.
type Warning struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// MetadataRef is one piece of the vendor's TUF metadata a verdict relied
// on: its role, version and digest.
type MetadataRef struct {
	Role    string            `json:"role"`
	Version int64             `json:"version"`
	Digest  map[string]string `json:"digest,omitempty"`
}

// Input is one piece of evidence a verdict rested on.
type Input struct {
	URI    string            `json:"uri"`
	Digest map[string]string `json:"digest"`
}

// Statement is an in-toto Statement v1 with a VSA predicate.
type Statement struct {
	Type          string              `json:"_type"`
	Subject       []Subject           `json:"subject"`
	PredicateType string              `json:"predicateType"`
	Predicate     VerificationSummary `json:"predicate"`
}

// Subject is an in-toto resource descriptor.
type Subject struct {
	Name   string            `json:"name,omitempty"`
	Digest map[string]string `json:"digest"`
}

// VerificationSummary is the SLSA VSA v1 predicate, with wardgate's fields
// under ExtensionKey.
type VerificationSummary struct {
	Verifier           VerifierInfo `json:"verifier"`
	TimeVerified       string       `json:"timeVerified"`
	ResourceURI        string       `json:"resourceUri"`
	Policy             Input        `json:"policy"`
	InputAttestations  []Input      `json:"inputAttestations,omitempty"`
	VerificationResult string       `json:"verificationResult"`
	VerifiedLevels     []string     `json:"verifiedLevels"`
	SlsaVersion        string       `json:"slsaVersion,omitempty"`
	Wardgate           *Extension   `json:"https://wardgate.dev/verdict/v1,omitempty"`
}

// VerifierInfo identifies the verifier and its version(s).
type VerifierInfo struct {
	ID      string            `json:"id"`
	Version map[string]string `json:"version,omitempty"`
}

// Extension holds wardgate's own verdict fields.
type Extension struct {
	ReasonCodes       []string `json:"reasonCodes"`
	TrustConfigDigest string   `json:"trustConfigDigest,omitempty"`
	TrustedRootDigest string   `json:"trustedRootDigest,omitempty"`
	SBOMDigest        string   `json:"sbomDigest,omitempty"`
	DeviceClass       string   `json:"deviceClass,omitempty"`
	DeviceID          string   `json:"deviceId,omitempty"`
	Vendor            string   `json:"vendor,omitempty"`
	Product           string   `json:"product,omitempty"`
	Version           string   `json:"version,omitempty"`
	// ReleaseMetadata lists the vendor's TUF metadata (role, version,
	// digest) the verdict relied on.
	ReleaseMetadata []MetadataRef `json:"releaseMetadata,omitempty"`
	// Warnings are the findings that did not deny (Verdict.Warnings).
	Warnings []Warning `json:"warnings,omitempty"`
}

// NewStatement builds the statement for a verdict. verifierVersion is
// wardgate's version.
func NewStatement(v Verdict, verifierVersion string) (*Statement, error) {
	if len(v.SubjectDigest) == 0 {
		return nil, errors.New("attest: verdict has no subject digest")
	}
	if v.Time.IsZero() {
		return nil, errors.New("attest: verdict has no time")
	}
	result := "FAILED"
	if v.Passed {
		result = "PASSED"
	}
	levels := v.VerifiedLevels
	if levels == nil {
		levels = []string{}
	}
	codes := append([]string{}, v.ReasonCodes...)
	sort.Strings(codes)
	inputs := append([]Input(nil), v.Inputs...)
	sort.Slice(inputs, func(i, j int) bool { return inputs[i].URI < inputs[j].URI })
	return &Statement{
		Type:          StatementType,
		Subject:       []Subject{{Name: v.SubjectName, Digest: v.SubjectDigest}},
		PredicateType: VSAPredicateType,
		Predicate: VerificationSummary{
			Verifier:           VerifierInfo{ID: VerifierID, Version: map[string]string{"wardgate": verifierVersion}},
			TimeVerified:       v.Time.UTC().Format(time.RFC3339),
			ResourceURI:        v.ResourceURI,
			Policy:             Input{URI: v.PolicyURI, Digest: v.PolicyDigest},
			InputAttestations:  inputs,
			VerificationResult: result,
			VerifiedLevels:     levels,
			SlsaVersion:        "1.0",
			Wardgate: &Extension{
				ReasonCodes:       codes,
				TrustConfigDigest: v.TrustConfigDigest,
				TrustedRootDigest: v.TrustedRootDigest,
				SBOMDigest:        v.SBOMDigest,
				DeviceClass:       v.DeviceClass,
				Vendor:            v.Vendor,
				Product:           v.Product,
				Version:           v.Version,
				DeviceID:          v.DeviceID,
				ReleaseMetadata:   slices.Clone(v.ReleaseMetadata),
				Warnings:          slices.Clone(v.Warnings),
			},
		},
	}, nil
}

// MaxStatementBytes bounds a statement or envelope read back from anywhere.
const MaxStatementBytes = 4 << 20

// ParseStatement decodes and checks an in-toto VSA statement.
func ParseStatement(b []byte) (*Statement, error) {
	if len(b) > MaxStatementBytes {
		return nil, fmt.Errorf("statement: %d bytes is over the %d byte limit", len(b), MaxStatementBytes)
	}
	var s Statement
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("statement: %w", err)
	}
	switch {
	case s.Type != StatementType:
		return nil, fmt.Errorf("statement: _type is %q, want %q", s.Type, StatementType)
	case s.PredicateType != VSAPredicateType:
		return nil, fmt.Errorf("statement: predicateType is %q, want %q", s.PredicateType, VSAPredicateType)
	case len(s.Subject) == 0 || len(s.Subject[0].Digest) == 0:
		return nil, errors.New("statement: no subject digest")
	case s.Predicate.VerificationResult != "PASSED" && s.Predicate.VerificationResult != "FAILED":
		return nil, fmt.Errorf("statement: verificationResult is %q, want PASSED or FAILED", s.Predicate.VerificationResult)
	}
	if _, err := time.Parse(time.RFC3339, s.Predicate.TimeVerified); err != nil {
		return nil, fmt.Errorf("statement: timeVerified: %w", err)
	}
	return &s, nil
}
