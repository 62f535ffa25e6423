package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/wardgate/wardgate/egress"
)

// groupCacheLimit is the most groups the writer's cache holds: past it,
// the groups of the oldest hours are dropped until at most half of it is
// left (batches arrive roughly in time order: the hours dropped are the
// ones no batch touches any more).
var groupCacheLimit = 1 << 17

// groupCache is the writer's copy of event_groups (egress.db's one writer
// connection writes them all): each batch's groups are merged with it in
// Go and written back by row id, so an ingest reads a stored group only
// when the cache lacks it, and never when the cache is complete for the
// group's hour (it holds every stored group of that hour: every hour from
// from on). It is valid while no other connection wrote the file (PRAGMA
// data_version, read in each ingest's transaction: another process
// writing the same state directory makes it read again). The cache is
// held (mu) from a batch's merge until its transaction ends, then takes
// the batch's groups if it committed, or is emptied if not.
type groupCache struct {
	mu       sync.Mutex
	valid    bool
	version  int64
	complete bool  // for every hour from from on
	from     int64 // an hour (Unix seconds)
	m        map[egress.GroupKey]*storedGroup
}

// storedGroup is a group and its row in event_groups.
type storedGroup struct {
	id int64
	g  *egress.Group
}

func newGroupCache() *groupCache { return &groupCache{m: map[egress.GroupKey]*storedGroup{}} }

func (c *groupCache) reset() {
	clear(c.m)
	c.valid, c.complete, c.from = false, false, math.MinInt64
}

// groupMerge is a batch's groups merged with the stored ones, as written.
type groupMerge struct{ merged []*storedGroup }

// merge merges a batch's groups into event_groups in tx, and holds the
// cache until done is called with the outcome of tx.
func (c *groupCache) merge(ctx context.Context, tx *sql.Tx, gs []*egress.Group, batch int64) (*groupMerge, error) {
	c.mu.Lock()
	m, err := c.mergeLocked(ctx, tx, gs, batch)
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
	for _, s := range m.merged {
		c.m[s.g.GroupKey] = s
	}
	if len(c.m) > groupCacheLimit {
		c.evict()
	}
}

// evict drops the groups of the oldest hours, keeping at most half of
// groupCacheLimit: the cache stays complete for the hours kept.
func (c *groupCache) evict() {
	perHour := map[int64]int{}
	for k := range c.m {
		perHour[k.Hour]++
	}
	hours := make([]int64, 0, len(perHour))
	for h := range perHour {
		hours = append(hours, h)
	}
	slices.Sort(hours)
	kept, cut := 0, int64(math.MaxInt64)
	for i := len(hours) - 1; i >= 0 && kept+perHour[hours[i]] <= groupCacheLimit/2; i-- {
		kept += perHour[hours[i]]
		cut = hours[i]
	}
	for k := range c.m {
		if k.Hour < cut {
			delete(c.m, k)
		}
	}
	c.from = max(c.from, cut)
}

const groupCols = `device, hour, success, remote_url, remote_ip, remote_ip_type, events, sent, first, last, times`

