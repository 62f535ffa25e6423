package egress

import (
	"context"
	"errors"
	"io"
)

// ErrNoInventory: telemetry cannot be mapped to devices because the gate
// has no fleet inventory yet.
var ErrNoInventory = errors.New("egress: no fleet inventory")

// IngestResult is what one batch of telemetry added.
type IngestResult struct {
	// Added is false when the batch (its Source.Digest) was ingested
	// before: then nothing was stored and Stored and Unresolved are 0.
	Added bool
	// Stats is what the scan saw.
	Stats Stats
	// Stored counts events of inventory devices, stored.
	Stored int64
	// Unresolved counts events of devices not in the inventory (dropped).
	Unresolved int64
}

// Ingest scans one batch of telemetry from r in format (FormatAuto:
// detected), maps each event to an inventory device and stores the batch
// in s in one transaction, keyed by src.Digest: a batch ingested before
// adds nothing. It is the one ingestion path; POST /v1/telemetry and the
// telemetry bus both call it.
//
// Errors wrapping ErrUnknownFormat or ErrInputTooLarge are the batch's
// fault; ErrNoInventory (inv is nil) and any other error (the store, a
// read of r) are not, and a retry may succeed.
func Ingest(ctx context.Context, s EventStore, inv *Inventory, src Source, r io.Reader, format Format) (IngestResult, error) {
	if inv == nil {
		return IngestResult{}, ErrNoInventory
	}
	var res IngestResult
	added, err := s.Ingest(ctx, src, func(add func(*Event) error) error {
		var err error
		res.Stats, err = Scan(r, func(ev *Event) error {
			d, ok := inv.Resolve(ev)
			if !ok {
				res.Unresolved++
				return nil
			}
			ev.DeviceName = d.Name
			res.Stored++
			return add(ev)
		}, WithFormat(format))
		return err
	})
	if err != nil {
		return IngestResult{Stats: res.Stats}, err
	}
	res.Added = added
	if !added {
		res.Stored, res.Unresolved = 0, 0
	}
	return res, nil
}

// BadInput reports whether err from Ingest is the batch's fault (retrying
// the same batch cannot succeed).
func BadInput(err error) bool {
	return errors.Is(err, ErrUnknownFormat) || errors.Is(err, ErrInputTooLarge)
}
