package egress

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/wardgate/wardgate/evidence"
)

// Finding severities. Suspicious and quarantined are the risk states a
// finding attributed to an update raises it to; a notice (fleet-change)
// is about a device class and raises nothing.
const (
	SeveritySuspicious  = evidence.RiskSuspicious
	SeverityQuarantined = evidence.RiskQuarantined
	SeverityNotice      = "notice"
)

// Finding is one detection, with its evidence and an explanation for an
// analyst.
type Finding struct {
	Code     Code   `json:"code"`
	Severity string `json:"severity"`
	// Update is the digest of the update the finding is attributed to: the
	// devices showed the behaviour while running it and comparable devices
	// of the class without it did not (Contrasts). Empty when the
	// behaviour is not attributed to any update.
	Update  string `json:"update,omitempty"`
	Product string `json:"product,omitempty"`
	Version string `json:"version,omitempty"`
	Class   string `json:"class"`
	// Devices showed the behaviour; Destinations are where it went.
	Devices      []string  `json:"devices"`
	Destinations []string  `json:"destinations"`
	FirstSeen    time.Time `json:"firstSeen"`
	LastSeen     time.Time `json:"lastSeen"`
	Bytes        int64     `json:"bytes"`
	Connections  int64     `json:"connections"`
	// Contrasts are the comparisons behind the attribution: for a finding
	// attributed to an update, that update's; for a fleet-change notice,
	// every update the behaviour was compared with.
	Contrasts []Contrast `json:"contrasts,omitempty"`
	// Explanation says what was seen, from which devices, since when,
	// compared with what.
	Explanation string `json:"explanation"`
}

// UpdateRisk is an update's fleet risk state and blast radius.
type UpdateRisk struct {
	Digest  string `json:"digest"`
	Product string `json:"product"`
	Version string `json:"version"`
	// State is clean, suspicious or quarantined.
	State string `json:"state"`
	// Installed are the devices that installed the update; Affected those
	// of them that appear in a finding attributed to it.
	Installed []string `json:"installed"`
	Affected  []string `json:"affected"`
	// Codes are the codes of its findings, sorted.
	Codes []Code `json:"codes"`
}

// Report is the outcome of Analyze.
type Report struct {
	Findings []Finding    `json:"findings"`
	Updates  []UpdateRisk `json:"updates"`
	// Events is the number of events analysed; Unresolved those whose
	// device is not in the inventory (ignored).
	Events     int64 `json:"events"`
	Unresolved int64 `json:"unresolved"`
	// LastSeen maps each inventory device name with telemetry to the time
	// of its latest event (the rollout rings' evidence that a device ran
	// an update for its soak time; not part of the JSON report).
	LastSeen map[string]time.Time `json:"-"`
}

// Risk returns the risk of the update with digest, and false when no
// device is recorded as having installed it (no telemetry).
func (r *Report) Risk(digest string) (UpdateRisk, bool) {
	for _, u := range r.Updates {
		if u.Digest == digest {
			return u, true
		}
	}
	return UpdateRisk{}, false
}

// Fleet converts the report's view of an update into the evidence
// document's fleet section. An update no device installed yields an empty
// section ("no telemetry").
func (r *Report) Fleet(digest string) evidence.Fleet {
	u, ok := r.Risk(digest)
	if !ok {
		return evidence.Fleet{}
	}
	f := evidence.Fleet{RiskState: u.State}
	for _, x := range r.Findings {
		if x.Update == digest {
			f.Findings = append(f.Findings, evidence.Finding{Code: string(x.Code), Message: x.Explanation, ObservedAt: x.FirstSeen,
				Devices: x.Devices, Destinations: x.Destinations, FirstSeen: x.FirstSeen, LastSeen: x.LastSeen, Bytes: x.Bytes, Connections: x.Connections})
		}
	}
	return f
}

