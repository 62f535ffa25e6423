package egress

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
	"unicode/utf8"
	"unsafe"
)

// ExfilVolume is the exfiltration-volume hunting rule of wardgate's
// design, the KQL query
//
//	DeviceNetworkEvents
//	| where DeviceName startswith "HOSP-IOT-"
//	| where ActionType == "ConnectionSuccess"
//	| where RemoteIPType == "Public"
//	| summarize TotalBytesSent = sum(SentBytes), ConnectionCount = count()
//	    by DeviceName, RemoteUrl, Timestamp = bin(Timestamp, 1h)
//	| where TotalBytesSent > 5000000
//	| order by TotalBytesSent desc
//
// When a record has no RemoteIPType, the remote IP is public when it
// parses and is not private, loopback, link-local, CGNAT (100.64.0.0/10),
// multicast or unspecified. startswith is case-insensitive in KQL; so is
// DevicePrefix here.
//
// The fields mean what they say: an empty DevicePrefix selects every
// device, a MinBytes of 0 keeps every group that sent anything.
// DefaultExfilVolume is the query as written.
type ExfilVolume struct {
	// DevicePrefix selects devices by name; "" selects every device.
	DevicePrefix string
	// MinBytes is the exclusive lower bound on TotalBytesSent.
	MinBytes int64
	// Inventory names the device of a record that carries no device name
	// (Zeek conn.log, OCSF events with addresses only): the inventory
	// device with the record's local address. Without an inventory, or
	// when no device has the address, the address itself is the name.
	// Records that carry a DeviceName keep it, as in KQL.
	Inventory *Inventory
}

// Defaults of the exfil-volume rule.
const (
	DefaultDevicePrefix = "HOSP-IOT-"
	DefaultExfilBytes   = 5_000_000
)

// DefaultExfilVolume is the design's rule: devices named HOSP-IOT-*,
// groups above 5,000,000 bytes.
func DefaultExfilVolume() ExfilVolume {
	return ExfilVolume{DevicePrefix: DefaultDevicePrefix, MinBytes: DefaultExfilBytes}
}

// HuntRow is one result row, with the KQL query's column names.
type HuntRow struct {
	Timestamp       time.Time `json:"Timestamp"` // the hour bin, UTC
	DeviceName      string    `json:"DeviceName"`
	RemoteUrl       string    `json:"RemoteUrl"` //nolint:revive // the KQL column name
	TotalBytesSent  int64     `json:"TotalBytesSent"`
	ConnectionCount int64     `json:"ConnectionCount"`
}

// HuntResult is the rows of a hunt and what was read.
type HuntResult struct {
	Rows  []HuntRow
	Stats Stats
}

// IsPublicIP reports whether a is a public unicast address: valid and not
// private, loopback, link-local, CGNAT, multicast or unspecified.
func IsPublicIP(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsMulticast() || a.IsInterfaceLocalMulticast() || a.IsUnspecified() {
		return false
	}
	return !cgnat.Contains(a)
}

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// isPublic applies the rule's public test to an event.
func isPublic(ipType string, ip netip.Addr) bool {
	if ipType != "" {
		return ipType == "Public"
	}
	return IsPublicIP(ip)
}

// agg is one (device, URL, hour) group.
type agg struct{ sum, count int64 }

// aggregator groups matching events in two levels: (device, URL) pairs in
// a map keyed by uvarint(len(device)) device url, and each pair's hours.
// A fleet has thousands of pairs but hundreds of thousands of groups: the
// pair map stays in cache where a map of every group would miss it on
// most lookups, and files are mostly in time order, so a pair's group is
// usually its last hour. Lookups of an existing group do not allocate.
type aggregator struct {
	rule   ExfilVolume
	inv    *Inventory
	prefix []byte
	pairs  map[string]*pairAggs
	// recent holds the pairs seen lately and each one's running group
	// of its current hour, one 128-byte entry per pair with the device
	// and URL inline: adding an event to a pair found there touches that
	// entry alone, where the pair, its key and its hours are three more
	// cache misses (the file streaming through the cache evicts them).
	// Two-way (slots s and s^1 for a hash s of the device and URL),
	// allocated at the first add. An entry's group is added to its pair
	// when the entry moves to another hour or pair, and by flush.
	recent []recentPair
	used   []int32 // the slots of recent ever filled
	list   []*pairAggs
	key    []byte
	// lastTS is the "YYYY-MM-DDTHH" of the last fast-parsed timestamp,
	// as its first 8 and last 8 bytes (little-endian), lastHour its hour
	// bin; haveTS is false until there is one.
	lastTS   [2]uint64
	haveTS   bool
	lastHour int64
}

