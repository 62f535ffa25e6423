// Package policy decides whether an update is admitted. It evaluates an
// evidence.Evidence document with OPA, embedded as a library (Rego v1), and
// returns a Decision: allow or deny, the violations with their stable reason
// codes, the warnings, and the digests of the policy and data used.
//
// The default rules are embedded in the binary (rego/*.rego) with their own
// unit tests (rego/*_test.rego, run by RunTests). The trust configuration is
// OPA data (data.trust), the evidence is the input, and the query
// data.wardgate.decision is prepared once, in New, and reused for every
// Evaluate. User policies (WithPolicyDir, WithBundle) add rule sets; a user
// module that replaces a default package must say so (see docs/policy.md).
//
// A deny is a Decision, not an error. Evaluate returns an error only when no
// decision could be made (invalid evidence, evaluation timeout, a rule that
// produced a malformed violation); callers then deny with the reason
// CodeCouldNotEvaluate (see CouldNotEvaluate).
//
// Imports: OPA (v1/rego, v1/ast, v1/bundle, v1/storage/inmem, v1/tester),
// evidence and trust. Must not import sigstore, CycloneDX, SPDX or other
// producers' types (they convert into evidence at their boundary),
// net/http server types, cobra, store, or server.
package policy