// Analyzer runs the detections over a stream of events. Feed it with Add
// (in any order) and call Report once. Memory grows with the groups
// (device, remote end, hour; see Group), plus the connection times to
// destinations reached after the baseline (capped per pair).
type Analyzer struct {
	inv          *Inventory
	cfg          Config
	installs     map[string][]Installation // device (lower case) -> by time
	byDigest     map[string][]Installation
	classDevices map[string][]string // class -> device names, sorted
	classUpdates map[string][]string // class -> digests its devices installed, sorted
	baseEnd      time.Time
	allowed      map[string]Matcher // class -> allowed destinations
	manif        map[string]Matcher // digest -> manifest
	segs         []segPrefix

	baseline map[string]map[string]bool // class -> destination
	baseVol  map[volKey]int64           // baseline bytes per (device, destination, hour)
	contacts map[contactKey]*contact    // after the baseline, public, not allowed
	exfil    map[exfilKey]*agg          // after the baseline, outside the manifest
	exfilDst map[exfilKey]string
	vol      *volState         // derived from baseVol and exfil; nil: to build
	dests    map[string]string // URL -> Destination (a cache)
	segv     map[segKey]*contact
	outside  map[outsideKey]*contact // outside the manifest of the update run
	hours    map[string][]int64      // device -> hours with telemetry, sorted
	// classTabs: each class's devices with their installations and hours,
	// built once per report for the contrasts (classTable).
	classTabs map[string]*classTable
	lastSeen  map[string]time.Time
	events    int64
	unres     int64
	// pending are the groups of the events added, applied by Report;
	// addedUnres the events added whose device is not in the inventory.
	pending    *Grouper
	addedUnres int64
}

type segPrefix struct {
	name string
	p    netip.Prefix
}

type contactKey struct{ device, dest string }

type contact struct {
	class       string
	first, last time.Time
	bytes, n    int64
	// undeclared counts the connections outside the egress manifest of
	// the update the device ran then.
	undeclared int64
	times      []int64 // unix seconds, for beaconing (capped)
	targets    map[string]bool
	// The beaconing test over times, valid until they change.
	beaconValid   bool
	beaconRegular bool
	beaconPeriod  float64
}

type exfilKey struct {
	device, url string
	hour        int64
}

type volKey struct {
	device, dest string
	hour         int64
}

type segKey struct{ device, segment string }

type outsideKey struct{ digest, device, dest string }

const maxBeaconTimes = 4096

// NewAnalyzer prepares the detections for a fleet.
func NewAnalyzer(inv *Inventory, installs []Installation, cfg Config) (*Analyzer, error) {
	a, err := newAnalyzer(inv, cfg)
	if err != nil {
		return nil, err
	}
	if err := a.index(installs); err != nil {
		return nil, err
	}
	return a, nil
}

// newAnalyzer is NewAnalyzer without the indexes of the inventory and the
// installations (index, shareIndex).
func newAnalyzer(inv *Inventory, cfg Config) (*Analyzer, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Analyzer{inv: inv, cfg: cfg, installs: map[string][]Installation{}, byDigest: map[string][]Installation{},
		classDevices: map[string][]string{}, classUpdates: map[string][]string{},
		allowed: map[string]Matcher{}, manif: map[string]Matcher{}, baseline: map[string]map[string]bool{}, baseVol: map[volKey]int64{},
		contacts: map[contactKey]*contact{}, exfil: map[exfilKey]*agg{}, exfilDst: map[exfilKey]string{},
		segv: map[segKey]*contact{}, outside: map[outsideKey]*contact{}, hours: map[string][]int64{},
		lastSeen: map[string]time.Time{}, pending: NewGrouper(), dests: map[string]string{}}
	for name, p := range cfg.Classes {
		a.allowed[name], _ = NewMatcher(p.AllowedDestinations)
	}
	for _, m := range cfg.Manifests {
		a.manif[m.Digest], _ = NewMatcher(m.Destinations)
	}
	for name, ps := range cfg.Segments {
		for _, p := range ps {
			a.segs = append(a.segs, segPrefix{name, p.Masked()})
		}
	}
	slices.SortFunc(a.segs, func(x, y segPrefix) int { return cmp.Compare(y.p.Bits(), x.p.Bits()) }) // longest first
	return a, nil
}