// pairCacheSize is the number of entries of aggregator.recent, a power of
// two: 2 MiB of address space, of which a fleet of a few thousand pairs
// touches a few hundred KiB.
const pairCacheSize = 1 << 14

// recentPair is one entry of aggregator.recent: a pair (device and URL
// inline, when they fit in key together), and the sum and count of its
// events in hour (hours since the epoch) not yet added to the pair.
// It holds no pointer (the pair is an index in aggregator.list), so that
// the garbage collector does not scan the cache.
type recentPair struct {
	sum        int64
	pi         int32 // 1 + the pair's index in aggregator.list; 0: empty
	hour       int32
	count      int32
	dlen, ulen uint8
	key        [recentKey]byte
}

const recentKey = 106

var _ [128 - unsafe.Sizeof(recentPair{})]struct{} // one entry, two cache lines
var _ [unsafe.Sizeof(recentPair{}) - 128]struct{}

// is reports whether the entry holds the pair (device, url).
func (e *recentPair) is(device, url []byte) bool {
	return int(e.dlen) == len(device) && int(e.ulen) == len(url) && e.pi != 0 &&
		sameBytes(e.key[:len(device)], device) && sameBytes(e.key[len(device):len(device)+len(url)], url)
}

// flushEntry adds the entry's running group to its pair.
func (a *aggregator) flushEntry(e *recentPair) {
	if e.count > 0 {
		g := a.list[e.pi-1].group(int64(e.hour) * 3600)
		g.sum += e.sum
		g.count += int64(e.count)
		e.sum, e.count = 0, 0
	}
}

// flush adds every entry's running group to its pair: the pairs are then
// complete (merge and rows call it).
func (a *aggregator) flush() {
	for _, s := range a.used {
		a.flushEntry(&a.recent[s])
	}
}

// ends returns the first and last 8 bytes of b as little-endian words
// (b's bytes, zero-padded, when it is shorter).
func ends(b []byte) (first, last uint64) {
	if len(b) >= 8 {
		return binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[len(b)-8:])
	}
	var x uint64
	for i, c := range b {
		x |= uint64(c) << (8 * i)
	}
	return x, x
}

// fill makes e, slot s of recent, the entry of (device, url), after
// adding its running group to its pair.
func (a *aggregator) fill(e *recentPair, s int32, device, url []byte) {
	if e.pi == 0 {
		a.used = append(a.used, s)
	} else {
		a.flushEntry(e)
	}
	p := a.pair(device, url)
	if p.idx >= len(a.list) || a.list[p.idx] != p {
		// New, or merged from another aggregator's list.
		p.idx = len(a.list)
		a.list = append(a.list, p)
	}
	e.pi = int32(p.idx + 1)
	e.dlen, e.ulen = uint8(len(device)), uint8(len(url))
	copy(e.key[copy(e.key[:], device):], url)
	e.sum, e.count, e.hour = 0, 0, 0
}

// pairSlot is a slot of (device, url) in recent, the first of its two.
func pairSlot(device, url []byte) uint64 {
	d0, d1 := ends(device)
	u0, u1 := ends(url)
	h := (d0 ^ uint64(len(device))<<32 ^ uint64(len(url))) * 0x9e3779b97f4a7c15
	h = (h ^ bits.RotateLeft64(d1, 23)) * 0xc2b2ae3d27d4eb4f
	h = (h ^ u0) * 0x165667b19e3779f9
	h = (h ^ bits.RotateLeft64(u1, 41)) * 0x27d4eb2f165667c5
	return (h >> (64 - 14)) &^ 1
}

