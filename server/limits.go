package server

import (
	"context"
	"errors"
	"fmt"
	"github.com/wardgate/wardgate/firmware"
	"net/http"
	"time"
)

// Limits bound what one client or one request may take: connections,
// time, bytes, parts and concurrency. Zero fields take the defaults
// (DefaultLimits). docs/serve.md lists them in one table, with the
// configuration key of each and the metric counted when it is reached
// (wardgate_limit_reached_total{limit=...}).
type Limits struct {
	// Bodies.
	MaxUploadBytes    int64 // firmware upload, whole multipart body
	MaxTelemetryBytes int64 // one telemetry batch
	MaxJSONBytes      int64 // JSON request bodies (an image request: plus MaxSBOMBytes)
	MaxJSONDepth      int   // nesting of objects and arrays in a JSON request body
	MaxHeaderBytes    int   // a request's headers (net/http answers 431 past it)
	// Multipart parts of an upload besides the firmware: signature and
	// bundle parts, bytes of one of them, bytes of the SBOM part, and bytes
	// of all of them together. They are spooled to disk while the upload
	// is received, and read into memory only once an evaluation slot is
	// taken.
	MaxSignatureParts int
	MaxSignatureBytes int64
	MaxSBOMBytes      int64
	MaxPartsBytes     int64

	// Concurrency: uploads being received or evaluated, evaluations
	// running, evidence exports running. A request that waits longer than
	// EvaluateWait (ExportWait) for a slot gets 503.
	Uploads      int
	Evaluations  int
	EvaluateWait time.Duration
	Exports      int
	ExportWait   time.Duration

	// Time budgets. Every wait inside a request honours its budget.
	EvaluateTimeout  time.Duration // one evaluation, once its slot is taken
	AdmitTimeout     time.Duration
	TelemetryTimeout time.Duration // one telemetry batch, body included
	ExportTimeout    time.Duration
	UploadTimeout    time.Duration // receiving an upload's body
	ReadTimeout      time.Duration // small-body routes: the body must arrive within this
	// MinBodyRate is the slowest a large body (upload, telemetry) may
	// arrive, in bytes per second on average once BodyRateGrace has
	// passed; a slower client is cut off with 408.
	MinBodyRate   int64
	BodyRateGrace time.Duration

	// Connections.
	ReadHeaderTimeout time.Duration // a request's headers must arrive within this
	IdleTimeout       time.Duration // an idle keep-alive connection is closed after this
	// MaxConnsPerClient bounds the open connections of one client address;
	// MaxConns all open connections (0: the file-descriptor budget, the
	// process's open-file limit less a reserve for stores and spool files).
	// At MaxConns the oldest idle connection is closed to make room;
	// without one, new connections wait in the listen backlog.
	MaxConnsPerClient int
	MaxConns          int

	// MinFreeBytes is the free space the state filesystem must keep:
	// below it /readyz says not ready and uploads and telemetry get 503
	// before their body is read.
	MinFreeBytes int64
}

// DefaultLimits are the limits unless WithLimits says otherwise.
var DefaultLimits = Limits{
	MaxUploadBytes:    1 << 30,
	MaxTelemetryBytes: 64 << 20,
	MaxJSONBytes:      64 << 10,
	MaxJSONDepth:      64,
	MaxHeaderBytes:    64 << 10,
	MaxSignatureParts: 16,
	MaxSignatureBytes: 8 << 20,
	MaxSBOMBytes:      64 << 20,
	MaxPartsBytes:     64 << 20,
	Uploads:           4,
	Evaluations:       2,
	EvaluateWait:      2 * time.Second,
	Exports:           2,
	ExportWait:        2 * time.Second,
	EvaluateTimeout:   5 * time.Minute,
	AdmitTimeout:      2 * time.Second,
	TelemetryTimeout:  2 * time.Minute,
	ExportTimeout:     5 * time.Minute,
	UploadTimeout:     10 * time.Minute,
	ReadTimeout:       10 * time.Second,
	MinBodyRate:       16 << 10,
	BodyRateGrace:     10 * time.Second,
	ReadHeaderTimeout: 5 * time.Second,
	IdleTimeout:       30 * time.Second,
	MaxConnsPerClient: 256,
	MaxConns:          0,
	MinFreeBytes:      64 << 20,
}