// index builds the indexes of the inventory and the installations. They
// are never changed afterwards: an analyzer of the same inventory,
// installations and configuration may share them (Live).
func (a *Analyzer) index(installs []Installation) error {
	inv := a.inv
	for _, d := range inv.Devices {
		a.classDevices[d.Class] = append(a.classDevices[d.Class], d.Name)
	}
	for _, l := range a.classDevices {
		slices.Sort(l)
	}
	for _, in := range installs {
		if err := in.Validate(); err != nil {
			return fmt.Errorf("installation of %s: %w", in.Digest, err)
		}
		k := lower(in.Device)
		a.installs[k] = append(a.installs[k], in)
		a.byDigest[in.Digest] = append(a.byDigest[in.Digest], in)
		if a.baseEnd.IsZero() || in.Time.Before(a.baseEnd) {
			a.baseEnd = in.Time
		}
		if d, ok := inv.Device(in.Device); ok && !slices.Contains(a.classUpdates[d.Class], in.Digest) {
			a.classUpdates[d.Class] = append(a.classUpdates[d.Class], in.Digest)
		}
	}
	for _, l := range a.installs {
		slices.SortStableFunc(l, func(x, y Installation) int { return x.Time.Compare(y.Time) })
	}
	for _, l := range a.classUpdates {
		slices.Sort(l)
	}
	if !a.cfg.Baseline.End.IsZero() {
		a.baseEnd = a.cfg.Baseline.End
	}
	return nil
}

// shareIndex makes a use old's indexes of the inventory and the
// installations, built from the same ones with the same configuration.
func (a *Analyzer) shareIndex(old *Analyzer) {
	a.classDevices, a.installs, a.byDigest, a.classUpdates, a.baseEnd = old.classDevices, old.installs, old.byDigest, old.classUpdates, old.baseEnd
}

func lower(s string) string { return strings.ToLower(s) }

// installed returns the last installation on device at or before t.
func (a *Analyzer) installed(device string, t time.Time) (Installation, bool) {
	l := a.installs[lower(device)]
	i := sort.Search(len(l), func(i int) bool { return l[i].Time.After(t) })
	if i == 0 {
		return Installation{}, false
	}
	return l[i-1], true
}

func (a *Analyzer) segmentOf(ip netip.Addr) string {
	ip = ip.Unmap()
	for _, s := range a.segs {
		if s.p.Contains(ip) {
			return s.name
		}
	}
	return ""
}

func touch[K comparable](m map[K]*contact, k K, class string, g *Group, keepTimes bool, target string) *contact {
	c := m[k]
	if c == nil {
		c = &contact{class: class, first: time.Unix(0, g.First).UTC(), last: time.Unix(0, g.Last).UTC(), targets: map[string]bool{}}
		m[k] = c
	}
	c.add(g, keepTimes, target)
	return c
}

// add counts a group's connections. The result does not depend on the
// order groups come in: times keeps the earliest, targets the smallest.
func (c *contact) add(g *Group, keepTimes bool, target string) {
	c.first, c.last = minTime(c.first, time.Unix(0, g.First).UTC()), maxTime(c.last, time.Unix(0, g.Last).UTC())
	c.bytes += g.Sent
	c.n += g.Events
	// Once full, the times keep the earliest: later ones change nothing
	// (nor the beaconing test over them).
	if n := len(c.times); keepTimes && len(g.Times) > 0 && (n < maxBeaconTimes || g.Times[0] < c.times[n-1]) {
		c.times = mergeInto(c.times, g.Times, maxBeaconTimes)
		c.beaconValid = false
	}
	keepTarget(c.targets, target)
}

// Add feeds one event: events of a device of the inventory are counted in
// their group (GroupKeyOf), which Report judges as a whole.
func (a *Analyzer) Add(ev *Event) {
	dev, ok := a.inv.Resolve(ev)
	if !ok {
		a.addedUnres++
		return
	}
	a.pending.Add(dev.Name, ev)
}

