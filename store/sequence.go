package store

import (
	"bytes"
	"fmt"
)

// CheckSequence is what every backend checks of a Sequencer's batch before
// writing it: that it continues the log from head (stored; fresh when the
// log was never written) with items entries, numbered from head.Size, and
// a signed checkpoint of the new size under the log's origin. A batch that
// does not is refused with ErrSequence, and nothing is written.
func CheckSequence(head Checkpoint, fresh bool, items int, b LogBatch) error {
	if len(b.Entries) != items {
		return fmt.Errorf("%w: %d entries for %d items", ErrSequence, len(b.Entries), items)
	}
	for i, e := range b.Entries {
		if e.Index != head.Size+uint64(i) {
			return fmt.Errorf("%w: entry %d where the log needs %d", ErrSequence, e.Index, head.Size+uint64(i))
		}
	}
	cp := b.Checkpoint
	switch {
	case cp.Size != head.Size+uint64(items):
		return fmt.Errorf("%w: checkpoint of size %d after %d entries on a log of %d", ErrSequence, cp.Size, items, head.Size)
	case len(cp.Note) == 0 || cp.Origin == "":
		return fmt.Errorf("%w: unsigned checkpoint", ErrSequence)
	case !fresh && cp.Origin != head.Origin:
		return fmt.Errorf("%w: checkpoint origin %q on the log %q", ErrSequence, cp.Origin, head.Origin)
	case !fresh && items == 0 && !bytes.Equal(cp.Root, head.Root):
		return fmt.Errorf("%w: a new root with no new entries", ErrSequence)
	}
	return nil
}
