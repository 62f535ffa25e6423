package tuf

import (
	"errors"
	"fmt"
	"strings"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Reason is a stable code for why a release is not backed by its vendor's
// TUF metadata. The policy reports each under the same code.
type Reason string

// Reasons.
const (
	// ReasonMissing: no TUF metadata was given for a vendor that pins a TUF
	// root, or the repository lacks a file the workflow needs.
	ReasonMissing Reason = "metadata-missing"
	// ReasonUntrusted: metadata whose signatures do not meet the threshold
	// of the keys the root (or a delegating role) lists, or metadata that
	// is malformed, oversized, inconsistent with the snapshot, or not
	// release metadata wardgate can use (a target without a version).
	ReasonUntrusted Reason = "metadata-untrusted"
	// ReasonRollback: metadata older than the versions already seen.
	ReasonRollback Reason = "metadata-rollback"
	// ReasonExpired: metadata past its expiry (a frozen repository).
	ReasonExpired Reason = "metadata-expired"
	// ReasonUnknownTarget: the metadata verified, but no trusted role lists
	// the artifact's target path.
	ReasonUnknownTarget Reason = "unknown-target"
	// ReasonDigestMismatch: the artifact's length or hashes are not the
	// target's.
	ReasonDigestMismatch Reason = "digest-mismatch"
)

// Reasons lists every reason.
var Reasons = []Reason{ReasonMissing, ReasonUntrusted, ReasonRollback, ReasonExpired, ReasonUnknownTarget, ReasonDigestMismatch}

// sourceError is a problem with a file the source served (a bad name, too
// large, not TUF metadata, over the lookup's byte budget): the repository
// cannot be trusted.
type sourceError struct {
	file string
	msg  string
}

func (e *sourceError) Error() string { return e.file + ": " + e.msg }

// ioError is a local failure (the state's temporary directory): no
// decision can be made from it.
type ioError struct{ err error }

func (e *ioError) Error() string { return e.err.Error() }
func (e *ioError) Unwrap() error { return e.err }

// classify maps an error of go-tuf's updater to a reason. The untyped
// errors are go-tuf's messages at the pinned version (v2.3.0); the tests
// pin the mapping.
func classify(err error) Reason {
	var (
		expired   *metadata.ErrExpiredMetadata
		version   *metadata.ErrBadVersionNumber
		unsigned  *metadata.ErrUnsignedMetadata
		mismatch  *metadata.ErrLengthOrHashMismatch
		http      *metadata.ErrDownloadHTTP
		tooLong   *metadata.ErrDownloadLengthMismatch
		equal     *metadata.ErrEqualVersionNumber
		sourceErr *sourceError
	)
	switch {
	case errors.As(err, &expired):
		return ReasonExpired
	case errors.As(err, &equal):
		// only surfaces for a root N+1 that says it is version N
		return ReasonRollback
	case errors.As(err, &version):
		return ReasonRollback
	case errors.As(err, &unsigned), errors.As(err, &mismatch), errors.As(err, &tooLong), errors.As(err, &sourceErr):
		return ReasonUntrusted
	case errors.As(err, &http):
		return ReasonMissing
	}
	msg := err.Error()
	if strings.HasPrefix(msg, "target ") && strings.HasSuffix(msg, " not found") {
		return ReasonUnknownTarget
	}
	// Everything else go-tuf reports (JSON that does not decode into TUF
	// metadata, a wrong _type, duplicate signature key IDs, a role missing
	// from the snapshot, unknown key types) is metadata that cannot be
	// trusted.
	return ReasonUntrusted
}

// describe is a one-line description of err for the evidence: go-tuf's
// message, with the HTTP wording of a missing file turned into what it is.
func describe(err error) string {
	var http *metadata.ErrDownloadHTTP
	if errors.As(err, &http) && http.StatusCode == 404 {
		return fmt.Sprintf("the repository has no %s", strings.TrimPrefix(http.URL, remoteBase))
	}
	return err.Error()
}
