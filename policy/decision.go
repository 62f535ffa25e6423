package policy

import (
	"cmp"
	"errors"
	"slices"
)

// Code is a stable reason code. Codes are documented in docs/policy.md and
// never change meaning.
type Code string

// Reason codes of the default rules, and CodeCouldNotEvaluate.
const (
	CodeUnsigned                   Code = "unsigned"
	CodeUntrustedSigner            Code = "untrusted-signer"
	CodeThresholdNotMet            Code = "threshold-not-met"
	CodeDigestMismatch             Code = "digest-mismatch"
	CodeRollback                   Code = "rollback"
	CodeWrongDeviceClass           Code = "wrong-device-class"
	CodeSameVersionDifferentDigest Code = "same-version-different-digest"
	CodeVersionConflict            Code = "version-conflict"
	CodeSBOMMissing                Code = "sbom-missing"
	CodeSBOMDrift                  Code = "sbom-drift"
	CodeDeniedLicense              Code = "denied-license"
	CodeDeniedComponent            Code = "denied-component"
	CodeDowngradedComponent        Code = "downgraded-component"
	CodeComponentHashChanged       Code = "component-hash-changed"
	CodeMetadataExpired            Code = "metadata-expired"
	CodeMetadataFuture             Code = "metadata-future"
	CodeQuarantined                Code = "quarantined"
	CodeMetadataUntimed            Code = "metadata-untimed"
	CodeKeyRevoked                 Code = "key-revoked"
	CodeMetadataMissing            Code = "metadata-missing"
	CodeMetadataUntrusted          Code = "metadata-untrusted"
	CodeMetadataRollback           Code = "metadata-rollback"
	CodeUnknownTarget              Code = "unknown-target"
	CodeMetadataMismatch           Code = "metadata-mismatch"
	// CodeExecutableChangedSameVersion warns unless the trust
	// configuration enforces it.
	CodeExecutableChangedSameVersion Code = "executable-changed-same-version"
	CodeKnownVulnerability           Code = "known-vulnerability"
	// CodeCouldNotEvaluate denies when no decision could be made (fail
	// closed): callers use it via CouldNotEvaluate, and the vulnerability
	// rules report it when their evidence cannot be trusted (no database,
	// a database older than max_db_age). It is always enforced.
	CodeCouldNotEvaluate Code = "could-not-evaluate"
	// CodeRolloutHold is the gate's answer to a device outside the
	// update's current rollout ring (trust.yaml rollout:): not a verdict on
	// the update; the device asks again after the answer's retryAfter. The
	// gate produces it, not the Rego, after every rule allowed.
	CodeRolloutHold Code = "rollout-hold"
)

// DefaultCodes lists the codes the default rules produce.
var DefaultCodes = []Code{
	CodeUnsigned, CodeUntrustedSigner, CodeThresholdNotMet, CodeDigestMismatch,
	CodeRollback, CodeWrongDeviceClass, CodeSameVersionDifferentDigest, CodeVersionConflict,
	CodeSBOMMissing, CodeSBOMDrift, CodeDeniedLicense, CodeDeniedComponent,
	CodeDowngradedComponent, CodeComponentHashChanged, CodeMetadataExpired,
	CodeMetadataFuture, CodeQuarantined, CodeExecutableChangedSameVersion,
	CodeMetadataUntimed, CodeKeyRevoked, CodeMetadataMissing, CodeMetadataUntrusted,
	CodeMetadataRollback, CodeUnknownTarget, CodeMetadataMismatch,
	CodeKnownVulnerability,
}

// Severities, most severe first.
const (
	SeverityCritical = "critical"
	SeverityHigh     = "high"
	SeverityMedium   = "medium"
	SeverityLow      = "low"
)

var severities = []string{SeverityCritical, SeverityHigh, SeverityMedium, SeverityLow}

// Violation is one broken rule.
type Violation struct {
	// Code is the stable reason code.
	Code Code `json:"code"`
	// Rule is the rule set that reported it: the last segment of its package
	// under data.wardgate.rules ("signature", "version", or a user rule set).
	Rule string `json:"rule"`
	// Message says what is wrong and what to do about it.
	Message string `json:"message"`
	// Severity is critical, high, medium or low.
	Severity string `json:"severity"`
}

// Decision is the policy's answer for one evidence document.
type Decision struct {
	// Allow is true when there are no enforced violations.
	Allow bool `json:"allow"`
	// Violations are the enforced violations, sorted by severity, code and
	// message.
	Violations []Violation `json:"violations"`
	// Warnings are violations of rules the trust configuration sets to
	// warn; they do not deny.
	Warnings []Violation `json:"warnings"`
	// PolicyDigest is "sha256:<hex>" over every Rego module in effect.
	PolicyDigest string `json:"policyDigest"`
	// DataDigest is "sha256:<hex>" of the OPA data document (the trust
	// configuration and any bundle data) as JSON with sorted keys.
	DataDigest string `json:"dataDigest"`
}

// Codes returns the codes of the violations, in order.
func (d Decision) Codes() []Code {
	out := make([]Code, len(d.Violations))
	for i, v := range d.Violations {
		out[i] = v.Code
	}
	return out
}

// CouldNotEvaluate is the fail-closed decision for an error that prevented
// a decision: a deny with the single violation CodeCouldNotEvaluate whose
// message is the error's.
func CouldNotEvaluate(err error) Decision {
	if err == nil {
		err = errors.New("no decision was made")
	}
	return Decision{
		Violations: []Violation{{Code: CodeCouldNotEvaluate, Rule: "engine", Message: err.Error(), Severity: SeverityCritical}},
		Warnings:   []Violation{},
	}
}

func sortViolations(vs []Violation) {
	slices.SortFunc(vs, func(a, b Violation) int {
		return cmp.Or(
			cmp.Compare(slices.Index(severities, a.Severity), slices.Index(severities, b.Severity)),
			cmp.Compare(a.Code, b.Code),
			cmp.Compare(a.Rule, b.Rule),
			cmp.Compare(a.Message, b.Message),
		)
	})
}