// pairAggs are one (device, URL) pair's groups, by hour. While the hours
// seen are dense (spanning at most max(64, 4 x the groups) hours, as a
// day or two of telemetry is), they are a slice indexed by the hour: no
// map, no pointers for the garbage collector to follow; hours spread
// wider move to a map. Memory stays proportional to the groups.
type pairAggs struct {
	key    string         // its key in aggregator.pairs
	device string         // the pair's device and URL, parts of key
	url    string         //
	base   int64          // the hour (in hours since the epoch) of dense[0]
	dense  []agg          // count 0: no group
	sparse map[int64]*agg // by hour (seconds), once hours are spread
	n      int            // groups
	idx    int            // its index in the list of the aggregator caching it
}

// sameBytes reports whether a and b, of the same length, are equal,
// comparing 8-byte words inline (names and URLs are a few words long).
func sameBytes(a, b []byte) bool {
	n := len(a)
	if n < 8 || len(b) != n {
		return string(a) == string(b)
	}
	for j := 0; j < n-8; j += 8 {
		if binary.LittleEndian.Uint64(a[j:]) != binary.LittleEndian.Uint64(b[j:]) {
			return false
		}
	}
	return binary.LittleEndian.Uint64(a[n-8:]) == binary.LittleEndian.Uint64(b[n-8:])
}

// newPair makes the pair of key k (uvarint(len(device)) device url).
func newPair(k string) *pairAggs {
	n, w := binary.Uvarint([]byte(k))
	return &pairAggs{key: k, device: k[w : w+int(n)], url: k[w+int(n):]}
}

type hourAgg struct {
	hour int64
	agg
}

func newAggregator(rule ExfilVolume) *aggregator {
	return &aggregator{rule: rule, inv: rule.Inventory, prefix: []byte(rule.DevicePrefix), pairs: map[string]*pairAggs{}}
}

// pair returns the pair (device, url), adding it if needed.
func (a *aggregator) pair(device, url []byte) *pairAggs {
	k := binary.AppendUvarint(a.key[:0], uint64(len(device)))
	k = append(k, device...)
	k = append(k, url...)
	a.key = k
	p := a.pairs[string(k)]
	if p == nil {
		p = newPair(string(k))
		a.pairs[p.key] = p
	}
	return p
}

// group returns the pair's group for hour (a multiple of 3600), adding
// it (with no connection yet) if needed.
func (p *pairAggs) group(hour int64) *agg {
	h := hour / 3600
	if i := uint64(h - p.base); i < uint64(len(p.dense)) {
		g := &p.dense[i]
		if g.count == 0 {
			p.n++
		}
		return g
	}
	return p.groupSlow(hour)
}

// maxDenseFloor is the span of hours a pair keeps in a slice whatever
// its number of groups.
const maxDenseFloor = 64

func (p *pairAggs) groupSlow(hour int64) *agg {
	h := hour / 3600
	if p.sparse == nil {
		if p.dense == nil {
			p.base = h
			p.dense = make([]agg, 1, 8)
			p.n++
			return &p.dense[0]
		}
		lo, hi := min(p.base, h), max(p.base+int64(len(p.dense)), h+1)
		if span := hi - lo; span > 0 && span <= int64(max(maxDenseFloor, 4*(p.n+1))) {
			if lo == p.base {
				// Later hours: grow at the end, amortised.
				p.dense = slices.Grow(p.dense, int(hi-p.base)-len(p.dense))[:hi-p.base]
			} else {
				d := make([]agg, hi-lo, (hi-lo)*5/4+1)
				copy(d[p.base-lo:], p.dense)
				p.base, p.dense = lo, d
			}
			p.n++
			return &p.dense[h-p.base]
		}
		p.sparse = make(map[int64]*agg, p.n+1)
		for i := range p.dense {
			if g := &p.dense[i]; g.count > 0 {
				p.sparse[(p.base+int64(i))*3600] = g
			}
		}
		p.dense = nil
	}
	g := p.sparse[hour]
	if g == nil {
		g = &agg{}
		p.sparse[hour] = g
		p.n++
	}
	return g
}

// each calls fn with every group of the pair.
func (p *pairAggs) each(fn func(hourAgg)) {
	for i, g := range p.dense {
		if g.count > 0 {
			fn(hourAgg{hour: (p.base + int64(i)) * 3600, agg: g})
		}
	}
	for h, g := range p.sparse {
		fn(hourAgg{hour: h, agg: *g})
	}
}

