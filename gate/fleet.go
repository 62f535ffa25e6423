package gate

import (
	"context"
	"fmt"
	"time"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/evidence"
)

// EgressRisk answers FleetRisk from the egress store: the detections run
// over everything ingested so far, and the update's risk state and
// findings go into the evidence.
type EgressRisk struct {
	Store     egress.Store
	Inventory *egress.Inventory
	Config    egress.Config
}

// Risk analyses the store and reports the update's fleet section.
func (e EgressRisk) Risk(ctx context.Context, digest string) (evidence.Fleet, error) {
	if e.Inventory == nil {
		return evidence.Fleet{RiskState: evidence.RiskClean}, nil // no fleet known: no telemetry
	}
	rep, err := egress.AnalyzeStore(ctx, e.Store, e.Inventory, e.Config)
	if err != nil {
		return evidence.Fleet{}, fmt.Errorf("egress analysis: %w", err)
	}
	f := rep.Fleet(digest)
	if f.RiskState == "" {
		f.RiskState = evidence.RiskClean
	}
	return f, nil
}

// Installations records that a device was admitted an update.
type Installations interface {
	RecordInstallation(ctx context.Context, in egress.Installation) error
}

// WithInstallations records every allowed device admission as an
// installation, so fleet telemetry can be joined with it.
func WithInstallations(s Installations) Option {
	return func(g *Gate) error { g.installs = s; return nil }
}

func (g *Gate) recordInstallation(ctx context.Context, out *Outcome, u Update, at time.Time) error {
	if g.installs == nil || u.Device == nil || u.Device.ID == "" || !out.Decision.Allow {
		return nil
	}
	return g.installs.RecordInstallation(ctx, egress.Installation{Device: u.Device.ID, Digest: out.Evidence.Artifact.Digest,
		Product: u.Product, Version: u.Version, Time: at})
}
