package server

import (
	"context"
	"io"
	"time"

	"github.com/wardgate/wardgate/egress"
)

// IngestTelemetry commits one batch of telemetry the way POST
// /v1/telemetry does (egress.Ingest over the server's store and
// inventory) and, when the batch added events, waits for a fleet analysis
// that includes them (RiskCache.Sync). The telemetry bus (egress/bus) calls it
// for each message; errors are egress.Ingest's.
func (s *Server) IngestTelemetry(ctx context.Context, src egress.Source, body io.Reader, format egress.Format) (egress.IngestResult, error) {
	t0 := time.Now()
	res, err := egress.Ingest(ctx, s.deps.Telemetry, s.deps.Inventory(), src, body, format)
	if err != nil || !res.Added {
		return res, err
	}
	s.deps.Risk.Invalidate()
	s.metrics.events.Add(uint64(res.Stored))
	// Answered (or acknowledged on the bus) only once an analysis includes
	// the batch: a quarantine it raises is in force for every admission
	// that starts afterwards, although admissions are answered from the
	// last complete analysis meanwhile. A failed analysis does not undo
	// the commit; the next one covers the batch.
	// Bounded as a POST /v1/telemetry is: the bus's context never ends.
	sctx, cancel := context.WithTimeout(ctx, s.limits.TelemetryTimeout)
	defer cancel()
	t1 := time.Now()
	_, _ = s.deps.Risk.Sync(sctx)
	if s.traceIngest != nil {
		s.traceIngest(res.Stored, t1.Sub(t0), time.Since(t1))
	}
	return res, nil
}
