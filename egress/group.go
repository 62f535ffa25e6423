package egress

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"
)

// The fleet analysis works on aggregates, not on events: a Group is every
// event of one device to one remote end in one hour. Its key is
// configuration-free (nothing in it depends on the inventory's classes,
// the detection configuration or the installations), so the store keeps
// the groups up to date as batches are ingested, in the batch's own
// transaction, and an analysis reads only the groups a batch changed.
// The detections judge a group as a whole, as of its first connection:
// whether it falls in the baseline window, which release the device ran
// then (the manifest it is checked against). The whole-history analysis
// (AnalyzeStore) groups the stored events the same way, so both give the
// same findings (docs/egress.md, "Incremental analysis").

// GroupKey identifies a Group.
type GroupKey struct {
	// Device is the inventory name of the device (as stored).
	Device string
	// Hour is the start of the hour, Unix seconds.
	Hour int64
	// Success: the events are successful connections. The other events
	// (failed connections, attempts) of a device-hour make one group with
	// no remote end: they only say the device was observed.
	Success      bool
	RemoteURL    string
	RemoteIP     netip.Addr
	RemoteIPType string
}

// MaxGroupTimes is how many connection times a group keeps (the
// earliest), as the beaconing detection keeps per device and destination.
const MaxGroupTimes = maxBeaconTimes

// Group is the aggregate of a GroupKey's events.
type Group struct {
	GroupKey
	// Events counts them; Sent sums their SentBytes.
	Events int64
	Sent   int64
	// First and Last are the earliest and latest event times, Unix
	// nanoseconds.
	First, Last int64
	// Times are the earliest MaxGroupTimes connection times, Unix seconds,
	// ascending (successful connections only).
	Times []int64
}

// GroupKeyOf is the key of the group ev belongs to; device is the
// inventory name of its device.
func GroupKeyOf(device string, ev *Event) GroupKey {
	k := GroupKey{Device: device, Hour: hourBin(ev.Time.Unix())}
	if ev.ActionType == ActionConnectionSuccess {
		k.Success, k.RemoteURL, k.RemoteIP, k.RemoteIPType = true, ev.RemoteURL, ev.RemoteIP, ev.RemoteIPType
	}
	return k
}

// add counts one event of the group.
func (g *Group) add(ev *Event) {
	t := ev.Time.UnixNano()
	if g.Events == 0 {
		g.First, g.Last = t, t
	}
	g.Events++
	g.Sent += ev.SentBytes
	g.First, g.Last = min(g.First, t), max(g.Last, t)
	if g.Success {
		g.Times = insertTime(g.Times, ev.Time.Unix(), MaxGroupTimes)
	}
}

// Merge adds the events of o (same key) to g.
func (g *Group) Merge(o *Group) {
	if o.Events == 0 {
		return
	}
	if g.Events == 0 {
		g.First, g.Last = o.First, o.Last
	}
	g.Events += o.Events
	g.Sent += o.Sent
	g.First, g.Last = min(g.First, o.First), max(g.Last, o.Last)
	g.Times = mergeTimes(g.Times, o.Times, MaxGroupTimes)
}

// Clone returns a deep copy.
func (g *Group) Clone() *Group {
	c := *g
	c.Times = slices.Clone(g.Times)
	return &c
}

// insertTime inserts t in the ascending list, keeping the smallest max.
func insertTime(l []int64, t int64, limit int) []int64 {
	n := len(l)
	if n > 0 && t >= l[n-1] {
		if n < limit {
			return append(l, t)
		}
		return l
	}
	i, _ := slices.BinarySearch(l, t)
	if n < limit {
		return slices.Insert(l, i, t)
	}
	copy(l[i+1:], l[i:n-1])
	l[i] = t
	return l
}

// mergeTimes merges two ascending lists, keeping the smallest limit.
func mergeTimes(a, b []int64, limit int) []int64 {
	if len(b) == 0 {
		return a
	}
	out := make([]int64, 0, min(limit, len(a)+len(b)))
	i, j := 0, 0
	for len(out) < limit && (i < len(a) || j < len(b)) {
		if j >= len(b) || (i < len(a) && a[i] <= b[j]) {
			out = append(out, a[i])
			i++
		} else {
			out = append(out, b[j])
			j++
		}
	}
	return out
}

// CompareGroupKeys orders keys by device, hour, then the remote end.
func CompareGroupKeys(x, y GroupKey) int {
	return cmp.Or(cmp.Compare(x.Device, y.Device), cmp.Compare(x.Hour, y.Hour), compareBool(x.Success, y.Success),
		cmp.Compare(x.RemoteURL, y.RemoteURL), x.RemoteIP.Compare(y.RemoteIP), cmp.Compare(x.RemoteIPType, y.RemoteIPType))
}

