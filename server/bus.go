package server

import (
	"context"
	"io"

	"github.com/wardgate/wardgate/egress"
)

// IngestTelemetry commits one batch of telemetry the way POST
// /v1/telemetry does (egress.Ingest over the server's store and
// inventory) and, when the batch added events, invalidates the risk cache
// so the next admission sees them. The telemetry bus (egress/bus) calls it
// for each message; errors are egress.Ingest's.
func (s *Server) IngestTelemetry(ctx context.Context, src egress.Source, body io.Reader, format egress.Format) (egress.IngestResult, error) {
	res, err := egress.Ingest(ctx, s.deps.Telemetry, s.deps.Inventory(), src, body, format)
	if err != nil || !res.Added {
		return res, err
	}
	s.deps.Risk.Invalidate() // the next admission sees this batch
	s.metrics.events.Add(uint64(res.Stored))
	return res, nil
}