// WithLimits sets request limits; zero fields keep their defaults, negative
// ones are refused.
func WithLimits(l Limits) Option {
	return func(c *config) error {
		d := &c.limits
		var errs []error
		i64 := func(name string, v int64, dst *int64) {
			switch {
			case v < 0:
				errs = append(errs, fmt.Errorf("server: negative limit %s", name))
			case v > 0:
				*dst = v
			}
		}
		n := func(name string, v int, dst *int) {
			switch {
			case v < 0:
				errs = append(errs, fmt.Errorf("server: negative limit %s", name))
			case v > 0:
				*dst = v
			}
		}
		dur := func(name string, v time.Duration, dst *time.Duration) {
			switch {
			case v < 0:
				errs = append(errs, fmt.Errorf("server: negative timeout %s", name))
			case v > 0:
				*dst = v
			}
		}
		i64("upload", l.MaxUploadBytes, &d.MaxUploadBytes)
		i64("telemetry", l.MaxTelemetryBytes, &d.MaxTelemetryBytes)
		i64("JSON", l.MaxJSONBytes, &d.MaxJSONBytes)
		n("JSON depth", l.MaxJSONDepth, &d.MaxJSONDepth)
		n("header bytes", l.MaxHeaderBytes, &d.MaxHeaderBytes)
		n("signature parts", l.MaxSignatureParts, &d.MaxSignatureParts)
		i64("signature bytes", l.MaxSignatureBytes, &d.MaxSignatureBytes)
		i64("SBOM bytes", l.MaxSBOMBytes, &d.MaxSBOMBytes)
		i64("parts bytes", l.MaxPartsBytes, &d.MaxPartsBytes)
		n("uploads", l.Uploads, &d.Uploads)
		n("evaluation concurrency", l.Evaluations, &d.Evaluations)
		dur("evaluate wait", l.EvaluateWait, &d.EvaluateWait)
		n("exports", l.Exports, &d.Exports)
		dur("export wait", l.ExportWait, &d.ExportWait)
		dur("evaluate", l.EvaluateTimeout, &d.EvaluateTimeout)
		dur("admit", l.AdmitTimeout, &d.AdmitTimeout)
		dur("telemetry", l.TelemetryTimeout, &d.TelemetryTimeout)
		dur("export", l.ExportTimeout, &d.ExportTimeout)
		dur("upload", l.UploadTimeout, &d.UploadTimeout)
		dur("read", l.ReadTimeout, &d.ReadTimeout)
		i64("minimum body rate", l.MinBodyRate, &d.MinBodyRate)
		dur("body rate grace", l.BodyRateGrace, &d.BodyRateGrace)
		dur("read header", l.ReadHeaderTimeout, &d.ReadHeaderTimeout)
		dur("idle", l.IdleTimeout, &d.IdleTimeout)
		n("connections per client", l.MaxConnsPerClient, &d.MaxConnsPerClient)
		n("connections", l.MaxConns, &d.MaxConns)
		i64("minimum free bytes", l.MinFreeBytes, &d.MinFreeBytes)
		return errors.Join(errs...)
	}
}

// Names of the limits in wardgate_limit_reached_total{limit=...}; each is
// counted when a request or connection is refused, cut off or made to
// wait because of it. Stable: dashboards and alerts use them.
const (
	limitUploadBytes     = "upload_bytes"
	limitTelemetryBytes  = "telemetry_bytes"
	limitJSONBytes       = "json_bytes"
	limitPartsBytes      = "parts_bytes"
	limitSignatureParts  = "signature_parts"
	limitSignatureBytes  = "signature_bytes"
	limitSBOMBytes       = "sbom_bytes"
	limitUploads         = "uploads"
	limitEvaluations     = "evaluations"
	limitExports         = "exports"
	limitBodyRate        = "min_body_rate"
	limitBodyTimeout     = "body_timeout"
	limitReadTimeout     = "read_timeout"
	limitRequestTimeout  = "request_timeout"
	limitAdmitTimeout    = "admit_timeout"
	limitEvaluateTimeout = "evaluate_timeout"
	limitRateLimit       = "rate_limit"
	limitConnsPerClient  = "connections_per_client"
	limitConns           = "connections"
	limitReadHeader      = "read_header_timeout"
	limitIdle            = "idle_timeout"
	limitFreeBytes       = "min_free_bytes"
	limitDiskFull        = "disk_full"
	limitFleetWait       = "fleet_wait"
	limitFleetStaleness  = "fleet_staleness"
	limitJSONDepth       = "json_depth"
	limitIdentifier      = "identifier"
	limitHeaderBytes     = "header_bytes"
	// The firmware unpacking limits (firmware.LimitError), by its Limit.
	limitUnpackPrefix = "unpack_"
)

// acquire takes a slot of sem, waiting at most wait (and never past ctx);
// when none frees up in time it returns a 503 busy error that names what,
// counted under limit. The returned func gives the slot back.
func (s *Server) acquire(ctx context.Context, sem chan struct{}, wait time.Duration, limit, what string) (func(), error) {
	select {
	case sem <- struct{}{}:
		return func() { <-sem }, nil
	default:
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case sem <- struct{}{}:
		return func() { <-sem }, nil
	case <-t.C:
	case <-ctx.Done():
	}
	return nil, &Error{Status: http.StatusServiceUnavailable, Code: "busy", Message: fmt.Sprintf("every %s slot is taken; retry later", what), Err: ErrBusy, limit: limit}
}

// unpackLimit names the firmware unpacking limit (unpack_bytes,
// unpack_files, unpack_depth, unpack_ratio) an evaluation's error says was
// reached; "" when none was.
func unpackLimit(err error) string {
	var le *firmware.LimitError
	if !errors.As(err, &le) {
		return ""
	}
	return limitUnpackPrefix + le.Limit
}
