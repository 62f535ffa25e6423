// Package verify checks that an update really comes from its vendor: cosign
// signatures and Sigstore bundles on firmware blobs and OCI images, keyed and
// keyless (against an offline Sigstore trusted root), k-of-n thresholds, and
// in-toto attestations in DSSE envelopes bound to the artifact digest.
//
// All cryptography is sigstore-go's and sigstore's: every signature, whatever
// its on-disk format (a raw cosign sign-blob signature, cosign's legacy
// sign-blob bundle, a Sigstore bundle v0.1 to v0.3, a classic cosign image
// signature layer), is turned into a sigstore-go SignedEntity and checked by
// sigstore-go's verifier. This package only parses, classifies failures into
// stable reason codes, and counts distinct trusted signers.
//
// Nothing here reaches the network except the registry named by an image
// reference. The trusted root is a file; there is no TUF, Rekor or Fulcio
// client.
//
// Imports: sigstore-go, sigstore, cosign (format helpers), go-containerregistry.
// Must not import: net/http server types, cobra, or any wardgate package other
// than evidence.
package verify
