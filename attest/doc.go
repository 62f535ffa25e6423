// Package attest turns every gate decision into a signed in-toto
// attestation (a SLSA Verification Summary, DSSE-signed with the service
// key through sigstore's signer interfaces), appends it to a tamper-evident
// log (an RFC 6962 Merkle tree with C2SP signed-note checkpoints), and
// exports and verifies self-contained evidence packs for auditors.
//
// The tree, its proofs, the checkpoints and the packs are attest's; the
// rows are kept by a store.LogStore, and attest does no database I/O of its
// own: Log is the store's Sequencer, handed the stored head inside each
// append's write.
//
// Imports: sigstore (signature, dsse), cosign (key files), in-toto,
// transparency-dev/merkle and formats, x/mod/sumdb/note, store.
// Must not import: a database driver, cobra, net/http server types, or
// wardgate's policy, gate or server packages: a verdict arrives as an
// attest.Verdict.
package attest
