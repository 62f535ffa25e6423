package egress

import (
	"cmp"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/wardgate/wardgate/evidence"
)

// Finding severities, which are the risk states they raise an update to.
const (
	SeveritySuspicious  = evidence.RiskSuspicious
	SeverityQuarantined = evidence.RiskQuarantined
)

// Finding is one detection, with its evidence and an explanation for an
// analyst.
type Finding struct {
	Code     Code   `json:"code"`
	Severity string `json:"severity"`
	// Update is the digest of the update the finding is attributed to: the
	// last one the devices installed before the behaviour. Empty when the
	// devices had installed nothing recorded.
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
// (in any order) and call Report once. Memory grows with the distinct
// (device, destination) pairs and (device, URL, hour) groups, plus the
// connection times to destinations new since the baseline.
type Analyzer struct {
	inv      *Inventory
	cfg      Config
	installs map[string][]Installation // device (lower case) -> by time
	byDigest map[string][]Installation
	baseEnd  time.Time
	allowed  map[string]Matcher // class -> allowed destinations
	manif    map[string]Matcher // digest -> manifest
	segs     []segPrefix

	baseline map[string]map[string]bool // class -> destination
	contacts map[contactKey]*contact    // after the baseline, public
	exfil    map[exfilKey]*agg
	exfilDst map[exfilKey]string
	segv     map[segKey]*contact
	outside  map[contactKey]*contact // outside the manifest
	events   int64
	unres    int64
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
	times       []int64 // unix seconds, for beaconing (capped)
	targets     map[string]bool
}

type exfilKey struct {
	device, url string
	hour        int64
}

type segKey struct{ device, segment string }

const maxBeaconTimes = 4096

// NewAnalyzer prepares the detections for a fleet.
func NewAnalyzer(inv *Inventory, installs []Installation, cfg Config) (*Analyzer, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Analyzer{inv: inv, cfg: cfg, installs: map[string][]Installation{}, byDigest: map[string][]Installation{},
		allowed: map[string]Matcher{}, manif: map[string]Matcher{}, baseline: map[string]map[string]bool{},
		contacts: map[contactKey]*contact{}, exfil: map[exfilKey]*agg{}, exfilDst: map[exfilKey]string{},
		segv: map[segKey]*contact{}, outside: map[contactKey]*contact{}}
	for _, in := range installs {
		if err := in.Validate(); err != nil {
			return nil, fmt.Errorf("installation of %s: %w", in.Digest, err)
		}
		k := strings.ToLower(in.Device)
		a.installs[k] = append(a.installs[k], in)
		a.byDigest[in.Digest] = append(a.byDigest[in.Digest], in)
		if a.baseEnd.IsZero() || in.Time.Before(a.baseEnd) {
			a.baseEnd = in.Time
		}
	}
	for _, l := range a.installs {
		slices.SortFunc(l, func(x, y Installation) int { return x.Time.Compare(y.Time) })
	}
	if !cfg.Baseline.End.IsZero() {
		a.baseEnd = cfg.Baseline.End
	}
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

// installed returns the last installation on device at or before t.
func (a *Analyzer) installed(device string, t time.Time) (Installation, bool) {
	l := a.installs[strings.ToLower(device)]
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

func touch(m map[contactKey]*contact, k contactKey, class string, ev *Event, keepTimes bool, target string) {
	c := m[k]
	if c == nil {
		c = &contact{class: class, first: ev.Time, last: ev.Time, targets: map[string]bool{}}
		m[k] = c
	}
	if ev.Time.Before(c.first) {
		c.first = ev.Time
	}
	if ev.Time.After(c.last) {
		c.last = ev.Time
	}
	c.bytes += ev.SentBytes
	c.n++
	if keepTimes && len(c.times) < maxBeaconTimes {
		c.times = append(c.times, ev.Time.Unix())
	}
	if len(c.targets) < 16 {
		c.targets[target] = true
	}
}

// Add feeds one event. Only successful connections count.
func (a *Analyzer) Add(ev *Event) {
	a.events++
	dev, ok := a.inv.Resolve(ev)
	if !ok {
		a.unres++
		return
	}
	if ev.ActionType != ActionConnectionSuccess {
		return
	}
	public := isPublic(ev.RemoteIPType, ev.RemoteIP)
	target := ev.RemoteURL
	if target == "" {
		target = ev.RemoteIP.String()
	}
	if !public {
		seg := a.segmentOf(ev.RemoteIP)
		if seg != "" && seg != dev.Segment && !slices.Contains(a.cfg.Classes[dev.Class].AllowedSegments, seg) {
			k := segKey{dev.Name, seg}
			c := a.segv[k]
			if c == nil {
				c = &contact{class: dev.Class, first: ev.Time, last: ev.Time, targets: map[string]bool{}}
				a.segv[k] = c
			}
			c.first = minTime(c.first, ev.Time)
			c.last = maxTime(c.last, ev.Time)
			c.bytes += ev.SentBytes
			c.n++
			if len(c.targets) < 16 {
				c.targets[target] = true
			}
		}
		return
	}
	dest := Destination(ev.RemoteURL, ev.RemoteIP)
	if a.baseEnd.IsZero() || ev.Time.Before(a.baseEnd) {
		if a.cfg.Baseline.Contains(ev.Time) {
			if a.baseline[dev.Class] == nil {
				a.baseline[dev.Class] = map[string]bool{}
			}
			a.baseline[dev.Class][dest] = true
		}
		if a.baseEnd.IsZero() {
			return // no installation, no explicit window: everything is baseline
		}
		if ev.Time.Before(a.baseEnd) {
			return
		}
	}
	if m, ok := a.allowed[dev.Class]; ok && m.Match(ev.RemoteURL, ev.RemoteIP) {
		return
	}
	if in, ok := a.installed(dev.Name, ev.Time); ok {
		if m, ok := a.manif[in.Digest]; ok {
			if m.Match(ev.RemoteURL, ev.RemoteIP) {
				return // inside the vendor's manifest: never a finding
			}
			touch(a.outside, contactKey{dev.Name, dest}, dev.Class, ev, false, target)
		}
	}
	touch(a.contacts, contactKey{dev.Name, dest}, dev.Class, ev, true, target)
	k := exfilKey{dev.Name, ev.RemoteURL, hourBin(ev.Time.Unix())}
	g := a.exfil[k]
	if g == nil {
		g = &agg{}
		a.exfil[k] = g
		a.exfilDst[k] = dest
	}
	g.sum += ev.SentBytes
	g.count++
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
	var fs []Finding
	fs = append(fs, a.newDestinations()...)
	fs = append(fs, a.exfilFindings()...)
	fs = append(fs, a.segmentFindings()...)
	fs = append(fs, a.outsideFindings()...)
	quarantine := func(c Code) bool { return slices.Contains(a.cfg.QuarantineCodes, c) }
	for i := range fs {
		fs[i].Severity = SeveritySuspicious
		if quarantine(fs[i].Code) {
			fs[i].Severity = SeverityQuarantined
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
	r := Report{Findings: fs, Events: a.events, Unresolved: a.unres}
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

// perDest groups the post-baseline contacts to destinations no device of
// the class reached in the baseline, by (class, destination).
func (a *Analyzer) perDest() map[[2]string][]contactKey {
	out := map[[2]string][]contactKey{}
	for k, c := range a.contacts {
		if a.baseline[c.class][k.dest] {
			continue
		}
		out[[2]string{c.class, k.dest}] = append(out[[2]string{c.class, k.dest}], k)
	}
	return out
}

func (a *Analyzer) newDestinations() []Finding {
	var fs []Finding
	dormancy := time.Duration(a.cfg.Thresholds.DormancyDays) * 24 * time.Hour
	for cd, keys := range a.perDest() {
		class, dest := cd[0], cd[1]
		slices.SortFunc(keys, func(x, y contactKey) int { return cmp.Compare(x.device, y.device) })
		// new-destination and beaconing: per update the device had.
		type group struct {
			devices, beacons           []string
			first, last, bfirst, blast time.Time
			bytes, n, bbytes, bn       int64
			periods                    []float64
			targets                    map[string]bool
		}
		groups := map[string]*group{}
		reachers := map[string]time.Time{} // device -> first contact
		for _, k := range keys {
			c := a.contacts[k]
			reachers[k.device] = c.first
			in, ok := a.installed(k.device, c.first)
			if !ok {
				continue
			}
			g := groups[in.Digest]
			if g == nil {
				g = &group{first: c.first, last: c.last, bfirst: c.first, blast: c.last, targets: map[string]bool{}}
				groups[in.Digest] = g
			}
			g.devices = append(g.devices, k.device)
			g.first, g.last = minTime(g.first, c.first), maxTime(g.last, c.last)
			g.bytes += c.bytes
			g.n += c.n
			for t := range c.targets {
				g.targets[t] = true
			}
			if p, ok := beacon(c.times, a.cfg.Thresholds); ok {
				if len(g.beacons) == 0 {
					g.bfirst, g.blast = c.first, c.last
				}
				g.beacons = append(g.beacons, k.device)
				g.bfirst, g.blast = minTime(g.bfirst, c.first), maxTime(g.blast, c.last)
				g.bbytes += c.bytes
				g.bn += c.n
				g.periods = append(g.periods, p)
			}
		}
		for digest, g := range groups {
			targets := sortedKeys(g.targets)
			fs = append(fs, Finding{Code: CodeNewDestination, Update: digest, Class: class, Devices: g.devices, Destinations: []string{dest},
				FirstSeen: g.first, LastSeen: g.last, Bytes: g.bytes, Connections: g.n,
				Explanation: fmt.Sprintf("%d %s device(s) (%s) reached %s (%s) after installing update %s, first on %s: no %s device reached it in the baseline window; %d connection(s), %d bytes sent.",
					len(g.devices), class, strings.Join(g.devices, ", "), dest, strings.Join(targets, ", "), short(digest), g.first.Format(time.RFC3339), class, g.n, g.bytes)})
			if len(g.beacons) > 0 {
				fs = append(fs, Finding{Code: CodeBeaconing, Update: digest, Class: class, Devices: g.beacons, Destinations: []string{dest},
					FirstSeen: g.bfirst, LastSeen: g.blast, Bytes: g.bbytes, Connections: g.bn,
					Explanation: fmt.Sprintf("%d %s device(s) (%s) connect to new destination %s at regular intervals (median period %s, jitter at most %.0f%%), since %s, %d connection(s) and %d bytes in all: a command-and-control beacon looks like this; the baseline has no such destination.",
						len(g.beacons), class, strings.Join(g.beacons, ", "), dest, time.Duration(median(g.periods)*float64(time.Second)).Round(time.Second), a.cfg.Thresholds.BeaconMaxJitter*100, g.bfirst.Format(time.RFC3339), g.bn, g.bbytes)})
			}
		}
		// fleet-correlation: per update installed in the class.
		for digest, l := range a.byDigest {
			installedAt := map[string]time.Time{}
			for _, in := range l {
				if d, ok := a.inv.Device(in.Device); ok && d.Class == class {
					if t, seen := installedAt[d.Name]; !seen || in.Time.Before(t) {
						installedAt[d.Name] = in.Time
					}
				}
			}
			if len(installedAt) == 0 {
				continue
			}
			var corr []string
			nonInstaller := false
			var first, last time.Time
			var bytes, n int64
			for dev, t0 := range reachers {
				it, installer := installedAt[dev]
				if !installer {
					nonInstaller = true
					break
				}
				// The contact must come after the install, within the
				// dormancy, and with U the update in effect (not an earlier
				// release the device has since replaced).
				if cur, ok := a.installed(dev, t0); t0.Before(it) || t0.Sub(it) > dormancy || !ok || cur.Digest != digest {
					continue
				}
				c := a.contacts[contactKey{dev, dest}]
				corr = append(corr, dev)
				if first.IsZero() || c.first.Before(first) {
					first = c.first
				}
				last = maxTime(last, c.last)
				bytes += c.bytes
				n += c.n
			}
			if nonInstaller || len(corr) < a.cfg.Thresholds.FleetMinDevices {
				continue
			}
			slices.Sort(corr)
			var lags []string
			for _, d := range corr {
				lags = append(lags, fmt.Sprintf("%s %s", d, a.contacts[contactKey{d, dest}].first.Sub(installedAt[d]).Round(time.Hour)))
			}
			fs = append(fs, Finding{Code: CodeFleetCorrelation, Update: digest, Class: class, Devices: corr, Destinations: []string{dest},
				FirstSeen: first, LastSeen: last, Bytes: bytes, Connections: n,
				Explanation: fmt.Sprintf("%d of the %d %s devices that installed update %s reached %s after installing it (delay after install: %s), and no %s device without the update ever did; it was not reached in the baseline window. The update itself, not one device, is the common cause.",
					len(corr), len(installedAt), class, short(digest), dest, strings.Join(lags, ", "), class)})
		}
	}
	return fs
}

// beacon reports whether connection times are regular: at least the
// minimum count, and the median absolute deviation of the inter-arrival
// times at most BeaconMaxJitter of their median. It returns the median
// period in seconds.
func beacon(times []int64, t Thresholds) (float64, bool) {
	if len(times) < t.BeaconMinConnections {
		return 0, false
	}
	ts := slices.Clone(times)
	slices.Sort(ts)
	var gaps []float64
	for i := 1; i < len(ts); i++ {
		if d := ts[i] - ts[i-1]; d > 0 {
			gaps = append(gaps, float64(d))
		}
	}
	if len(gaps) < t.BeaconMinConnections-1 {
		return 0, false
	}
	m := median(gaps)
	dev := make([]float64, len(gaps))
	for i, g := range gaps {
		dev[i] = math.Abs(g - m)
	}
	return m, m > 0 && median(dev) <= t.BeaconMaxJitter*m
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (a *Analyzer) exfilFindings() []Finding {
	type key struct{ device, url string }
	type acc struct {
		first, last time.Time
		bytes, n    int64
		hours       int
		dest        string
	}
	m := map[key]*acc{}
	for k, g := range a.exfil {
		if g.sum <= a.cfg.Thresholds.ExfilBytes {
			continue
		}
		t := time.Unix(k.hour, 0).UTC()
		x := m[key{k.device, k.url}]
		if x == nil {
			x = &acc{first: t, last: t, dest: a.exfilDst[k]}
			m[key{k.device, k.url}] = x
		}
		x.first, x.last = minTime(x.first, t), maxTime(x.last, t)
		x.bytes += g.sum
		x.n += g.count
		x.hours++
	}
	var fs []Finding
	for k, x := range m {
		dev, _ := a.inv.Device(k.device)
		in, _ := a.installed(k.device, x.first)
		url := k.url
		if url == "" {
			url = x.dest
		}
		fs = append(fs, Finding{Code: CodeExfilVolume, Update: in.Digest, Class: dev.Class, Devices: []string{dev.Name}, Destinations: []string{x.dest},
			FirstSeen: x.first, LastSeen: x.last.Add(time.Hour), Bytes: x.bytes, Connections: x.n,
			Explanation: fmt.Sprintf("%s (%s) sent %d bytes to %s in %d connection(s) over %d hour(s) starting %s, above %d bytes per hour; %s is not an allowed destination of %s devices.",
				dev.Name, dev.Class, x.bytes, url, x.n, x.hours, x.first.Format(time.RFC3339), a.cfg.Thresholds.ExfilBytes, x.dest, dev.Class)})
	}
	return fs
}

func (a *Analyzer) segmentFindings() []Finding {
	var fs []Finding
	for k, c := range a.segv {
		dev, _ := a.inv.Device(k.device)
		in, _ := a.installed(k.device, c.first)
		allowed := a.cfg.Classes[dev.Class].AllowedSegments
		fs = append(fs, Finding{Code: CodeSegmentationViolation, Update: in.Digest, Class: dev.Class, Devices: []string{dev.Name}, Destinations: sortedKeys(c.targets),
			FirstSeen: c.first, LastSeen: c.last, Bytes: c.bytes, Connections: c.n,
			Explanation: fmt.Sprintf("%s (%s, segment %s) reached segment %s (%s) %d time(s) since %s; %s devices may reach only %s.",
				dev.Name, dev.Class, dev.Segment, k.segment, strings.Join(sortedKeys(c.targets), ", "), c.n, c.first.Format(time.RFC3339), dev.Class, strings.Join(append([]string{dev.Segment}, allowed...), ", "))})
	}
	return fs
}

func (a *Analyzer) outsideFindings() []Finding {
	type key struct{ digest, dest string }
	type acc struct {
		devices     []string
		first, last time.Time
		bytes, n    int64
		class       string
		targets     map[string]bool
	}
	m := map[key]*acc{}
	for k, c := range a.outside {
		in, _ := a.installed(k.device, c.first)
		x := m[key{in.Digest, k.dest}]
		if x == nil {
			x = &acc{first: c.first, last: c.last, class: c.class, targets: map[string]bool{}}
			m[key{in.Digest, k.dest}] = x
		}
		x.devices = append(x.devices, k.device)
		x.first, x.last = minTime(x.first, c.first), maxTime(x.last, c.last)
		x.bytes += c.bytes
		x.n += c.n
		for t := range c.targets {
			x.targets[t] = true
		}
	}
	var fs []Finding
	for k, x := range m {
		slices.Sort(x.devices)
		fs = append(fs, Finding{Code: CodeExpectedEgress, Update: k.digest, Class: x.class, Devices: x.devices, Destinations: []string{k.dest},
			FirstSeen: x.first, LastSeen: x.last, Bytes: x.bytes, Connections: x.n,
			Explanation: fmt.Sprintf("%d device(s) (%s) running update %s reached %s (%s) since %s, which the vendor's signed egress manifest for that release does not list; %d connection(s), %d bytes sent.",
				len(x.devices), strings.Join(x.devices, ", "), short(k.digest), k.dest, strings.Join(sortedKeys(x.targets), ", "), x.first.Format(time.RFC3339), x.n, x.bytes)})
	}
	return fs
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
