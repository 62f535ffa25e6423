package adapter

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wardgate/wardgate/console"
	"github.com/wardgate/wardgate/egress"
)

// The update page's plots (each installer's hourly traffic to the
// update's findings' destinations, and the device class's hourly
// baseline) are computed from the egress store's groups (egress.Group:
// one device's events to one remote end in one hour), not from the
// events. The adapter keeps the groups of public successful connections
// in memory, per device and in hour order, and brings them up to date
// from the store as the fleet analysis does (egress.GroupStore: only the
// groups changed by the batches stored since the last read). A plot then
// reads only its installers' groups (an update page) or its class's
// devices' groups (a baseline, kept until a group in its window changes).

// groupIndex holds the groups the plots read.
type groupIndex struct {
	// mu is held for writing through a read from the store (sync): one
	// at a time, and no plot reads a device's groups half applied.
	mu      sync.RWMutex
	last    int64 // the last batch read
	read    int64 // groups read from the store, in all
	byName  map[string]*devGroups
	byLow   map[string]*devGroups // lower-case device name
	rid     map[remoteKey]uint32
	dests   []string // remote id -> egress.Destination
	base    map[baseKey]console.Baseline
	baseInv *egress.Inventory
}

type remoteKey struct {
	url, ipType string
	ip          netip.Addr
}

// cgroup is one group, as the plots need it.
type cgroup struct {
	hour         int64 // Unix seconds
	remote       uint32
	events, sent int64
	first, last  int64 // Unix nanoseconds
}

// devGroups are one device's groups ordered by hour.
type devGroups struct {
	g []cgroup
}

func newGroupIndex() *groupIndex {
	return &groupIndex{byName: map[string]*devGroups{}, byLow: map[string]*devGroups{}, rid: map[remoteKey]uint32{}, base: map[baseKey]console.Baseline{}}
}

// isPublic is the egress analysis's rule for a public destination: the
// sensor's RemoteIPType when it gives one, else the address.
func isPublic(ipType string, ip netip.Addr) bool {
	if ipType != "" {
		return ipType == "Public"
	}
	return egress.IsPublicIP(ip)
}

