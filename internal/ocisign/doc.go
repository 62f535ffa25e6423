// Package ocisign signs OCI images the way cosign does, for tests and the
// fixture generator. It is built from cosign's own packages (the simple-
// signing payload, static signature layers, the .sig/.att images and the
// code that writes them), sigstore's signers and DSSE wrapper, and
// sigstore-go's VirtualSigstore for keyless material, so what wardgate
// verifies is what cosign writes, not a hand-written imitation.
//
// What it produces:
//   - SignImageClassic, SignImageKeyless: a layer of the sha256-HEX.sig
//     image (cosign sign, with a key or keyless).
//   - AttestImage: a layer of the sha256-HEX.att image (cosign attest).
//   - SignBundle, AttestBundle, KeylessAttestBundle: a Sigstore bundle, to
//     be stored as an OCI 1.1 referrer (cosign sign/attest
//     --new-bundle-format).
//   - Push stores all of these in a registry; WriteLayout in an OCI image
//     layout; WriteArchive tars a layout for oci-archive.
//
// Imports: cosign, sigstore, sigstore-go (including its testing/ca
// package), go-containerregistry. Must not be imported by non-test code
// outside fixtures/.
package ocisign