func hasPrefixFold(s, prefix []byte) bool {
	if len(s) < len(prefix) {
		return false
	}
	// Names mostly have the prefix's case: compare the bytes first, then
	// ASCII letters folded; only non-ASCII needs Unicode's folding.
	s = s[:len(prefix)]
	if sameBytes(s, prefix) {
		return true
	}
	for i, c := range s {
		p := prefix[i]
		if c|p >= utf8.RuneSelf {
			return bytes.EqualFold(s, prefix)
		}
		if c != p && (c|0x20 != p|0x20 || c|0x20 < 'a' || c|0x20 > 'z') {
			return false
		}
	}
	return true
}

func (a *aggregator) add(device, url []byte, hour int64, sent int64) {
	if h := hour / 3600; len(device)+len(url) <= recentKey && int64(int32(h)) == h {
		if a.recent == nil {
			a.recent = make([]recentPair, pairCacheSize)
		}
		s := pairSlot(device, url)
		e := &a.recent[s]
		if !e.is(device, url) {
			if e2 := &a.recent[s^1]; e2.is(device, url) {
				e = e2
			} else {
				// Take the empty one of the two, else the first.
				if e.pi != 0 && e2.pi == 0 {
					e, s = e2, s^1
				}
				a.fill(e, int32(s), device, url)
			}
		}
		if e.hour != int32(h) || e.count == math.MaxInt32 {
			a.flushEntry(e)
			e.hour = int32(h)
		}
		e.sum += sent
		e.count++
		return
	}
	g := a.pair(device, url).group(hour)
	g.sum += sent
	g.count++
}

func (a *aggregator) addEvent(ev *Event) {
	name := ev.DeviceName
	if name == "" {
		name = a.nameOf(ev.LocalIP)
	}
	if !hasPrefixFold([]byte(name), a.prefix) || ev.ActionType != ActionConnectionSuccess || !isPublic(ev.RemoteIPType, ev.RemoteIP) {
		return
	}
	a.add([]byte(name), []byte(ev.RemoteURL), hourBin(ev.Time.Unix()), ev.SentBytes)
}

// nameOf names a device known only by its local address: the inventory
// device with that address, else the address, else "".
func (a *aggregator) nameOf(ip netip.Addr) string {
	if !ip.IsValid() {
		return ""
	}
	ip = ip.Unmap()
	if a.inv != nil {
		if i, ok := a.inv.byAddr[ip]; ok {
			return a.inv.Devices[i].Name
		}
	}
	return ip.String()
}

func hourBin(sec int64) int64 {
	h := sec / 3600
	if sec%3600 < 0 {
		h--
	}
	return h * 3600
}

func (a *aggregator) merge(b *aggregator) {
	a.flush()
	b.flush()
	for k, bp := range b.pairs {
		p := a.pairs[k]
		if p == nil {
			a.pairs[k] = bp
			continue
		}
		bp.each(func(h hourAgg) {
			g := p.group(h.hour)
			g.sum += h.sum
			g.count += h.count
		})
	}
}

// rows returns the groups above the threshold, ordered by TotalBytesSent
// descending, then (a deterministic tie-break KQL leaves open) Timestamp
// ascending, DeviceName and RemoteUrl ascending by bytes.
func (a *aggregator) rows() []HuntRow {
	a.flush()
	var out []HuntRow
	for _, p := range a.pairs {
		dev, url := p.device, p.url
		p.each(func(g hourAgg) {
			if g.sum > a.rule.MinBytes {
				out = append(out, HuntRow{Timestamp: time.Unix(g.hour, 0).UTC(), DeviceName: dev, RemoteUrl: url, TotalBytesSent: g.sum, ConnectionCount: g.count})
			}
		})
	}
	slices.SortFunc(out, compareRows)
	return out
}

