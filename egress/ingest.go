package egress

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// ErrNoEvents: the batch stored no event (no line is an event of its
// format, or no event is from a device of the inventory). Nothing is
// recorded: the batch may be sent again, with the right format or once
// the inventory lists its devices.
var ErrNoEvents = errors.New("egress: the batch holds no event of a device in the inventory")

// detectBytes is how much of a batch format detection reads.
const detectBytes = 16 << 10

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
// Errors wrapping ErrUnknownFormat, ErrInputTooLarge or ErrNoEvents (then
// the result has the scan's statistics) are the batch's
// fault; ErrNoInventory (inv is nil) and any other error (the store, a
// read of r) are not, and a retry may succeed.
func Ingest(ctx context.Context, s EventStore, inv *Inventory, src Source, r io.Reader, format Format) (IngestResult, error) {
	if inv == nil {
		return IngestResult{}, ErrNoInventory
	}
	// The batch is known by its body and the format it is parsed as: the
	// same body sent with the wrong format, refused, may be sent again
	// with the right one. The format detection picks keeps the body's
	// digest alone as the key; any other format is appended to it.
	size, sized := sizeOf(r)
	br := bufio.NewReaderSize(r, detectBytes)
	prefix, perr := br.Peek(detectBytes)
	if perr != nil && !errors.Is(perr, io.EOF) && !errors.Is(perr, bufio.ErrBufferFull) {
		return IngestResult{}, fmt.Errorf("read the batch: %w", perr)
	}
	detected, derr := Detect(prefix)
	if format == FormatAuto {
		if derr != nil {
			return IngestResult{}, derr
		}
		format = detected
	}
	if format != detected {
		src.Digest += "+" + string(format)
	}
	// The store may let a small batch commit ahead of large ones.
	if errors.Is(perr, io.EOF) {
		ctx = WithBatchBytes(ctx, int64(len(prefix)))
	} else if sized {
		ctx = WithBatchBytes(ctx, size)
	} else {
		ctx = WithBatchBytes(ctx, math.MaxInt64) // unknown: as large as can be
	}
	var res IngestResult
	var scanErr error
	added, err := s.Ingest(ctx, src, func(add func(*Event) error) error {
		res.Stats, scanErr = Scan(br, func(ev *Event) error {
			d, ok := inv.Resolve(ev)
			if !ok {
				res.Unresolved++
				return nil
			}
			ev.DeviceName = d.Name
			res.Stored++
			return add(ev)
		}, WithFormat(format))
		if scanErr == nil && res.Stored == 0 {
			scanErr = ErrNoEvents // the store rolls back: the batch is not recorded
		}
		return scanErr
	})
	if err != nil {
		if scanErr != nil && errors.Is(err, scanErr) {
			err = scanErr // the batch's own error, not the store's
		}
		return IngestResult{Stats: res.Stats, Unresolved: res.Unresolved}, err
	}
	res.Added = added
	if !added {
		res.Stored, res.Unresolved = 0, 0
	}
	return res, nil
}

type batchBytesKey struct{}

// WithBatchBytes says, to the EventStore's Ingest, how large the batch
// being ingested is (its bytes); Ingest sets it. A store may order its
// writes by it (SQLite: a small batch commits ahead of large ones
// waiting).
func WithBatchBytes(ctx context.Context, n int64) context.Context {
	return context.WithValue(ctx, batchBytesKey{}, n)
}

// BatchBytes is the size WithBatchBytes set, false when none was.
func BatchBytes(ctx context.Context) (int64, bool) {
	n, ok := ctx.Value(batchBytesKey{}).(int64)
	return n, ok
}

// sizeOf is how many bytes r holds from where it is, when it says:
// a file, a bytes or strings reader.
func sizeOf(r io.Reader) (int64, bool) {
	switch r := r.(type) {
	case interface{ Len() int }:
		return int64(r.Len()), true
	case *os.File:
		st, err := r.Stat()
		if err != nil || !st.Mode().IsRegular() {
			return 0, false
		}
		pos, err := r.Seek(0, io.SeekCurrent)
		if err != nil {
			return 0, false
		}
		return st.Size() - pos, true
	}
	return 0, false
}

// BadInput reports whether err from Ingest is the batch's fault (retrying
// the same batch cannot succeed).
func BadInput(err error) bool {
	return errors.Is(err, ErrUnknownFormat) || errors.Is(err, ErrInputTooLarge) || errors.Is(err, ErrNoEvents)
}