func compareBool(x, y bool) int {
	switch {
	case x == y:
		return 0
	case !x:
		return -1
	}
	return 1
}

// Grouper groups events, e.g. one batch before the store merges it.
type Grouper struct {
	m map[GroupKey]*Group
}

// NewGrouper returns an empty Grouper.
func NewGrouper() *Grouper { return &Grouper{m: map[GroupKey]*Group{}} }

// Add counts ev in its group; device is its inventory name.
func (gr *Grouper) Add(device string, ev *Event) {
	k := GroupKeyOf(device, ev)
	g := gr.m[k]
	if g == nil {
		g = &Group{GroupKey: k}
		gr.m[k] = g
	}
	g.add(ev)
}

// GroupColumns are the stored event columns AddRow scans, in its order:
// a store's backfill selects them (with its table's names) to group the
// events it held before it had groups.
const GroupColumns = "ts, device, action, remote_ip, remote_url, remote_ip_type, sent"

// AddRow scans one stored event's GroupColumns with scan (a database
// row's Scan: ts as Unix nanoseconds, remote_ip as text) and counts it.
func (gr *Grouper) AddRow(scan func(dest ...any) error) error {
	var ev Event
	var ts int64
	var rip string
	if err := scan(&ts, &ev.DeviceName, &ev.ActionType, &rip, &ev.RemoteURL, &ev.RemoteIPType, &ev.SentBytes); err != nil {
		return err
	}
	ev.Time = time.Unix(0, ts).UTC()
	ev.RemoteIP, _ = netip.ParseAddr(rip)
	gr.Add(ev.DeviceName, &ev)
	return nil
}

// Len is the number of groups.
func (gr *Grouper) Len() int { return len(gr.m) }

// Groups returns the groups ordered by key.
func (gr *Grouper) Groups() []*Group {
	out := make([]*Group, 0, len(gr.m))
	for _, g := range gr.m {
		out = append(out, g)
	}
	slices.SortFunc(out, func(x, y *Group) int { return CompareGroupKeys(x.GroupKey, y.GroupKey) })
	return out
}

// EncodeTimes encodes ascending times as varint deltas (a store column).
func EncodeTimes(ts []int64) []byte {
	b := make([]byte, 0, len(ts)*2+binary.MaxVarintLen64)
	prev := int64(0)
	for _, t := range ts {
		b = binary.AppendVarint(b, t-prev)
		prev = t
	}
	return b
}

// ErrBadGroup: a stored group's columns do not decode.
var ErrBadGroup = errors.New("egress: corrupt stored group")

// DecodeTimes decodes EncodeTimes' output: ascending, at most
// MaxGroupTimes.
func DecodeTimes(b []byte) ([]int64, error) {
	var out []int64
	prev := int64(0)
	for len(b) > 0 {
		d, n := binary.Varint(b)
		if n <= 0 || (len(out) > 0 && d < 0) || len(out) == MaxGroupTimes {
			return nil, fmt.Errorf("%w: connection times", ErrBadGroup)
		}
		prev += d
		out = append(out, prev)
		b = b[n:]
	}
	return out, nil
}

// ParseGroupAddr reads a stored remote address ("" for none).
func ParseGroupAddr(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return a, fmt.Errorf("%w: remote address %q", ErrBadGroup, s)
	}
	return a, nil
}

// GroupStore keeps the groups of the ingested events, merged as each
// batch is ingested in the batch's transaction.
type GroupStore interface {
	// Groups calls fn with every group changed by a batch committed after
	// the one numbered after (0: every group), whole (merged with what
	// earlier batches added), and returns the number of the last batch it
	// covers: the next call passes it as after. The *Group is reused.
	Groups(ctx context.Context, after int64, fn func(*Group) error) (last int64, err error)
}

// Live keeps a fleet's groups in memory and brings them up to date from a
// GroupStore: each analysis reads only the groups batches changed since
// the previous one and applies what changed to the aggregates the
// detections read (contacts, hourly volumes, ...), then runs the
// detections over the aggregates: its cost grows with the groups a batch
// changed and with the aggregates, not with the events. Aggregates are
// rebuilt from the groups held (not from the store) when a change cannot
// be applied as a difference: another inventory or detection
// configuration, an installation that changes which release a device ran
// at a group already held or where the baseline ends, a group whose first
// connection moved to where it is judged differently, or one whose kept
// connection times lost some (over MaxGroupTimes in its hour). One Live
// per store; safe for concurrent use (analyses run one at a time).
type Live struct {
	mu       sync.Mutex
	groups   map[GroupKey]*Group
	last     int64
	read     int64 // groups read from the store, in all
	rebuilds int64
	// The aggregates and what they were built with.
	a        *Analyzer
	inv      *Inventory
	cfg      Config
	ins      []Installation
	devFirst map[string]int64 // device -> the latest first connection of its groups
	// The installations read, when the store is an InstallationLog: those
	// recorded up to insNext in insFrom, in Installations' order.
	insFrom LiveStore
	insHeld []Installation
	insNext int64
}

