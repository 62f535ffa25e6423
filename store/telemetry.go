package store

import (
	"context"

	"github.com/wardgate/wardgate/egress"
)

// Telemetry keeps ingested egress events: Ingest stores a batch in one
// write unless its source was ingested before; Events reads them all in
// time order.
type Telemetry interface {
	egress.EventStore
}

// Installations keeps which update each device installed, so telemetry can
// be joined with it.
type Installations interface {
	// RecordInstallation (group-committed) and Installations, as
	// egress.InstallationStore says.
	egress.InstallationStore
	// RecordInstallations stores many in one write: all or none.
	RecordInstallations(ctx context.Context, ins []egress.Installation) error
	// ExpectInstallation announces a RecordInstallation on its way.
	ExpectInstallation() (done func())
}
