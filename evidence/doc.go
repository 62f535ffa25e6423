// Package evidence defines the evidence document: everything wardgate knows
// about one update at the moment it is judged, in one versioned JSON
// document ("schema": "wardgate.dev/evidence/v1"). The policy engine reads
// nothing else.
//
// The types are plain data with JSON tags. Producers (verify, attest, sbom,
// the release ledger, fleet telemetry) convert their own results into these
// types at their boundary, so the policy never sees sigstore, CycloneDX or
// SPDX types, and this package never sees theirs. Validate checks a document
// against the rules of docs/evidence.schema.json and names the field that is
// wrong.
//
// Imports: the standard library only. Must not import any other wardgate
// package, any third-party module, net/http server types, or cobra.
package evidence