func (c *groupCache) mergeLocked(ctx context.Context, tx *sql.Tx, gs []*egress.Group, batch int64) (*groupMerge, error) {
	var version int64
	if err := tx.QueryRowContext(ctx, `PRAGMA data_version`).Scan(&version); err != nil {
		return nil, err
	}
	if !c.valid || version != c.version {
		if err := c.load(ctx, tx); err != nil {
			return nil, err
		}
		c.valid, c.version = true, version
	}
	var maxID int64
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM event_groups`).Scan(&maxID); err != nil {
		return nil, err
	}
	var sel *sql.Stmt
	defer func() {
		if sel != nil {
			sel.Close()
		}
	}()
	out := &groupMerge{merged: make([]*storedGroup, 0, len(gs))}
	var inserts, updates []*storedGroup
	for _, g := range gs {
		if s := c.m[g.GroupKey]; s != nil {
			m := s.g.Clone()
			m.Merge(g)
			updates = append(updates, &storedGroup{id: s.id, g: m})
			continue
		}
		if !c.complete || g.Hour < c.from {
			if sel == nil {
				var err error
				if sel, err = tx.PrepareContext(ctx, `SELECT id, `+groupCols+` FROM event_groups
					WHERE device = ? AND hour = ? AND success = ? AND remote_url = ? AND remote_ip = ? AND remote_ip_type = ?`); err != nil {
					return nil, err
				}
			}
			s, err := scanGroup(sel.QueryRowContext(ctx, g.Device, g.Hour, g.Success, g.RemoteURL, addr(g.RemoteIP), g.RemoteIPType).Scan)
			switch {
			case err == nil:
				s.g.Merge(g)
				updates = append(updates, s)
				continue
			case !errors.Is(err, sql.ErrNoRows):
				return nil, err
			}
		}
		maxID++
		inserts = append(inserts, &storedGroup{id: maxID, g: g.Clone()})
	}
	if err := insertGroups(ctx, tx, inserts, batch); err != nil {
		return nil, err
	}
	if err := updateGroups(ctx, tx, updates, batch); err != nil {
		return nil, err
	}
	out.merged = append(append(out.merged, inserts...), updates...)
	return out, nil
}

// load fills the cache with every stored group if there are at most
// groupCacheLimit (then it is complete for every hour), else empties it
// (then it is complete for none until it was).
func (c *groupCache) load(ctx context.Context, tx *sql.Tx) error {
	clear(c.m)
	c.complete, c.from = false, math.MinInt64
	rows, err := tx.QueryContext(ctx, `SELECT id, `+groupCols+` FROM event_groups LIMIT ?`, groupCacheLimit+1)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		s, err := scanGroup(rows.Scan)
		if err != nil {
			return err
		}
		c.m[s.g.GroupKey] = s
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(c.m) > groupCacheLimit {
		clear(c.m)
		return nil
	}
	c.complete, c.from = true, math.MinInt64
	return nil
}

func scanGroup(scan func(...any) error) (*storedGroup, error) {
	s := &storedGroup{g: &egress.Group{}}
	g := s.g
	var ip string
	var times []byte
	if err := scan(&s.id, &g.Device, &g.Hour, &g.Success, &g.RemoteURL, &ip, &g.RemoteIPType, &g.Events, &g.Sent, &g.First, &g.Last, &times); err != nil {
		return nil, err
	}
	var err error
	if g.RemoteIP, err = egress.ParseGroupAddr(ip); err != nil {
		return nil, err
	}
	if g.Times, err = egress.DecodeTimes(times); err != nil {
		return nil, err
	}
	return s, nil
}

// groupRows is how many groups one statement writes.
const groupRows = 64

// insertGroups inserts new groups, groupRows per statement.
func insertGroups(ctx context.Context, tx *sql.Tx, ss []*storedGroup, batch int64) error {
	const row = "(?,?,?,?,?,?,?,?,?,?,?,?,?)"
	return inParts(ctx, tx, ss, nil, func(n int) string {
		return `INSERT INTO event_groups(id, ` + groupCols + `, batch) VALUES ` + row + strings.Repeat(","+row, n-1)
	}, func(args []any, s *storedGroup) []any {
		g := s.g
		return append(args, s.id, g.Device, g.Hour, g.Success, g.RemoteURL, addr(g.RemoteIP), g.RemoteIPType,
			g.Events, g.Sent, g.First, g.Last, egress.EncodeTimes(g.Times), batch)
	})
}

// updateGroups writes merged groups back to their rows, groupRows per
// statement.
func updateGroups(ctx context.Context, tx *sql.Tx, ss []*storedGroup, batch int64) error {
	const row = "(?,?,?,?,?,?)"
	return inParts(ctx, tx, ss, []any{batch}, func(n int) string {
		return `UPDATE event_groups SET events = v.column2, sent = v.column3, first = v.column4, last = v.column5, times = v.column6, batch = ?
		FROM (VALUES ` + row + strings.Repeat(","+row, n-1) + `) AS v WHERE event_groups.id = v.column1`
	}, func(args []any, s *storedGroup) []any {
		g := s.g
		return append(args, s.id, g.Events, g.Sent, g.First, g.Last, egress.EncodeTimes(g.Times))
	})
}

// inParts runs the statement stmt(n) over ss, groupRows rows at a time
// (one prepared statement for the full parts), each with the arguments
// prefix before the rows'.
func inParts(ctx context.Context, tx *sql.Tx, ss []*storedGroup, prefix []any, stmt func(n int) string, bind func([]any, *storedGroup) []any) error {
	var many *sql.Stmt
	if len(ss) >= groupRows {
		var err error
		if many, err = tx.PrepareContext(ctx, stmt(groupRows)); err != nil {
			return err
		}
		defer many.Close()
	}
	var args []any
	for len(ss) > 0 {
		part := ss[:min(groupRows, len(ss))]
		ss = ss[len(part):]
		args = append(args[:0], prefix...)
		for _, s := range part {
			args = bind(args, s)
		}
		var err error
		if len(part) == groupRows {
			_, err = many.ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, stmt(len(part)), args...)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