// apply judges one group. Every group of a known device marks it observed
// in its hour; only successful connections are judged, as of the group's
// first connection.
func (a *Analyzer) apply(g *Group) {
	a.events += g.Events
	dev, ok := a.inv.Device(g.Device)
	if !ok {
		a.unres += g.Events
		return
	}
	// The device's hours with telemetry, kept sorted: mostly a later one.
	hs := a.hours[dev.Name]
	if n := len(hs); n == 0 || g.Hour > hs[n-1] {
		a.hours[dev.Name] = append(hs, g.Hour)
	} else if i, found := slices.BinarySearch(hs, g.Hour); !found {
		a.hours[dev.Name] = slices.Insert(hs, i, g.Hour)
	}
	if last := time.Unix(0, g.Last).UTC(); last.After(a.lastSeen[dev.Name]) {
		a.lastSeen[dev.Name] = last
	}
	if !g.Success {
		return
	}
	first := time.Unix(0, g.First).UTC()
	public := isPublic(g.RemoteIPType, g.RemoteIP)
	target := groupTarget(&g.GroupKey)
	if !public {
		seg := a.segmentOf(g.RemoteIP)
		if seg != "" && seg != dev.Segment && !slices.Contains(a.cfg.Classes[dev.Class].AllowedSegments, seg) {
			touch(a.segv, segKey{dev.Name, seg}, dev.Class, g, false, target)
		}
		return
	}
	if m, ok := a.allowed[dev.Class]; ok && m.Match(g.RemoteURL, g.RemoteIP) {
		return // an allowed destination is never new, never exfiltration
	}
	dest := a.destination(g.RemoteURL, g.RemoteIP)
	if a.baseEnd.IsZero() || first.Before(a.baseEnd) {
		if a.cfg.Baseline.Contains(first) {
			if a.baseline[dev.Class] == nil {
				a.baseline[dev.Class] = map[string]bool{}
			}
			a.baseline[dev.Class][dest] = true
			a.baseVol[volKey{dev.Name, dest, g.Hour}] += g.Sent
			a.vol = nil // the learned volumes change
		}
		return // the baseline is learned, not judged
	}
	c := touch(a.contacts, contactKey{dev.Name, dest}, dev.Class, g, true, target)
	if in, ok := a.installed(dev.Name, first); ok {
		if m, ok := a.manif[in.Digest]; ok {
			if m.Match(g.RemoteURL, g.RemoteIP) {
				return // inside the vendor's manifest: never a finding
			}
			touch(a.outside, outsideKey{in.Digest, dev.Name, dest}, dev.Class, g, false, target)
		}
	}
	c.undeclared += g.Events
	k := exfilKey{dev.Name, g.RemoteURL, g.Hour}
	x := a.exfil[k]
	if x == nil {
		x = &agg{}
		a.exfil[k] = x
		a.exfilDst[k] = dest
	} else if dest < a.exfilDst[k] {
		a.exfilDst[k] = dest // whatever the order of the groups
		a.vol = nil          // the hour moves to another destination
	}
	x.sum += g.Sent
	x.count += g.Events
	if a.vol != nil {
		a.vol.add(a, k, dev, a.exfilDst[k], g.Sent, g.Events)
	}
}

// mergeInto is mergeTimes(a, b, limit) in a's own array (a is not
// shared): only a's times after b's first move, so that adding an hour's
// connections to a contact's times costs that hour's, not all of them.
func mergeInto(a, b []int64, limit int) []int64 {
	if len(a) == 0 || len(b) == 0 {
		return mergeTimes(a, b, limit)
	}
	// a[:i] are at most b[0]: they stay (mergeTimes puts a's first on ties).
	i := sort.Search(len(a), func(k int) bool { return a[k] > b[0] })
	total := min(limit, len(a)+len(b))
	if i >= total {
		return a
	}
	tail := slices.Clone(a[i:])
	a = slices.Grow(a, total-len(a))[:total]
	j, k := 0, 0
	for o := i; o < total; o++ {
		if k >= len(b) || (j < len(tail) && tail[j] <= b[k]) {
			a[o] = tail[j]
			j++
		} else {
			a[o] = b[k]
			k++
		}
	}
	return a
}

// destCacheMax bounds the destinations Analyzer.destination remembers.
const destCacheMax = 1 << 16

