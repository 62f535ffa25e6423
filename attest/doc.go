// Package attest turns every gate decision into a signed in-toto
// attestation (a SLSA Verification Summary, DSSE-signed with the service
// key through sigstore's signer interfaces), appends it to a tamper-evident
// log (an RFC 6962 Merkle tree with C2SP signed-note checkpoints), and
// exports and verifies self-contained evidence packs for auditors.
//
// Imports: sigstore (signature, dsse), cosign (key files), in-toto,
// transparency-dev/merkle and formats, x/mod/sumdb/note, SQLite.
// Must not import: cobra, net/http server types, or wardgate's policy, gate
// or server packages: a verdict arrives as an attest.Verdict.
package attest