func compareRows(x, y HuntRow) int {
	switch {
	case x.TotalBytesSent != y.TotalBytesSent:
		if x.TotalBytesSent > y.TotalBytesSent {
			return -1
		}
		return 1
	case !x.Timestamp.Equal(y.Timestamp):
		return x.Timestamp.Compare(y.Timestamp)
	case x.DeviceName != y.DeviceName:
		return strings.Compare(x.DeviceName, y.DeviceName)
	}
	return strings.Compare(x.RemoteUrl, y.RemoteUrl)
}

// huntStr is strBytes, inlined for a plain string (no escapes).
func (d *defRaw) huntStr(f int, buf []byte) ([]byte, bool) {
	if s := &d.f[f]; d.set&(1<<f) != 0 && s.kind == kindString && !s.esc {
		return s.v, true
	}
	return d.huntStrSlow(f, buf)
}

//go:noinline
func (d *defRaw) huntStrSlow(f int, buf []byte) ([]byte, bool) { return d.strBytes(f, buf) }

// connectionSuccess is ActionConnectionSuccess, compared as words.
var connectionSuccess = []byte(ActionConnectionSuccess)

// lineJSON runs the rule on one Defender JSON line without building an
// Event. It returns false for a malformed line: exactly the lines Scan
// counts as malformed.
func (a *aggregator) lineJSON(line []byte, d *defRaw, sbuf *[3][]byte) bool {
	return scanDefenderJSON(line, d) && a.record(d, sbuf)
}

// record runs the rule on a scanned record. It returns false for a
// record Scan would count as malformed.
func (a *aggregator) record(d *defRaw, sbuf *[3][]byte) bool {
	if !d.valid() {
		return false
	}
	ts, ok := d.huntStr(dTimestamp, sbuf[0])
	if !ok {
		return false
	}
	var sec int64
	// Files are mostly in time order: reuse the hour of the previous line
	// when the date and hour match, after checking the rest of the stamp.
	if len(ts) >= 20 && a.haveTS && binary.LittleEndian.Uint64(ts) == a.lastTS[0] && binary.LittleEndian.Uint64(ts[5:]) == a.lastTS[1] && restRFC3339Z(ts) {
		sec = a.lastHour
	} else if sec, _, ok = fastRFC3339Z(ts); ok {
		a.lastTS = [2]uint64{binary.LittleEndian.Uint64(ts), binary.LittleEndian.Uint64(ts[5:])}
		a.haveTS = true
		a.lastHour = hourBin(sec)
	} else {
		t, err := ParseTime(string(ts))
		if err != nil {
			return false
		}
		sec = t.Unix()
	}
	dev, _ := d.huntStr(dDeviceName, sbuf[0])
	if len(dev) == 0 {
		lip, _ := d.huntStr(dLocalIP, sbuf[1])
		addr, _ := netip.ParseAddr(string(lip))
		dev = append(sbuf[0][:0], a.nameOf(addr)...)
		sbuf[0] = dev
	}
	if len(dev) < len(a.prefix) || !sameBytes(dev[:len(a.prefix)], a.prefix) && !hasPrefixFold(dev, a.prefix) {
		return true
	}
	act, _ := d.huntStr(dActionType, sbuf[1])
	if len(act) != len(connectionSuccess) || !sameBytes(act, connectionSuccess) {
		return true
	}
	ipt, _ := d.huntStr(dRemoteIPType, sbuf[1])
	if len(ipt) > 0 {
		if string(ipt) != "Public" {
			return true
		}
	} else {
		ip, _ := d.huntStr(dRemoteIP, sbuf[1])
		addr, _ := netip.ParseAddr(string(ip))
		if !IsPublicIP(addr) {
			return true
		}
	}
	url, _ := d.huntStr(dRemoteURL, sbuf[2])
	if s := d.span(dRemoteURL); s.kind == kindString && s.esc {
		sbuf[2] = url[:0] // url is the unquote buffer: keep it for the next escaped URL
	}
	a.add(dev, url, hourBin(sec), d.intValue(dSentBytes))
	return true
}

