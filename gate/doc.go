// Package gate is wardgate's pipeline: evaluate an update once (check it
// against its vendor's signed TUF release metadata when the vendor pins a
// TUF root, verify its signatures, read or generate its SBOM, diff it
// against the previous admitted release, check the vendor's SBOM against
// what is inside, evaluate policy, record the release, sign the verdict
// into the log).
//
// Every error on the way becomes a deny with reason could-not-evaluate: the
// gate fails closed.
//
// Imports: verify, sbom, policy, evidence, store, attest, trust, tuf,
// egress.
// Must not import: cobra, net/http server types, server.
package gate
