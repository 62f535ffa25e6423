package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
)

// Blob is a content-addressed document (an SBOM, a trust configuration)
// kept once and referred to by its digest.
type Blob struct {
	MediaType string
	Data      []byte
}

// Digest is the blob's "sha256:<hex>".
func (b Blob) Digest() string {
	s := sha256.Sum256(b.Data)
	return "sha256:" + hex.EncodeToString(s[:])
}

// MaxBlobBytes bounds one blob.
const MaxBlobBytes = 256 << 20

// Blobs keeps content-addressed documents.
type Blobs interface {
	// PutBlob keeps b under its digest (a no-op when it is kept already)
	// and returns the digest once b is durable.
	PutBlob(ctx context.Context, b Blob) (digest string, err error)
	// Blob returns the blob of digest, or ErrNotFound.
	Blob(ctx context.Context, digest string) (Blob, error)
}

// SBOMMediaType is the media type SBOMs are kept under (CycloneDX or
// SPDX, JSON or XML: the document says which).
const SBOMMediaType = "application/vnd.wardgate.sbom"
