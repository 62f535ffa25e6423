package egress

import "context"

// Source identifies one ingested file, so re-ingesting it is a no-op.
type Source struct {
	// Name is the file name, for messages.
	Name string
	// Digest is "sha256:<hex>" of the file's content.
	Digest string
}

// EventStore keeps ingested events.
type EventStore interface {
	// Ingest stores the events that scan passes to add, in one
	// transaction, unless src.Digest was ingested before: then it returns
	// false and stores nothing.
	Ingest(ctx context.Context, src Source, scan func(add func(*Event) error) error) (added bool, err error)
	// Events calls fn with every stored event in time order. The *Event
	// is reused.
	Events(ctx context.Context, fn func(*Event) error) error
}

// InstallationStore keeps installation records; `wardgate admit --device`
// and the gate call RecordInstallation, `egress ingest --installs` imports.
type InstallationStore interface {
	// RecordInstallation stores one installation. Recording an installation
	// of the digest the device already has (its last installation at or
	// before that time is of the same digest) is a no-op: the earlier one
	// stands.
	RecordInstallation(ctx context.Context, in Installation) error
	// Installations returns every installation in time order.
	Installations(ctx context.Context) ([]Installation, error)
}

// InstallationLog is what a store recorded since a point, for a reader
// that keeps the installations it read and wants only the new ones.
type InstallationLog interface {
	// InstallationsSince returns the installations recorded after the
	// point after (0: every one), in the order they were recorded (not
	// their times'), and the point to ask from next (after itself when
	// none are new). A chain of calls returns every installation once,
	// whichever process recorded it.
	InstallationsSince(ctx context.Context, after int64) (ins []Installation, next int64, err error)
}

// Store is the storage egress needs.
type Store interface {
	EventStore
	InstallationStore
}

// AnalyzeStore runs the detections over everything in s.
func AnalyzeStore(ctx context.Context, s Store, inv *Inventory, cfg Config) (Report, error) {
	ins, err := s.Installations(ctx)
	if err != nil {
		return Report{}, err
	}
	a, err := NewAnalyzer(inv, ins, cfg)
	if err != nil {
		return Report{}, err
	}
	if err := s.Events(ctx, func(ev *Event) error { a.Add(ev); return nil }); err != nil {
		return Report{}, err
	}
	return a.Report(), nil
}