// NewLive returns a Live with no group read yet.
func NewLive() *Live { return &Live{groups: map[GroupKey]*Group{}, devFirst: map[string]int64{}} }

// LiveStats says how much a Live holds and has read.
type LiveStats struct {
	Groups   int   // groups held
	Read     int64 // groups read from the store so far
	Batch    int64 // the last batch covered
	Rebuilds int64 // analyses that rebuilt the aggregates from every group held
}

// Stats returns the counters.
func (l *Live) Stats() LiveStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return LiveStats{Groups: len(l.groups), Read: l.read, Batch: l.last, Rebuilds: l.rebuilds}
}

// LiveStore is what Live.Analyze reads.
type LiveStore interface {
	GroupStore
	InstallationStore
}

// Analyze reads the groups changed since the last call and the
// installations, brings the aggregates up to date and runs the
// detections: the same report as AnalyzeStore over the same store (the
// whole-history check).
func (l *Live) Analyze(ctx context.Context, s LiveStore, inv *Inventory, cfg Config) (Report, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	type change struct{ old, cur *Group }
	var changes []change
	last, err := s.Groups(ctx, l.last, func(g *Group) error {
		l.read++
		cur := g.Clone()
		changes = append(changes, change{l.groups[g.GroupKey], cur})
		l.groups[g.GroupKey] = cur
		return nil
	})
	if err != nil {
		l.a = nil // the groups held may be half updated: rebuild next time
		return Report{}, err
	}
	l.last = max(l.last, last)
	ins, err := l.installations(ctx, s)
	if err != nil {
		l.a = nil
		return Report{}, err
	}
	var a *Analyzer
	same := l.a != nil && inv == l.inv && reflect.DeepEqual(cfg, l.cfg) // what the aggregates were built with
	if same && sameSlice(ins, l.ins) {
		// Nothing the indexes are built from changed: share them.
		if a, err = newAnalyzer(inv, cfg); err == nil {
			a.shareIndex(l.a)
		}
	} else {
		a, err = NewAnalyzer(inv, ins, cfg)
	}
	if err != nil {
		l.a = nil
		return Report{}, err
	}
	rebuild := !same || !l.sameJudgement(a, ins)
	if !rebuild {
		a.adopt(l.a)
		for _, c := range changes {
			d, ok := a.difference(c.old, c.cur)
			if !ok {
				rebuild = true
				break
			}
			a.apply(d)
		}
	}
	for _, c := range changes {
		l.devFirst[c.cur.Device] = max(l.devFirst[c.cur.Device], c.cur.First)
	}
	if rebuild {
		l.rebuilds++
		fresh, err := newAnalyzer(inv, cfg)
		if err != nil {
			l.a = nil
			return Report{}, err
		}
		fresh.shareIndex(a) // built from ins, inv and cfg above
		a = fresh
		for _, g := range l.groups {
			a.apply(g)
		}
	}
	l.a, l.inv, l.cfg, l.ins = a, inv, cfg, ins
	return a.report(), nil
}

// sameJudgement reports whether the installations ins (analyzer a) judge
// every group held as the previous ones did: the baseline ends at the
// same time and each device's installations are the previous ones plus
// ones after its every group's first connection.
func (l *Live) sameJudgement(a *Analyzer, ins []Installation) bool {
	if !a.baseEnd.Equal(l.a.baseEnd) {
		return false
	}
	if sameSlice(ins, l.ins) || slices.EqualFunc(ins, l.ins, sameInstallation) {
		return true
	}
	for dev, now := range a.installs {
		before := l.a.installs[dev]
		if len(now) < len(before) || !slices.EqualFunc(now[:len(before)], before, sameInstallation) {
			return false
		}
		for _, in := range now[len(before):] {
			if first, ok := l.devFirst[in.Device]; ok && in.Time.UnixNano() <= first {
				return false
			}
		}
	}
	for dev := range l.a.installs {
		if _, ok := a.installs[dev]; !ok {
			return false
		}
	}
	return true
}

