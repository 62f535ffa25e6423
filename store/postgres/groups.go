package postgres

import (
	"context"
	"errors"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/wardgate/wardgate/egress"
)

// groupCacheLimit is the most groups a replica's cache holds; past it, the
// cache is emptied and the groups it lacks are read again.
var groupCacheLimit = 1 << 17

// groupCache is a replica's copy of the groups it merged last: a batch's
// groups found in it are merged in Go without reading them. It is valid
// only while no other replica merged a batch since (the batch numbers
// are taken in turn under lockGroups: the batch before this one must be
// the one the cache took last); otherwise it is emptied, and then
// complete only if telemetry_groups is empty (a group it lacks is then
// new, not read). The cache is held (mu) from a batch's merge until its
// transaction ends, then takes the batch's groups if it committed, or is
// emptied if not.
type groupCache struct {
	mu       sync.Mutex
	last     int64 // the batch the cache took last; 0: none
	complete bool
	m        map[egress.GroupKey]*egress.Group
}

func newGroupCache() *groupCache { return &groupCache{m: map[egress.GroupKey]*egress.Group{}} }

func (c *groupCache) reset() {
	clear(c.m)
	c.last, c.complete = 0, false
}

// groupMerge is a batch's groups merged with the stored ones, as written.
type groupMerge struct {
	batch  int64
	merged []*egress.Group
}

// merge takes the next batch number and merges a batch's groups into
// telemetry_groups in tx; it holds the cache until done is called with
// the outcome of tx.
func (c *groupCache) merge(ctx context.Context, tx pgx.Tx, gs []*egress.Group) (*groupMerge, error) {
	c.mu.Lock()
	m, err := c.mergeLocked(ctx, tx, gs)
	if err != nil {
		c.reset()
		c.mu.Unlock()
		return nil, err
	}
	return m, nil
}

// done ends a merge: the cache takes its groups if its transaction
// committed, else it is emptied.
func (c *groupCache) done(m *groupMerge, committed bool) {
	defer c.mu.Unlock()
	if !committed {
		c.reset()
		return
	}
	for _, g := range m.merged {
		c.m[g.GroupKey] = g
	}
	c.last = m.batch
	if len(c.m) > groupCacheLimit {
		clear(c.m)
		c.complete = false
	}
}

func (c *groupCache) mergeLocked(ctx context.Context, tx pgx.Tx, gs []*egress.Group) (*groupMerge, error) {
	if _, err := tx.Exec(ctx, lockGroups); err != nil {
		return nil, err
	}
	var batch int64
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(batch), 0) + 1 FROM telemetry_sources`).Scan(&batch); err != nil {
		return nil, err
	}
	if c.last == 0 || c.last != batch-1 {
		clear(c.m)
		if err := tx.QueryRow(ctx, `SELECT NOT EXISTS (SELECT 1 FROM telemetry_groups)`).Scan(&c.complete); err != nil {
			return nil, err
		}
	}
	m := &groupMerge{batch: batch, merged: make([]*egress.Group, 0, len(gs))}
	var read []*egress.Group
	for _, g := range gs {
		switch s := c.m[g.GroupKey]; {
		case s != nil:
			n := s.Clone()
			n.Merge(g)
			m.merged = append(m.merged, n)
		case c.complete:
			m.merged = append(m.merged, g.Clone())
		default:
			read = append(read, g.Clone())
		}
	}
	if err := readGroups(ctx, tx, read); err != nil {
		return nil, err
	}
	m.merged = append(m.merged, read...)
	return m, writeGroups(ctx, tx, m.merged, batch)
}

const selectGroup = `SELECT events, sent, first, last, times FROM telemetry_groups
	WHERE device = $1 AND hour = $2 AND success = $3 AND remote_url = $4 AND remote_ip = $5 AND remote_ip_type = $6`

const upsertGroup = `INSERT INTO telemetry_groups VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
	ON CONFLICT (device, hour, success, remote_url, remote_ip, remote_ip_type) DO UPDATE SET
	events = excluded.events, sent = excluded.sent, first = excluded.first, last = excluded.last, times = excluded.times, batch = excluded.batch`

// readGroups merges into gs the stored groups of their keys: one round
// trip per 4,096.
func readGroups(ctx context.Context, tx pgx.Tx, gs []*egress.Group) error {
	for i := 0; i < len(gs); i += 4096 {
		part := gs[i:min(i+4096, len(gs))]
		var rb pgx.Batch
		for _, g := range part {
			rb.Queue(selectGroup, g.Device, g.Hour, g.Success, g.RemoteURL, addr(g.RemoteIP), g.RemoteIPType)
		}
		res := tx.SendBatch(ctx, &rb)
		var old egress.Group
		var times []byte
		for _, g := range part {
			switch err := res.QueryRow().Scan(&old.Events, &old.Sent, &old.First, &old.Last, &times); {
			case errors.Is(err, pgx.ErrNoRows):
			case err != nil:
				res.Close()
				return err
			default:
				if old.Times, err = egress.DecodeTimes(times); err != nil {
					res.Close()
					return err
				}
				g.Merge(&old)
			}
		}
		if err := res.Close(); err != nil {
			return err
		}
	}
	return nil
}

// writeGroups upserts merged groups: one round trip per 4,096.
func writeGroups(ctx context.Context, tx pgx.Tx, gs []*egress.Group, batch int64) error {
	for i := 0; i < len(gs); i += 4096 {
		var wb pgx.Batch
		for _, g := range gs[i:min(i+4096, len(gs))] {
			wb.Queue(upsertGroup, g.Device, g.Hour, g.Success, g.RemoteURL, addr(g.RemoteIP), g.RemoteIPType,
				g.Events, g.Sent, g.First, g.Last, egress.EncodeTimes(g.Times), batch)
		}
		if err := tx.SendBatch(ctx, &wb).Close(); err != nil {
			return err
		}
	}
	return nil
}