// sync reads the groups the batches stored since the last read changed.
// A failed read leaves the groups applied so far (each is whole) and
// starts from the same batch next time.
func (gi *groupIndex) sync(ctx context.Context, st egress.GroupStore) error {
	gi.mu.Lock()
	defer gi.mu.Unlock()
	minFirst, maxFirst := int64(0), int64(0)
	n := 0
	last, err := st.Groups(ctx, gi.last, func(g *egress.Group) error {
		gi.read++
		if !g.Success || !isPublic(g.RemoteIPType, g.RemoteIP) {
			return nil
		}
		if n == 0 || g.First < minFirst {
			minFirst = g.First
		}
		maxFirst = max(maxFirst, g.First)
		n++
		gi.apply(g)
		return nil
	})
	if n > 0 {
		// A baseline whose window holds a changed group is computed again.
		for k := range gi.base {
			if (k.start == 0 || maxFirst >= k.start) && minFirst < k.end {
				delete(gi.base, k)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("groups for the plots: %w", err)
	}
	gi.last = max(gi.last, last)
	return nil
}

// apply puts g (whole: it replaces what was held of it) in its device's
// list.
func (gi *groupIndex) apply(g *egress.Group) {
	dg := gi.byName[g.Device]
	if dg == nil {
		low := strings.ToLower(g.Device)
		if dg = gi.byLow[low]; dg == nil {
			dg = &devGroups{}
			gi.byLow[low] = dg
		}
		gi.byName[strings.Clone(g.Device)] = dg
	}
	rk := remoteKey{url: g.RemoteURL, ipType: g.RemoteIPType, ip: g.RemoteIP}
	id, ok := gi.rid[rk]
	if !ok {
		id = uint32(len(gi.dests))
		rk.url, rk.ipType = strings.Clone(rk.url), strings.Clone(rk.ipType)
		gi.rid[rk] = id
		gi.dests = append(gi.dests, egress.Destination(g.RemoteURL, g.RemoteIP))
	}
	c := cgroup{hour: g.Hour, remote: id, events: g.Events, sent: g.Sent, first: g.First, last: g.Last}
	l := dg.g
	if n := len(l); n == 0 || l[n-1].hour < c.hour {
		dg.g = append(l, c)
		return
	}
	i, _ := slices.BinarySearchFunc(l, c.hour, func(x cgroup, h int64) int { return cmp.Compare(x.hour, h) })
	for ; i < len(l) && l[i].hour == c.hour; i++ {
		if l[i].remote == c.remote {
			l[i] = c
			return
		}
	}
	dg.g = slices.Insert(l, i, c)
}

// groups returns a device's groups (any spelling of its name); the caller
// holds mu for reading.
func (gi *groupIndex) groups(device string) []cgroup {
	if dg := gi.byLow[strings.ToLower(device)]; dg != nil {
		return dg.g
	}
	return nil
}

// maxContactHours bounds the hourly bins kept per contact (120 days).
const maxContactHours = 120 * 24

// contacts is each installer's traffic to dests: the groups of the
// devices that installed the update (installed: device -> first
// installation), whatever the time.
func (gi *groupIndex) contacts(inv *egress.Inventory, installed map[string]time.Time, dests map[string]bool) []console.Contact {
	gi.mu.RLock()
	defer gi.mu.RUnlock()
	var out []console.Contact
	for name, at := range installed {
		dev, ok := inv.Device(name)
		if !ok {
			continue
		}
		byDest := map[uint32]int{} // remote -> index in out
		start := len(out)
		for _, g := range gi.groups(name) {
			dest := gi.dests[g.remote]
			if !dests[dest] {
				continue
			}
			i, ok := byDest[g.remote]
			if !ok {
				// Remote ends with the same destination share a contact.
				i = slices.IndexFunc(out[start:], func(c console.Contact) bool { return c.Destination == dest })
				if i < 0 {
					out = append(out, console.Contact{Device: dev.Name, Destination: dest, Installed: at, First: time.Unix(0, g.first).UTC(), Last: time.Unix(0, g.last).UTC()})
					i = len(out) - 1
				} else {
					i += start
				}
				byDest[g.remote] = i
			}
			c := &out[i]
			if f := time.Unix(0, g.first).UTC(); f.Before(c.First) {
				c.First = f
			}
			if l := time.Unix(0, g.last).UTC(); l.After(c.Last) {
				c.Last = l
			}
			c.Connections += g.events
			c.Bytes += g.sent
			h := time.Unix(g.hour, 0).UTC()
			if n := len(c.Hours); n > 0 && c.Hours[n-1].Start.Equal(h) {
				c.Hours[n-1].Connections += g.events
				c.Hours[n-1].Bytes += g.sent
			} else if n < maxContactHours {
				c.Hours = append(c.Hours, console.Hour{Start: h, Connections: g.events, Bytes: g.sent})
			}
		}
	}
	slices.SortFunc(out, func(x, y console.Contact) int {
		return cmp.Or(x.Installed.Compare(y.Installed), strings.Compare(x.Device, y.Device), strings.Compare(x.Destination, y.Destination))
	})
	return out
}

type baseKey struct {
	inv        *egress.Inventory
	class      string
	start, end int64 // Unix nanoseconds; start 0: none
}

// baseline is a class's hourly traffic in the window [start, end): the
// 95th percentile (nearest rank) of the bytes one device sent in an hour
// to public destinations, over the device-hours with any. A group counts
// when its first connection is in the window, as the analysis judges a
// group. devices are the class's devices (lower-case names).
func (gi *groupIndex) baseline(inv *egress.Inventory, class string, devices []string, start, end time.Time) console.Baseline {
	out := console.Baseline{Class: class, Start: start, End: end, ClassDevices: len(devices)}
	if end.IsZero() {
		return out
	}
	k := baseKey{inv: inv, class: class, end: end.UnixNano()}
	if !start.IsZero() {
		k.start = start.UnixNano()
	}
	gi.mu.RLock()
	b, ok := gi.base[k]
	gi.mu.RUnlock()
	if ok {
		return b
	}
	// Computed under the write lock: a sync meanwhile would leave a stale
	// baseline in the cache.
	gi.mu.Lock()
	defer gi.mu.Unlock()
	if b, ok := gi.base[k]; ok {
		return b
	}
	if gi.baseInv != inv {
		clear(gi.base) // another inventory: other classes
		gi.baseInv = inv
	}
	var v []int64
	fromHour := int64(0)
	if k.start != 0 {
		fromHour = start.Unix() / 3600 * 3600 // no group of an earlier hour starts in the window
	}
	endHour := (k.end - 1) / 1e9 // no group of a later hour starts in the window
	for _, d := range devices {
		dg := gi.byLow[d]
		if dg == nil {
			continue
		}
		l := dg.g
		i, _ := slices.BinarySearchFunc(l, fromHour, func(x cgroup, h int64) int { return cmp.Compare(x.hour, h) })
		hour, sum, any := int64(0), int64(0), false
		for ; i < len(l) && l[i].hour <= endHour; i++ {
			g := &l[i]
			if g.first < k.start || g.first >= k.end {
				continue
			}
			if any && g.hour != hour {
				v = append(v, sum)
				sum = 0
			}
			hour, any = g.hour, true
			sum += g.sent
		}
		if any {
			v = append(v, sum)
		}
	}
	if len(v) > 0 {
		slices.Sort(v)
		rank := (95*len(v) + 99) / 100 // nearest rank
		out.DeviceHourP95, out.DeviceHours, out.HasObservation = v[max(0, rank-1)], int64(len(v)), true
	}
	gi.base[k] = out
	return out
}