// Hunt runs the exfil-volume rule over files (a name of "-" is standard
// input) and returns the rows the KQL query would. Defender JSON in a
// regular file is split at line boundaries into one chunk per CPU and
// scanned in parallel with the purpose-built scanner; other formats go
// through Scan. Memory is bounded by the number of distinct (device, URL,
// hour) groups.
func Hunt(ctx context.Context, files []string, rule ExfilVolume, opts ...ScanOption) (HuntResult, error) {
	c, err := newScanConfig(opts)
	if err != nil {
		return HuntResult{}, err
	}
	total := newAggregator(rule)
	var res HuntResult
	var errs []error
	for _, name := range files {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		st, err := huntFile(ctx, name, total, c, opts)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		if res.Stats.Format == "" {
			res.Stats.Format = st.Format
		}
		res.Stats.Add(st, 0)
	}
	res.Rows = total.rows()
	return res, errors.Join(errs...)
}

func huntFile(ctx context.Context, name string, total *aggregator, c scanConfig, opts []ScanOption) (Stats, error) {
	var r io.Reader = os.Stdin
	var f *os.File
	if name != "-" {
		var err error
		if f, err = os.Open(name); err != nil {
			return Stats{}, err
		}
		defer f.Close()
		r = f
	}
	format := c.format
	if format == FormatAuto && f != nil {
		p := make([]byte, 16<<10)
		n, _ := io.ReadFull(f, p)
		if n == 0 {
			return Stats{Format: FormatAuto}, nil
		}
		var err error
		if format, err = Detect(p[:n]); err != nil {
			return Stats{}, err
		}
	}
	if f != nil && format == FormatDefenderJSON {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			if c.maxBytes > 0 && fi.Size() > c.maxBytes {
				return Stats{}, ErrInputTooLarge
			}
			return huntParallel(ctx, f, fi.Size(), total, c)
		}
	}
	if f != nil {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return Stats{}, err
		}
	}
	if format != FormatAuto {
		opts = append(slices.Clone(opts), WithFormat(format))
	}
	return Scan(r, func(ev *Event) error { total.addEvent(ev); return nil }, opts...)
}

// huntParallel splits f into runtime.GOMAXPROCS chunks starting at line
// starts and scans them concurrently, through a read-only mapping of the
// file where the system has one, else with read(2).
func huntParallel(ctx context.Context, f *os.File, size int64, total *aggregator, c scanConfig) (Stats, error) {
	n := runtime.GOMAXPROCS(0)
	if size < 1<<20 {
		n = 1
	}
	data, unmap, err := mapFile(f, size)
	if err != nil {
		data = nil
	} else {
		defer unmap()
	}
	starts := []int64{0}
	buf := make([]byte, 64<<10)
	for k := 1; k < n; k++ {
		pos := size * int64(k) / int64(n)
		if pos <= starts[len(starts)-1] {
			continue
		}
		// A chunk starts after the first newline at or after pos-1.
		found := false
		if data != nil {
			if i := bytes.IndexByte(data[pos-1:], '\n'); i >= 0 {
				pos, found = pos+int64(i), true
			}
		}
		for p := pos - 1; data == nil && p < size && !found; {
			m, err := f.ReadAt(buf, p)
			if i := bytes.IndexByte(buf[:m], '\n'); i >= 0 {
				pos, found = p+int64(i)+1, true
			} else if err != nil {
				break
			}
			p += int64(m)
		}
		if !found || pos >= size {
			break
		}
		starts = append(starts, pos)
	}
	starts = append(starts, size)
	parts := make([]*aggregator, len(starts)-1)
	stats := make([]Stats, len(starts)-1)
	errs := make([]error, len(starts)-1)
	var wg sync.WaitGroup
	for i := range parts {
		wg.Go(func() {
			a := newAggregator(total.rule)
			parts[i] = a
			if data != nil {
				errs[i] = a.huntMapped(ctx, data, int(starts[i]), int(starts[i+1]), c.maxLine, &stats[i])
				return
			}
			errs[i] = a.huntReader(ctx, io.NewSectionReader(f, starts[i], starts[i+1]-starts[i]), c.maxLine, &stats[i])
		})
	}
	wg.Wait()
	out := Stats{Format: FormatDefenderJSON}
	var off int64
	for i, a := range parts {
		total.merge(a)
		out.Add(stats[i], off)
		off += stats[i].Lines
	}
	return out, errors.Join(errs...)
}

