package gate

import (
	"context"
	"time"

	"github.com/wardgate/wardgate/egress"
)

// Installations records that a device was admitted an update
// (store.Installations has these).
type Installations interface {
	// RecordInstallation returns once the installation is durable.
	RecordInstallation(ctx context.Context, in egress.Installation) error
	// ExpectInstallation announces a RecordInstallation on its way, so
	// the store's group commit waits for it.
	ExpectInstallation() (done func())
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
	in := egress.Installation{Device: u.Device.ID, Digest: out.Evidence.Artifact.Digest, Product: u.Product, Version: u.Version, Time: at}
	if err := g.installs.RecordInstallation(ctx, in); err != nil {
		return err
	}
	if g.rolloutCache != nil {
		g.rolloutCache.add(in) // durable now: the rollout counts it at once
	}
	return nil
}