// installations returns every installation in Installations' order (time,
// device, digest). From an InstallationLog it reads only those recorded
// since the last call and merges them into the ones held: the same slice
// as before when none are new.
func (l *Live) installations(ctx context.Context, s LiveStore) ([]Installation, error) {
	lg, ok := s.(InstallationLog)
	if !ok {
		return s.Installations(ctx)
	}
	if l.insFrom != s {
		l.insFrom, l.insHeld, l.insNext = nil, nil, 0
	}
	got, next, err := lg.InstallationsSince(ctx, l.insNext)
	if err != nil {
		return nil, err
	}
	if len(got) == 0 && l.insFrom != nil {
		return l.insHeld, nil
	}
	slices.SortFunc(got, CompareInstallations)
	merged := make([]Installation, 0, len(l.insHeld)+len(got))
	i, j := 0, 0
	for i < len(l.insHeld) && j < len(got) {
		if CompareInstallations(got[j], l.insHeld[i]) < 0 {
			merged = append(merged, got[j])
			j++
		} else {
			merged = append(merged, l.insHeld[i])
			i++
		}
	}
	merged = append(append(merged, l.insHeld[i:]...), got[j:]...)
	l.insFrom, l.insHeld, l.insNext = s, merged, next
	return merged, nil
}

// CompareInstallations is Installations' order: time, device, digest (a
// store's ORDER BY ts, device, digest in bytewise collation).
func CompareInstallations(x, y Installation) int {
	return cmp.Or(x.Time.Compare(y.Time), strings.Compare(x.Device, y.Device), strings.Compare(x.Digest, y.Digest))
}

// sameSlice reports whether x and y are the same slice (one read of the
// installations, held).
func sameSlice(x, y []Installation) bool {
	return len(x) == len(y) && (len(x) == 0 || &x[0] == &y[0])
}

func sameInstallation(x, y Installation) bool {
	return x.Device == y.Device && x.Digest == y.Digest && x.Time.Equal(y.Time) && x.Product == y.Product && x.Version == y.Version
}

// adopt takes the aggregates of old, built with the same inventory,
// configuration and judgement of every group (Live.sameJudgement).
func (a *Analyzer) adopt(old *Analyzer) {
	a.baseline, a.baseVol, a.contacts, a.exfil, a.exfilDst = old.baseline, old.baseVol, old.contacts, old.exfil, old.exfilDst
	a.segv, a.outside, a.hours, a.lastSeen, a.events, a.unres = old.segv, old.outside, old.hours, old.lastSeen, old.events, old.unres
	a.vol, a.dests = old.vol, old.dests
}

// judgement is how apply judges a group, as of its first connection.
type judgement struct {
	baseline, learned bool
	release           string
}

func (a *Analyzer) judge(g *Group) judgement {
	first := time.Unix(0, g.First).UTC()
	j := judgement{baseline: a.baseEnd.IsZero() || first.Before(a.baseEnd)}
	j.learned = j.baseline && a.cfg.Baseline.Contains(first)
	if in, ok := a.installed(g.Device, first); ok {
		j.release = in.Digest
	}
	return j
}

// difference is what cur (the group old grew into) adds to old, as a
// group apply can add to the aggregates: false when the aggregates must
// be rebuilt instead (cur is judged differently from old, or kept fewer
// of old's connection times).
func (a *Analyzer) difference(old, cur *Group) (*Group, bool) {
	if old == nil {
		return cur, true
	}
	if cur.Events < old.Events || cur.First > old.First || cur.Last < old.Last || (cur.First != old.First && a.judge(cur) != a.judge(old)) {
		return nil, false
	}
	d := &Group{GroupKey: cur.GroupKey, Events: cur.Events - old.Events, Sent: cur.Sent - old.Sent, First: cur.First, Last: cur.Last}
	// cur.Times minus old.Times (both ascending); every one of old's must
	// still be there.
	j := 0
	for _, t := range cur.Times {
		if j < len(old.Times) && old.Times[j] == t {
			j++
			continue
		}
		d.Times = append(d.Times, t)
	}
	if j < len(old.Times) {
		return nil, false
	}
	return d, true
}

// groupTarget is what a group connected to, for messages: its URL, else
// its IP.
func groupTarget(k *GroupKey) string {
	if k.RemoteURL != "" {
		return k.RemoteURL
	}
	return k.RemoteIP.String()
}

// keepTarget adds target to a contact's targets, keeping the 16 smallest
// (whatever order groups come in).
func keepTarget(m map[string]bool, target string) {
	if m[target] {
		return
	}
	if len(m) < 16 {
		m[target] = true
		return
	}
	largest := ""
	for t := range m {
		if strings.Compare(t, largest) > 0 {
			largest = t
		}
	}
	if target < largest {
		delete(m, largest)
		m[target] = true
	}
}