// huntReader runs the rule on the Defender JSON lines of r.
func (a *aggregator) huntReader(ctx context.Context, r io.Reader, maxLine int, st *Stats) error {
	lr := newLineReader(r, maxLine, 0)
	var d defRaw
	var sbuf [3][]byte
	defer func() {
		st.Lines = lr.n
		st.Bytes = lr.bytes
	}()
	for {
		if lr.n&0xffff == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		line, tooLong, err := lr.next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return err
			}
			return nil
		}
		a.huntLine(line, tooLong, lr.n, &d, &sbuf, st)
	}
}

// huntLine counts one line in st and runs the rule on it.
func (a *aggregator) huntLine(line []byte, tooLong bool, n int64, d *defRaw, sbuf *[3][]byte, st *Stats) {
	switch {
	case tooLong:
		st.malformed(n)
	case (len(line) == 0 || line[0] != '{') && len(bytes.TrimSpace(line)) == 0:
		st.Skipped++
	case !a.lineJSON(line, d, sbuf):
		st.malformed(n)
	default:
		st.Events++
	}
}

// dropEvery is how much of a mapped file a hunt reads between two drops
// of the pages it read.
var dropEvery = 8 << 20

// huntMapped runs the rule on the Defender JSON lines of m[start:end], a
// chunk of a mapped file m, splitting lines exactly as lineReader does: a
// line is too long when it is, with its "\n", more than maxLine+2 bytes.
// Every dropEvery bytes, the pages read are dropped from the resident set.
//
// A file truncated while mapped makes reading past its new end fault
// (SIGBUS); the fault is turned into an error here, not a crash.
func (a *aggregator) huntMapped(ctx context.Context, m []byte, start, end, maxLine int, st *Stats) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	var n int64
	defer func() {
		st.Lines = n
		st.Bytes = int64(end - start)
		if r := recover(); r != nil {
			err = fmt.Errorf("egress: reading the mapped file failed (was it truncated while read?): %v", r)
		}
	}()
	var d defRaw
	var sbuf [3][]byte
	data := m[:end]
	page := os.Getpagesize()
	dropped := (start + page - 1) / page * page // the chunk's first whole page
	for p := start; p < len(data); {
		if n&0xffff == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if p-dropped >= dropEvery {
			to := p / page * page
			dropMapped(m[dropped:to])
			dropped = to
		}
		n++
		if data[p] == '{' {
			// Scan the object in place: the scanner stops at the line's
			// newline (it is not whitespace to it), so a valid object
			// followed by whitespace and the newline (or the end of the
			// file) is the line, found without a pass of its own. The
			// window ends where a line would be too long. Anything else
			// is judged again below, as a line.
			w := data[p:]
			if maxLine >= 0 && len(w) > maxLine+2 {
				w = w[:maxLine+2]
			}
			d.set = 0
			if e, ok := scanObjectPrefix(w, &d.scratch, &d); ok {
				if e < len(w) && w[e] == '\n' {
					p += e + 1
				} else if e == len(w) && p+e == len(data) {
					p += e
				} else {
					ok = false
				}
				if ok {
					if a.record(&d, &sbuf) {
						st.Events++
					} else {
						st.malformed(n)
					}
					continue
				}
			}
		}
		raw := data[p:]
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			raw = raw[:i+1]
		}
		p += len(raw)
		if len(raw) > maxLine+2 {
			a.huntLine(nil, true, n, &d, &sbuf, st)
			continue
		}
		a.huntLine(trimEOL(raw), false, n, &d, &sbuf, st)
	}
	return nil
}

// WriteHuntTable prints rows as an aligned text table.
func WriteHuntTable(w io.Writer, rows []HuntRow) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight*0)
	fmt.Fprintln(tw, "Timestamp\tDeviceName\tRemoteUrl\tTotalBytesSent\tConnectionCount")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\n", r.Timestamp.Format(time.RFC3339), r.DeviceName, r.RemoteUrl, r.TotalBytesSent, r.ConnectionCount)
	}
	return tw.Flush()
}

// WriteHuntJSON prints rows as JSON Lines, one object per row with the
// query's column names.
func WriteHuntJSON(w io.Writer, rows []HuntRow) error {
	enc := json.NewEncoder(w)
	for _, r := range rows {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return nil
}