// destination is Destination, remembered per URL with a host (the public
// suffix lookup is most of applying a group).
func (a *Analyzer) destination(url string, ip netip.Addr) string {
	if d, ok := a.dests[url]; ok {
		return d
	}
	d := Destination(url, ip)
	if hostOf(url) == "" {
		return d // the IP's: not the URL's alone
	}
	if len(a.dests) >= destCacheMax {
		clear(a.dests)
	}
	a.dests[url] = d
	return d
}

func minTime(x, y time.Time) time.Time {
	if y.Before(x) {
		return y
	}
	return x
}

func maxTime(x, y time.Time) time.Time {
	if y.After(x) {
		return y
	}
	return x
}

// Report runs the detections over everything added.
func (a *Analyzer) Report() Report {
	a.events += a.addedUnres
	a.unres += a.addedUnres
	a.addedUnres = 0
	for _, g := range a.pending.Groups() {
		a.apply(g)
	}
	a.pending = NewGrouper()
	return a.report()
}

// report runs the detections over the groups applied.
func (a *Analyzer) report() Report {
	a.classTabs = nil // the hours and installations may have changed
	notices := newNotices()
	var fs []Finding
	fs = append(fs, a.newDestinations(notices)...)
	fs = append(fs, a.volumeFindings(notices)...)
	fs = append(fs, a.segmentFindings()...)
	fs = append(fs, a.outsideFindings()...)
	fs = append(fs, notices.findings()...)
	quarantine := func(c Code) bool { return slices.Contains(a.cfg.QuarantineCodes, c) }
	for i := range fs {
		switch {
		case fs[i].Code == CodeFleetChange:
			fs[i].Severity = SeverityNotice
		case quarantine(fs[i].Code) && fs[i].Update != "":
			fs[i].Severity = SeverityQuarantined
		default:
			fs[i].Severity = SeveritySuspicious
		}
		if fs[i].Update != "" {
			if l := a.byDigest[fs[i].Update]; len(l) > 0 {
				fs[i].Product, fs[i].Version = l[0].Product, l[0].Version
			}
		}
	}
	slices.SortFunc(fs, func(x, y Finding) int {
		return cmp.Or(cmp.Compare(x.Update, y.Update), cmp.Compare(x.Code, y.Code), x.FirstSeen.Compare(y.FirstSeen),
			cmp.Compare(strings.Join(x.Destinations, ","), strings.Join(y.Destinations, ",")), cmp.Compare(strings.Join(x.Devices, ","), strings.Join(y.Devices, ",")))
	})
	r := Report{Findings: fs, Events: a.events, Unresolved: a.unres, LastSeen: maps.Clone(a.lastSeen)}
	for digest, l := range a.byDigest {
		u := UpdateRisk{Digest: digest, Product: l[0].Product, Version: l[0].Version, State: evidence.RiskClean, Installed: []string{}, Affected: []string{}, Codes: []Code{}}
		for _, in := range l {
			u.Installed = appendUnique(u.Installed, in.Device)
		}
		for _, f := range fs {
			if f.Update != digest {
				continue
			}
			if !slices.Contains(u.Codes, f.Code) {
				u.Codes = append(u.Codes, f.Code)
			}
			for _, d := range f.Devices {
				u.Affected = appendUnique(u.Affected, d)
			}
			if f.Severity == SeverityQuarantined {
				u.State = evidence.RiskQuarantined
			} else if u.State == evidence.RiskClean {
				u.State = evidence.RiskSuspicious
			}
		}
		slices.Sort(u.Installed)
		slices.Sort(u.Affected)
		slices.Sort(u.Codes)
		r.Updates = append(r.Updates, u)
	}
	slices.SortFunc(r.Updates, func(x, y UpdateRisk) int { return cmp.Compare(x.Digest, y.Digest) })
	return r
}

func appendUnique(s []string, v string) []string {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

func (a *Analyzer) dormancy() time.Duration {
	return time.Duration(a.cfg.Thresholds.DormancyDays) * 24 * time.Hour
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// short abbreviates a digest for messages.
func short(digest string) string {
	if len(digest) > 19 {
		return digest[:19]
	}
	return digest
}
