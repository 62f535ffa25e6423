package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/wardgate/wardgate/egress"
)

// Error is an error with an HTTP status and a message that is safe to show
// the client. Handlers return it for bad input; anything else that reaches
// writeError is an internal error.
type Error struct {
	Status  int
	Code    string // stable, machine-readable: bad-request, unauthorized...
	Message string
	Err     error  // the cause, logged, never shown
	limit   string // the limit the request reached, for wardgate_limit_reached_total
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *Error {
	return errorf(http.StatusBadRequest, "bad-request", format, args...)
}

// Sentinels for the authentication and authorisation checks.
var (
	// ErrUnauthenticated: no bearer token, or one that is not known.
	ErrUnauthenticated = errors.New("server: missing or unknown bearer token")
	// ErrForbidden: the token's role does not allow the route.
	ErrForbidden = errors.New("server: role not allowed")
	// ErrRateLimited: the token is over its rate limit.
	ErrRateLimited = errors.New("server: rate limit exceeded")
	// ErrBusy: every slot of a bounded kind of work (uploads, evaluations,
	// exports) is taken; wrapped in a 503 naming which.
	ErrBusy = errors.New("server: at capacity")
	// ErrUnavailable: a store the request needs cannot be reached.
	ErrUnavailable = errors.New("server: store unavailable")
)

// errorBody is the JSON body of every error response.
type errorBody struct {
	Error struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		RequestID string `json:"requestId"`
	} `json:"error"`
}

// classify maps an error to its status, code and client-safe message. It
// is the one place that does so.
func classify(err error) (status int, code, msg string) {
	var he *Error
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		return he.Status, he.Code, he.Message
	case diskFull(err):
		ne := errNoSpace(err)
		return ne.Status, ne.Code, ne.Message
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, "too-large", fmt.Sprintf("request body over the %d byte limit", mbe.Limit)
	case errors.Is(err, ErrUnauthenticated):
		return http.StatusUnauthorized, "unauthorized", "a valid bearer token is required"
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden, "forbidden", "this token's role may not call this route"
	case errors.Is(err, ErrRateLimited):
		return http.StatusTooManyRequests, "rate-limited", "rate limit exceeded; retry later"
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable, "unavailable", "a store this request needs is unavailable; retry later"
	case errors.Is(err, egress.ErrUnknownFormat):
		return http.StatusBadRequest, "unknown-format", "the telemetry matches no supported format"
	case errors.Is(err, egress.ErrInputTooLarge):
		return http.StatusRequestEntityTooLarge, "too-large", "telemetry over the size limit"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return http.StatusRequestTimeout, "timeout", "the request body did not arrive in time"
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "timeout", "the request took too long; retry later"
	}
	return http.StatusInternalServerError, "internal", "internal error"
}

// writeError answers with the JSON error body. Internal errors are logged
// with the request ID and never echoed.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, st *reqState, err error) {
	status, code, msg := classify(err)
	if status >= 500 {
		s.log.LogAttrs(r.Context(), slog.LevelError, "request failed", slog.String("request_id", st.id), slog.String("route", st.route), slog.Any("err", err))
		if status == http.StatusInternalServerError {
			msg = "internal error; quote request id " + st.id
		}
	}
	switch status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="wardgate"`)
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
	}
	var b errorBody
	b.Error.Code, b.Error.Message, b.Error.RequestID = code, msg, st.id
	writeJSON(w, status, b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func slogID(st *reqState) slog.Attr { return slog.String("request_id", st.id) }
func slogErr(err error) slog.Attr   { return slog.Any("err", err) }
