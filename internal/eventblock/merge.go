package eventblock

import (
	"fmt"

	"github.com/wardgate/wardgate/egress"
)

// Stored is one stored block as Merge reads it.
type Stored struct {
	// Seq orders blocks whose events have the same time: the order they
	// were ingested in (a store's row number).
	Seq int64
	// First is the block's first time (Encode's first), Unix nanoseconds.
	First int64
	Data  []byte
}

type cursor struct {
	b   *Block
	i   int
	seq int64
}

func (c *cursor) less(o *cursor) bool {
	if t, u := c.b.ts[c.i], o.b.ts[o.i]; t != u {
		return t < u
	}
	return c.seq < o.seq
}

// cursors is a min-heap of the blocks being merged.
type cursors []*cursor

func (h cursors) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h[i].less(h[p]) {
			return
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (h cursors) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h[r].less(h[l]) {
			m = r
		}
		if !h[m].less(h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// Merge calls fn with the events of the blocks that next yields, in time
// order, ties in block order (Seq) then in their order in the block:
// with blocks numbered in ingestion order, the events' ingestion order.
// next must yield the blocks ordered by (First, Seq), and false after the
// last. A block is decoded only once the merge reaches its first time, so
// what is held is the blocks whose times overlap, not every block. A
// block that does not decode, or whose first time is not the one stored
// with it, is an error (ErrCorrupt). The *Event is reused.
func Merge(next func() (Stored, bool, error), fn func(*egress.Event) error) error {
	var h cursors
	pending, ok, err := next()
	if err != nil {
		return err
	}
	var prev Stored
	var ev egress.Event
	for {
		// Every block that may hold the next event is decoded: those that
		// start at or before the earliest event held.
		for ok && (len(h) == 0 || pending.First <= h[0].b.ts[h[0].i]) {
			b, err := Decode(pending.Data)
			if err != nil {
				return fmt.Errorf("event block %d: %w", pending.Seq, err)
			}
			if b.ts[0] != pending.First {
				return fmt.Errorf("event block %d: %w: starts at %d, stored as %d", pending.Seq, ErrCorrupt, b.ts[0], pending.First)
			}
			h = append(h, &cursor{b: b, seq: pending.Seq})
			h.up(len(h) - 1)
			prev = pending
			if pending, ok, err = next(); err != nil {
				return err
			}
			if ok && (pending.First < prev.First || (pending.First == prev.First && pending.Seq <= prev.Seq)) {
				return fmt.Errorf("event blocks out of order: %d after %d", pending.Seq, prev.Seq)
			}
		}
		if len(h) == 0 {
			return nil
		}
		c := h[0]
		c.b.Event(c.i, &ev)
		if err := fn(&ev); err != nil {
			return err
		}
		if c.i++; c.i == c.b.Len() {
			h[0] = h[len(h)-1]
			h[len(h)-1] = nil
			h = h[:len(h)-1]
		}
		if len(h) > 0 {
			h.down(0)
		}
	}
}
