package verify

import (
	"errors"
	"fmt"
)

// Reason is a stable, machine-readable reason code. Codes are documented in
// docs/reason-codes.md and never change meaning.
type Reason string

// Reason codes for a failed verification (a verdict, exit 1).
const (
	// ReasonNoSignature: no signature, bundle or attestation was found at all.
	ReasonNoSignature Reason = "no-signature"
	// ReasonUntrustedSigner: signatures were found, but none was made by a
	// trusted key or chains to a trusted certificate authority.
	ReasonUntrustedSigner Reason = "untrusted-signer"
	// ReasonSignatureInvalid: the signer is known (its certificate chains to
	// the trusted root), but the signature does not verify.
	ReasonSignatureInvalid Reason = "signature-invalid"
	// ReasonDigestMismatch: the signed material names a digest that is not
	// the artifact's.
	ReasonDigestMismatch Reason = "digest-mismatch"
	// ReasonMalformed: a signature, bundle or envelope could not be parsed.
	ReasonMalformed Reason = "malformed-signature"
	// ReasonIdentityMismatch: a valid certificate whose identity or issuer is
	// not the one asked for.
	ReasonIdentityMismatch Reason = "identity-mismatch"
	// ReasonExpired: material used outside its validity window (certificate
	// expired or not yet valid at signing time, log or authority out of its
	// validity in the trusted root, a time in the future).
	ReasonExpired Reason = "expired"
	// ReasonTlogInvalid: a transparency log entry, inclusion promise, proof or
	// checkpoint failed to verify, or is missing where one is required.
	ReasonTlogInvalid Reason = "tlog-invalid"
	// ReasonTimestampInvalid: an RFC 3161 timestamp failed to verify, or no
	// trusted time source backs the signature.
	ReasonTimestampInvalid Reason = "timestamp-invalid"
	// ReasonThresholdNotMet: fewer distinct trusted signers than required.
	ReasonThresholdNotMet Reason = "threshold-not-met"
	// ReasonPredicateTypeMismatch: an attestation verified but carries another
	// predicate type than the one asked for.
	ReasonPredicateTypeMismatch Reason = "predicate-type-mismatch"
	// ReasonKeyRevoked: a trusted signer with a validity window (a key or
	// identity revoked on a date) signed outside it, by the signature's
	// trusted time.
	ReasonKeyRevoked Reason = "key-revoked"
	// ReasonUntimed: a trusted signer with a validity window signed, but the
	// signature carries no trusted time (transparency log entry or RFC 3161
	// timestamp), so whether it was made inside the window cannot be told.
	ReasonUntimed Reason = "untimed"
)

// Reason codes for an input that could not be verified at all (exit 2).
const (
	// ReasonBadInput: a file could not be read or is not what it must be
	// (missing, a directory, a symlink, too large, not a key).
	ReasonBadInput Reason = "bad-input"
	// ReasonRegistry: the registry could not be reached or answered garbage.
	ReasonRegistry Reason = "registry-error"
)

// AllReasons lists every reason code, verdicts first.
var AllReasons = []Reason{
	ReasonNoSignature, ReasonUntrustedSigner, ReasonSignatureInvalid, ReasonDigestMismatch,
	ReasonMalformed, ReasonIdentityMismatch, ReasonExpired, ReasonTlogInvalid,
	ReasonTimestampInvalid, ReasonThresholdNotMet, ReasonPredicateTypeMismatch,
	ReasonKeyRevoked, ReasonUntimed,
	ReasonBadInput, ReasonRegistry,
}

// InputError is returned when verification could not be attempted: the
// answer is "could not verify", not "verification failed".
type InputError struct {
	Code Reason
	Err  error
}

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

func inputErr(code Reason, format string, args ...any) error {
	return &InputError{Code: code, Err: fmt.Errorf(format, args...)}
}

// ErrNoSignature is wrapped by errors that mean nothing was signed at all.
var ErrNoSignature = errors.New("verify: no signature found")
