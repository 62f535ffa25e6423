package store

import (
	"context"

	"github.com/wardgate/wardgate/egress"
)

// Telemetry keeps ingested egress events: Ingest stores a batch in one
// write unless its source was ingested before, and merges its events into
// their groups in the same write; Events reads them all in time order;
// Groups reads the groups changed since a batch (the incremental fleet
// analysis, egress.Live).
type Telemetry interface {
	egress.EventStore
	egress.GroupStore
}

// Installations keeps which update each device installed, so telemetry can
// be joined with it.
type Installations interface {
	// RecordInstallation (group-committed) and Installations, as
	// egress.InstallationStore says.
	egress.InstallationStore
	egress.InstallationLog
	// RecordInstallations stores many in one write: all or none.
	RecordInstallations(ctx context.Context, ins []egress.Installation) error
	// ExpectInstallation announces a RecordInstallation on its way.
	ExpectInstallation() (done func())
}
