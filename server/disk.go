package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
)

// diskFull reports whether err says the state filesystem is full: ENOSPC
// or EDQUOT from a write, SQLITE_FULL from a store.
func diskFull(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	var coded interface{ Code() int }
	if errors.As(err, &coded) && coded.Code()&0xff == 13 { // SQLITE_FULL
		return true
	}
	return strings.Contains(err.Error(), "database or disk is full")
}

// errNoSpace is the 503 for a full state filesystem; it names no path.
func errNoSpace(cause error) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: "no-space", Err: cause, limit: limitDiskFull,
		Message: "the gate's state filesystem is full; retry later"}
}

// checkFreeSpace refuses work that writes to the state filesystem when it
// has less than MinFreeBytes free.
func (s *Server) checkFreeSpace() error {
	free, ok := freeBytes(s.deps.WorkDir)
	if !ok || free >= uint64(s.limits.MinFreeBytes) {
		return nil
	}
	return &Error{Status: http.StatusServiceUnavailable, Code: "no-space", limit: limitFreeBytes,
		Message: fmt.Sprintf("the gate's state filesystem has less than %d bytes free; retry later", s.limits.MinFreeBytes)}
}

// diskReady is the /readyz check of free space.
func (s *Server) diskReady() error {
	free, ok := freeBytes(s.deps.WorkDir)
	if ok && free < uint64(s.limits.MinFreeBytes) {
		return fmt.Errorf("state filesystem: %d bytes free, below the %d byte minimum", free, s.limits.MinFreeBytes)
	}
	return nil
}

// spoolWriter marks errors writing a spool file, so that a failed upload
// is told apart from a malformed one: the first is the gate's (503 when
// the disk is full, else 500), the second the client's (400).
type spoolWriter struct{ w io.Writer }

type spoolError struct{ err error }

func (e *spoolError) Error() string { return "spool: " + e.err.Error() }
func (e *spoolError) Unwrap() error { return e.err }

func (w spoolWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if err != nil {
		err = &spoolError{err}
	}
	return n, err
}
