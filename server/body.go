package server

import (
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"
)

// rateBody reads a large request body (an upload, a telemetry batch) under
// a read deadline that moves with it: byte n must arrive by start + grace +
// n/MinBodyRate, and every byte by start + timeout. A client that sends
// slower than the minimum rate on average, once the grace has passed, or
// that takes longer than the body's time budget, is cut off with 408; it
// cannot hold the server's slots at a byte a second.
type rateBody struct {
	io.ReadCloser
	rc       *http.ResponseController
	start    time.Time
	grace    time.Duration
	rate     float64 // bytes per second
	deadline time.Time
	n        int64
	err      *Error // set once the body was cut off (parsers may not wrap it)
}

func (s *Server) rateBody(b io.ReadCloser, rc *http.ResponseController, start time.Time, timeout time.Duration) *rateBody {
	if timeout <= 0 {
		timeout = s.limits.UploadTimeout
	}
	return &rateBody{ReadCloser: b, rc: rc, start: start, grace: s.limits.BodyRateGrace, rate: float64(s.limits.MinBodyRate), deadline: start.Add(timeout)}
}

// next is when the next byte is due, and whether the rate (not the
// overall budget) sets it.
func (b *rateBody) next() (time.Time, bool) {
	t := b.start.Add(b.grace + time.Duration(float64(b.n+1)/b.rate*float64(time.Second)))
	if t.Before(b.deadline) {
		return t, true
	}
	return b.deadline, false
}

func (b *rateBody) Read(p []byte) (int, error) {
	due, byRate := b.next()
	if err := b.rc.SetReadDeadline(due); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return 0, err
	}
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		if byRate {
			b.err = &Error{Status: http.StatusRequestTimeout, Code: "too-slow", limit: limitBodyRate, Err: err,
				Message: "the request body arrived slower than " + byteRate(b.rate) + " on average; send it faster"}
		} else {
			b.err = &Error{Status: http.StatusRequestTimeout, Code: "timeout", limit: limitBodyTimeout, Err: err,
				Message: "the request body did not arrive within " + b.deadline.Sub(b.start).String()}
		}
		return n, b.err
	}
	if errors.Is(err, io.EOF) {
		clearReadDeadline(b.rc)
	}
	return n, err
}

// clearReadDeadline lifts a body's read deadline once the body is read.
// net/http then reads the connection in the background to notice a client
// that goes away, and cancels the request's context when that read fails:
// a deadline left in place would cancel a handler (an export, an
// evaluation) that runs past it.
func clearReadDeadline(rc *http.ResponseController) {
	_ = rc.SetReadDeadline(time.Time{})
}

// deadlineBody is a small body read within a deadline (limits.read_timeout),
// lifted once the body is read.
type deadlineBody struct {
	io.ReadCloser
	rc *http.ResponseController
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) {
		clearReadDeadline(b.rc)
	}
	return n, err
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func byteRate(r float64) string {
	switch {
	case r >= 1<<20 && int64(r)%(1<<20) == 0:
		return itoa(int64(r)>>20) + " MiB/s"
	case r >= 1<<10 && int64(r)%(1<<10) == 0:
		return itoa(int64(r)>>10) + " KiB/s"
	}
	return itoa(int64(r)) + " bytes/s"
}
