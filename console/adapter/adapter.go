// Package adapter implements console.Data over wardgate's stores as they
// are today: the kept evaluations (gate.Records), the fleet analysis
// (gate.RiskCache's egress.Report), the egress store (installations and
// the groups of the events), the fleet inventory and detection
// configuration, the verdict log (attest.Log) and the API tokens and
// audit table (server.Tokens).
//
// It is the one place that knows those types: when storage moves, only
// this package changes. Nothing here is stored anew; what no store keeps
// (each installer's hourly traffic to the new destinations, and the device
// class's hourly baseline, for the update page's plots) is computed from
// the egress store's groups (egress.Group) with the egress package's own
// rules (egress.Destination, public addresses, the baseline window): the
// groups are kept in memory and read again only where a batch changed
// them (groups.go). The indexes of the inventory and of the installations
// are kept until they change (each page reads the installations recorded
// since the last it saw, egress.InstallationLog, and adds them); those of
// an analysis (its findings and updates) are built when it completes, on
// the first page that reads it.
//
// Imports: console, gate, egress, attest, server (tokens), evidence.
// Must not import: cobra, cmd/.
package adapter

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wardgate/wardgate/attest"
	"github.com/wardgate/wardgate/console"
	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/evidence"
	"github.com/wardgate/wardgate/gate"
	"github.com/wardgate/wardgate/server"
)

// Reporter is the fleet analysis (gate.RiskCache).
type Reporter interface {
	Report(ctx context.Context) (egress.Report, error)
}

// Fleet is the egress store as the console reads it: the installations
// (those recorded since a point) and the groups of the events (never the
// events themselves).
type Fleet interface {
	egress.InstallationLog
	egress.GroupStore
}

// Deps are the stores the console reads. All are required.
type Deps struct {
	Records *gate.Records
	Risk    Reporter
	Fleet   Fleet
	// Inventory and Config return the current fleet inventory (nil: none
	// yet) and detection configuration (nil: defaults); a reload may
	// change them.
	Inventory func() *egress.Inventory
	Config    func() *egress.Config
	Log       *attest.Log
	Tokens    *server.Tokens
	// WorkDir holds evidence packs while they are downloaded.
	WorkDir string
}

// Data is console.Data over Deps.
type Data struct {
	d Deps

	mu   sync.Mutex
	snap *snapshot
	invx *invIndex
	insx *insIndex

	groups *groupIndex
}

var _ console.Data = (*Data)(nil)

// New checks deps.
func New(d Deps) (*Data, error) {
	var missing []string
	for _, m := range []struct {
		ok   bool
		name string
	}{{d.Records != nil, "Records"}, {d.Risk != nil, "Risk"}, {d.Fleet != nil, "Fleet"}, {d.Inventory != nil, "Inventory"},
		{d.Config != nil, "Config"}, {d.Log != nil, "Log"}, {d.Tokens != nil, "Tokens"}, {d.WorkDir != "", "WorkDir"}} {
		if !m.ok {
			missing = append(missing, m.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("console adapter: missing %s", strings.Join(missing, ", "))
	}
	return &Data{d: d, groups: newGroupIndex()}, nil
}

// installationsBudget bounds a page's read of the new installations,
// which it makes holding the adapter's lock: a store that hangs holds up
// the pages for this long, then they go on with the installations held.
var installationsBudget = 2 * time.Second

// snapKey tells one analysis from the next (the report's own slices: the
// risk cache returns the same report until an analysis completes), and a
// reload of the inventory or configuration.
type snapKey struct {
	events, unresolved int64
	findings, updates  int
	firstFinding       *egress.Finding
	firstUpdate        *egress.UpdateRisk
	installs           int
	inv                *egress.Inventory
	cfg                *egress.Config
}

// snapshot is everything derived from one fleet analysis. The inventory's
// and the installations' indexes are shared by the snapshots of the
// analyses that have the same inventory and installations.
type snapshot struct {
	key snapKey
	rep egress.Report
	cfg egress.Config
	*invIndex
	*insIndex

	risk    map[string]*egress.UpdateRisk
	devFind map[string][]int // lower-case name -> finding indexes
	updFind map[string][]int // digest -> finding indexes
	newest  []int            // finding indexes, newest first

	groupsMu sync.Mutex
	synced   bool                         // the groups were read for this analysis
	contacts map[string][]console.Contact // digest -> its plot's contacts

	rowsMu sync.Mutex
	rows   *updateRows
}

// invIndex is what the pages need of one inventory.
type invIndex struct {
	inv       *egress.Inventory
	devOrder  []int               // inventory indexes by name
	lower     []string            // inventory names, lower case
	classN    map[string]int      // devices per class
	classDevs map[string][]string // class -> lower-case device names
	segments  []string
	invClass  []string
}

func newInvIndex(inv *egress.Inventory) *invIndex {
	x := &invIndex{inv: inv, lower: make([]string, len(inv.Devices)), devOrder: make([]int, len(inv.Devices)), classN: map[string]int{}, classDevs: map[string][]string{}}
	segs := map[string]bool{}
	for i, d := range inv.Devices {
		x.lower[i] = strings.ToLower(d.Name)
		x.devOrder[i] = i
		x.classN[d.Class]++
		x.classDevs[d.Class] = append(x.classDevs[d.Class], x.lower[i])
		if d.Segment != "" {
			segs[d.Segment] = true
		}
	}
	slices.SortFunc(x.devOrder, func(i, j int) int { return strings.Compare(x.lower[i], x.lower[j]) })
	x.segments = sortedKeys(segs)
	for c := range x.classN {
		x.invClass = append(x.invClass, c)
	}
	slices.Sort(x.invClass)
	return x
}

// insIndex is what the pages need of the installations (and the
// inventory, for the installers' classes). An index is never changed once
// a snapshot holds it: with makes a new one.
type insIndex struct {
	forInv    *egress.Inventory
	next      int64                            // the InstallationsSince point of what it holds
	byDevice  map[string][]egress.Installation // lower-case name -> egress.CompareInstallations order
	firstSeen map[string]map[string]time.Time  // digest -> device -> first install
	classes   map[string][]string              // digest -> installer classes, sorted
	baseEnd   time.Time                        // first installation of all
}

func newInsIndex(inv *egress.Inventory) *insIndex {
	return &insIndex{forInv: inv, byDevice: map[string][]egress.Installation{}, firstSeen: map[string]map[string]time.Time{}, classes: map[string][]string{}}
}

// with returns an index of x's installations and ins (recorded up to the
// point next). x is left as it is: the maps and lists ins changes are
// copied, the rest shared.
func (x *insIndex) with(ins []egress.Installation, next int64) *insIndex {
	c := *x
	c.next = next
	if len(ins) == 0 {
		return &c
	}
	c.byDevice, c.firstSeen, c.classes = maps.Clone(x.byDevice), maps.Clone(x.firstSeen), maps.Clone(x.classes)
	devs, digests := map[string]bool{}, map[string]bool{}
	for _, in := range ins {
		k := strings.ToLower(in.Device)
		l := c.byDevice[k]
		if !devs[k] {
			devs[k] = true
			l = slices.Clip(l) // the append copies: x's list stays
		}
		c.byDevice[k] = append(l, in)
		m := c.firstSeen[in.Digest]
		if !digests[in.Digest] {
			digests[in.Digest] = true
			m = maps.Clone(m)
			if m == nil {
				m = map[string]time.Time{}
			}
			c.firstSeen[in.Digest] = m
			c.classes[in.Digest] = slices.Clip(c.classes[in.Digest])
		}
		if t, ok := m[in.Device]; !ok || in.Time.Before(t) {
			m[in.Device] = in.Time
		}
		if c.baseEnd.IsZero() || in.Time.Before(c.baseEnd) {
			c.baseEnd = in.Time
		}
		if d, ok := x.forInv.Device(in.Device); ok {
			if i, found := slices.BinarySearch(c.classes[in.Digest], d.Class); !found {
				c.classes[in.Digest] = slices.Insert(c.classes[in.Digest], i, d.Class)
			}
		}
	}
	for k := range devs {
		slices.SortFunc(c.byDevice[k], egress.CompareInstallations)
	}
	return &c
}

// updateRows are the summaries of every update, kept while neither the
// analysis nor the kept evaluations change.
type updateRows struct {
	n       int   // evaluations
	sum     int64 // of their recording times: a re-evaluation changes it
	all     []console.UpdateSummary
	vendors []string
	classes []string
}

func (a *Data) snapshot(ctx context.Context) (*snapshot, error) {
	rep, err := a.d.Risk.Report(ctx)
	if err != nil {
		return nil, fmt.Errorf("fleet analysis: %w", err)
	}
	inv := a.d.Inventory()
	if inv == nil {
		inv = emptyInventory
	}
	key := snapKey{events: rep.Events, unresolved: rep.Unresolved, findings: len(rep.Findings), updates: len(rep.Updates), inv: inv, cfg: a.d.Config()}
	if len(rep.Findings) > 0 {
		key.firstFinding = &rep.Findings[0]
	}
	if len(rep.Updates) > 0 {
		key.firstUpdate = &rep.Updates[0]
	}
	for _, u := range rep.Updates {
		key.installs += len(u.Installed)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	// The installations recorded since the page before: one indexed read,
	// most often of none.
	insx := a.insx
	if insx == nil || insx.forInv != inv {
		insx = newInsIndex(inv)
	}
	rctx, cancel := context.WithTimeout(ctx, installationsBudget)
	ins, next, err := a.d.Fleet.InstallationsSince(rctx, insx.next)
	cancel()
	switch {
	case err != nil && insx != a.insx:
		return nil, fmt.Errorf("installations: %w", err)
	case err != nil:
		// The store did not answer, or not within the budget (a PostgreSQL
		// restart, a hung connection): the pages go on with the
		// installations an earlier page read, as with the last analysis,
		// and read the new ones when it answers again.
		ins, next = nil, insx.next
	}
	if len(ins) > 0 || insx != a.insx {
		insx = insx.with(ins, next)
		a.insx = insx
	}
	if s := a.snap; s != nil && s.key == key && s.insIndex == insx {
		return s, nil
	}
	if a.invx == nil || a.invx.inv != inv {
		a.invx = newInvIndex(inv)
	}
	a.snap = newSnapshot(key, rep, a.invx, insx)
	return a.snap, nil
}

var emptyInventory, _ = egress.NewInventory(nil)

func newSnapshot(key snapKey, rep egress.Report, invx *invIndex, insx *insIndex) *snapshot {
	s := &snapshot{key: key, rep: rep, invIndex: invx, insIndex: insx, risk: make(map[string]*egress.UpdateRisk, len(rep.Updates)),
		devFind: map[string][]int{}, updFind: map[string][]int{}, contacts: map[string][]console.Contact{}}
	if key.cfg != nil {
		s.cfg = *key.cfg
	}
	s.cfg = s.cfg.WithDefaults()
	for i := range rep.Updates {
		s.risk[rep.Updates[i].Digest] = &rep.Updates[i]
	}
	s.newest = make([]int, 0, len(rep.Findings))
	for i, f := range rep.Findings {
		// A fleet-change notice is about a class, not the devices in it:
		// it makes none of them affected.
		for _, d := range f.Devices {
			if f.Severity == egress.SeverityNotice {
				break
			}
			k := strings.ToLower(d)
			s.devFind[k] = append(s.devFind[k], i)
		}
		if f.Update != "" {
			s.updFind[f.Update] = append(s.updFind[f.Update], i)
		}
		s.newest = append(s.newest, i)
	}
	slices.SortStableFunc(s.newest, func(x, y int) int { return rep.Findings[y].FirstSeen.Compare(rep.Findings[x].FirstSeen) })
	return s
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (s *snapshot) state(digest string) string {
	if u, ok := s.risk[digest]; ok {
		return u.State
	}
	return evidence.RiskClean
}

func finding(f egress.Finding) console.Finding {
	return console.Finding{Code: string(f.Code), Severity: f.Severity, Update: f.Update, Product: f.Product, Version: f.Version, Class: f.Class,
		Devices: f.Devices, Destinations: f.Destinations, FirstSeen: f.FirstSeen, LastSeen: f.LastSeen, Bytes: f.Bytes, Connections: f.Connections, Explanation: f.Explanation}
}

func (s *snapshot) findings(idx []int) []console.Finding {
	out := make([]console.Finding, 0, len(idx))
	for _, i := range idx {
		out = append(out, finding(s.rep.Findings[i]))
	}
	slices.SortStableFunc(out, func(x, y console.Finding) int { return y.FirstSeen.Compare(x.FirstSeen) })
	return out
}

func window[T any](all []T, p console.Page) []T {
	if p.Offset >= len(all) {
		return []T{}
	}
	end := len(all)
	if p.Limit > 0 {
		end = min(end, p.Offset+p.Limit)
	}
	return all[p.Offset:end]
}

// --- updates -----------------------------------------------------------------

func summary(rec *gate.Record, s *snapshot) console.UpdateSummary {
	u := console.UpdateSummary{Digest: rec.Evidence.Artifact.Digest, Vendor: rec.Evidence.Artifact.Vendor, Product: rec.Evidence.Artifact.Product,
		Version: rec.Evidence.Artifact.Version, Classes: rec.Evidence.Artifact.DeviceClasses, Evaluated: true, Allow: rec.Decision.Allow,
		EvaluatedAt: rec.RecordedAt, State: evidence.RiskClean}
	for _, v := range rec.Decision.Violations {
		u.Codes = append(u.Codes, string(v.Code))
	}
	if r, ok := s.risk[u.Digest]; ok {
		u.State, u.Installed, u.Affected = r.State, len(r.Installed), len(r.Affected)
	}
	return u
}

func unevaluated(r *egress.UpdateRisk, s *snapshot) console.UpdateSummary {
	return console.UpdateSummary{Digest: r.Digest, Product: r.Product, Version: r.Version, Classes: s.classes[r.Digest], State: r.State,
		Installed: len(r.Installed), Affected: len(r.Affected)}
}

var stateRank = map[string]int{evidence.RiskClean: 0, evidence.RiskSuspicious: 1, evidence.RiskQuarantined: 2}

// rows returns the summaries of every update, built once per analysis
// and set of evaluations.
func (s *snapshot) updateRows(recs []*gate.Record) *updateRows {
	var sum int64
	for _, r := range recs {
		sum += r.RecordedAt.UnixNano()
	}
	s.rowsMu.Lock()
	defer s.rowsMu.Unlock()
	if r := s.rows; r != nil && r.n == len(recs) && r.sum == sum {
		return r
	}
	all := make([]console.UpdateSummary, 0, len(recs)+len(s.rep.Updates))
	vendors, classes := map[string]bool{}, map[string]bool{}
	seen := make(map[string]bool, len(recs))
	for _, rec := range recs {
		u := summary(rec, s)
		seen[u.Digest] = true
		u.Classes = mergeClasses(u.Classes, s.classes[u.Digest])
		all = append(all, u)
	}
	for i := range s.rep.Updates {
		if r := &s.rep.Updates[i]; !seen[r.Digest] {
			all = append(all, unevaluated(r, s))
		}
	}
	for _, u := range all {
		if u.Vendor != "" {
			vendors[u.Vendor] = true
		}
		for _, c := range u.Classes {
			classes[c] = true
		}
	}
	s.rows = &updateRows{n: len(recs), sum: sum, all: all, vendors: sortedKeys(vendors), classes: sortedKeys(classes)}
	return s.rows
}

// Updates implements console.Updates.
func (a *Data) Updates(ctx context.Context, q console.UpdateQuery) (console.UpdatePage, error) {
	s, err := a.snapshot(ctx)
	if err != nil {
		return console.UpdatePage{}, err
	}
	all := s.updateRows(a.d.Records.List())
	rows := make([]*console.UpdateSummary, 0, len(all.all))
	for i := range all.all {
		u := &all.all[i]
		if (q.State == "" || u.State == q.State) && (q.Vendor == "" || u.Vendor == q.Vendor) && (q.Class == "" || slices.Contains(u.Classes, q.Class)) &&
			(q.DigestPrefix == "" || strings.HasPrefix(u.Digest, q.DigestPrefix)) {
			rows = append(rows, u)
		}
	}
	slices.SortFunc(rows, func(x, y *console.UpdateSummary) int {
		var c int
		switch q.Sort {
		case console.SortVendor:
			if c = strings.Compare(x.Vendor, y.Vendor); c == 0 {
				if c = strings.Compare(x.Product, y.Product); c == 0 {
					c = strings.Compare(x.Version, y.Version)
				}
			}
		case console.SortProduct:
			if c = strings.Compare(x.Product, y.Product); c == 0 {
				c = strings.Compare(x.Version, y.Version)
			}
		case console.SortState:
			c = cmp.Compare(stateRank[x.State], stateRank[y.State])
		case console.SortInstalled:
			c = cmp.Compare(x.Installed, y.Installed)
		default:
			c = x.EvaluatedAt.Compare(y.EvaluatedAt)
		}
		if q.Desc {
			c = -c
		}
		if c == 0 {
			c = strings.Compare(x.Digest, y.Digest)
		}
		return c
	})
	page := window(rows, q.Page)
	out := console.UpdatePage{Updates: make([]console.UpdateSummary, len(page)), Total: len(rows), Vendors: all.vendors, Classes: all.classes}
	for i, u := range page {
		out.Updates[i] = *u
	}
	return out, nil
}

func mergeClasses(a, b []string) []string {
	out := slices.Clone(a)
	for _, c := range b {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// Update implements console.Updates.
func (a *Data) Update(ctx context.Context, digest string) (console.UpdateDetail, error) {
	s, err := a.snapshot(ctx)
	if err != nil {
		return console.UpdateDetail{}, err
	}
	rec, known := a.d.Records.Get(digest)
	r, installed := s.risk[digest]
	if !known && !installed {
		return console.UpdateDetail{}, fmt.Errorf("update %s: %w", digest, console.ErrNotFound)
	}
	var out console.UpdateDetail
	if known {
		out.Summary = summary(rec, s)
		out.Record = &console.UpdateRecord{Evidence: rec.Evidence, Decision: rec.Decision, RecordedAt: rec.RecordedAt}
		if rec.LogEntry != nil {
			i := rec.LogEntry.Index
			out.Record.LogIndex = &i
		}
	} else {
		out.Summary = unevaluated(r, s)
	}
	out.Findings = s.findings(s.updFind[digest])
	if installed {
		for _, name := range r.Installed {
			im := console.Impact{Device: name, Installed: s.firstSeen[digest][name], Affected: slices.Contains(r.Affected, name)}
			if d, ok := s.inv.Device(name); ok {
				im.Class, im.Segment = d.Class, d.Segment
			}
			out.Devices = append(out.Devices, im)
		}
		slices.SortFunc(out.Devices, func(x, y console.Impact) int {
			return cmp.Or(strings.Compare(x.Segment, y.Segment), strings.Compare(x.Device, y.Device))
		})
	}
	if len(out.Findings) > 0 {
		if out.Contacts, out.Baseline, err = a.plot(ctx, s, digest, s.mainClass(digest, rec)); err != nil {
			return console.UpdateDetail{}, err
		}
	}
	return out, nil
}

// mainClass is the class most of the update's installers belong to, else
// the first class it targets.
func (s *snapshot) mainClass(digest string, rec *gate.Record) string {
	n := map[string]int{}
	best := ""
	for dev := range s.firstSeen[digest] {
		if d, ok := s.inv.Device(dev); ok {
			n[d.Class]++
			if best == "" || n[d.Class] > n[best] || n[d.Class] == n[best] && d.Class < best {
				best = d.Class
			}
		}
	}
	if best == "" && rec != nil && len(rec.Evidence.Artifact.DeviceClasses) > 0 {
		best = rec.Evidence.Artifact.DeviceClasses[0]
	}
	return best
}

// --- findings ----------------------------------------------------------------

// Findings implements console.Findings.
func (a *Data) Findings(ctx context.Context, q console.FindingQuery) (console.FindingPage, error) {
	s, err := a.snapshot(ctx)
	if err != nil {
		return console.FindingPage{}, err
	}
	codes, classes := map[string]bool{}, map[string]bool{}
	var rows []console.Finding
	total := 0
	dev := strings.ToLower(q.Device)
	for _, i := range s.newest {
		f := &s.rep.Findings[i]
		codes[string(f.Code)], classes[f.Class] = true, true
		if (q.Code != "" && string(f.Code) != q.Code) || (q.Severity != "" && f.Severity != q.Severity) || (q.Class != "" && f.Class != q.Class) ||
			(q.Update != "" && f.Update != q.Update) || (dev != "" && !slices.ContainsFunc(f.Devices, func(d string) bool { return strings.ToLower(d) == dev })) {
			continue
		}
		if total >= q.Offset && (q.Limit == 0 || len(rows) < q.Limit) {
			rows = append(rows, finding(*f))
		}
		total++
	}
	if rows == nil {
		rows = []console.Finding{}
	}
	return console.FindingPage{Findings: rows, Total: total, Codes: sortedKeys(codes), Classes: sortedKeys(classes), Events: s.rep.Events}, nil
}

// --- devices -------------------------------------------------------------------

func (s *snapshot) device(d *egress.Device) console.Device {
	out := console.Device{Name: d.Name, Class: d.Class, Segment: d.Segment, Findings: len(s.devFind[strings.ToLower(d.Name)])}
	for _, ad := range d.Addresses {
		out.Addresses = append(out.Addresses, ad.String())
	}
	if l := s.byDevice[strings.ToLower(d.Name)]; len(l) > 0 {
		in := l[len(l)-1]
		out.Current = console.Install{Digest: in.Digest, Product: in.Product, Version: in.Version, Time: in.Time, State: s.state(in.Digest)}
	}
	return out
}

// Devices implements console.Devices.
func (a *Data) Devices(ctx context.Context, q console.DeviceQuery) (console.DevicePage, error) {
	s, err := a.snapshot(ctx)
	if err != nil {
		return console.DevicePage{}, err
	}
	search := strings.ToLower(q.Search)
	var rows []console.Device
	total := 0
	for _, i := range s.devOrder {
		d := &s.inv.Devices[i]
		if (search != "" && !strings.Contains(s.lower[i], search)) || (q.Class != "" && d.Class != q.Class) || (q.Segment != "" && d.Segment != q.Segment) ||
			(q.Affected && len(s.devFind[s.lower[i]]) == 0) {
			continue
		}
		if total >= q.Offset && (q.Limit == 0 || len(rows) < q.Limit) {
			rows = append(rows, s.device(d))
		}
		total++
	}
	if rows == nil {
		rows = []console.Device{}
	}
	return console.DevicePage{Devices: rows, Total: total, Classes: s.invClass, Segments: s.segments}, nil
}

// maxDeviceEntries is how many of a device's latest log entries its page
// shows.
const maxDeviceEntries = 20

// Device implements console.Devices.
func (a *Data) Device(ctx context.Context, name string) (console.DeviceDetail, error) {
	s, err := a.snapshot(ctx)
	if err != nil {
		return console.DeviceDetail{}, err
	}
	d, ok := s.inv.Device(name)
	if !ok {
		return console.DeviceDetail{}, fmt.Errorf("device %q: %w", name, console.ErrNotFound)
	}
	out := console.DeviceDetail{Device: s.device(d), Findings: s.findings(s.devFind[strings.ToLower(d.Name)])}
	for _, in := range s.byDevice[strings.ToLower(d.Name)] {
		out.Installs = append(out.Installs, console.Install{Digest: in.Digest, Product: in.Product, Version: in.Version, Time: in.Time, State: s.state(in.Digest)})
	}
	var ring []console.Entry
	err = a.d.Log.Entries(ctx, attest.Filter{Device: d.Name}, func(e attest.Entry) error {
		if len(ring) == maxDeviceEntries {
			ring = ring[1:]
		}
		ring = append(ring, console.Entry{Index: e.Index, Time: e.Time, Artifact: e.Artifact, Device: e.Device, LeafHash: e.LeafHash, Envelope: e.Envelope})
		return nil
	})
	if err != nil {
		return console.DeviceDetail{}, err
	}
	slices.Reverse(ring)
	out.Entries = ring
	return out, nil
}

// --- log and evidence ----------------------------------------------------------

// LogPage implements console.Log.
func (a *Data) LogPage(ctx context.Context, q console.LogQuery) (console.LogPage, error) {
	l := a.d.Log
	cp := l.Checkpoint()
	pub, err := l.Signer().PublicKeyPEM()
	if err != nil {
		return console.LogPage{}, err
	}
	out := console.LogPage{Checkpoint: console.Checkpoint{Origin: cp.Origin, Size: cp.Size, Root: cp.Root, Note: cp.Note, PublicKey: pub, KeyID: l.Signer().KeyID()}}
	var idx []uint64 // newest first
	if q.Artifact == "" && q.Device == "" {
		out.Total = int(cp.Size)
		for i := q.Offset; i < int(cp.Size) && len(idx) < q.Limit; i++ {
			idx = append(idx, cp.Size-1-uint64(i))
		}
	} else {
		var all []uint64
		err := l.Entries(ctx, attest.Filter{Artifact: q.Artifact, Device: q.Device}, func(e attest.Entry) error {
			if e.Index < cp.Size {
				all = append(all, e.Index)
			}
			return nil
		})
		if err != nil {
			return console.LogPage{}, err
		}
		slices.Reverse(all)
		out.Total = len(all)
		idx = window(all, q.Page)
		if q.Limit == 0 {
			idx = nil
		}
	}
	for _, i := range idx {
		e, err := l.Entry(ctx, i)
		if err != nil {
			return console.LogPage{}, err
		}
		p, err := l.InclusionProof(ctx, i, cp.Size)
		if err != nil {
			return console.LogPage{}, err
		}
		out.Entries = append(out.Entries, console.Entry{Index: e.Index, Time: e.Time, Artifact: e.Artifact, Device: e.Device, LeafHash: e.LeafHash, Envelope: e.Envelope, Proof: p, TreeSize: cp.Size})
	}
	return out, nil
}

// packFile is an evidence pack on disk, removed when closed.
type packFile struct {
	*os.File
	dir string
}

func (p packFile) Close() error {
	err := p.File.Close()
	return errors.Join(err, os.RemoveAll(p.dir))
}

// Export implements console.Log.
func (a *Data) Export(ctx context.Context, q console.ExportQuery) (*console.Pack, error) {
	if err := os.MkdirAll(a.d.WorkDir, 0o700); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	dir, err := os.MkdirTemp(a.d.WorkDir, "console-export-")
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	p := filepath.Join(dir, "evidence.tar.gz")
	m, err := a.d.Log.Export(ctx, p, attest.ExportOptions{Filter: attest.Filter{Since: q.Since, Until: q.Until, Artifact: q.Artifact, Device: q.Device}})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	f, err := os.Open(p)
	if err == nil {
		var fi os.FileInfo
		if fi, err = f.Stat(); err == nil {
			return &console.Pack{ReadCloser: packFile{File: f, dir: dir}, Size: fi.Size(), TreeSize: m.TreeSize, Entries: m.Entries}, nil
		}
		f.Close()
	}
	os.RemoveAll(dir)
	return nil, fmt.Errorf("export: %w", err)
}

// --- tokens and audit -----------------------------------------------------------

// Authenticate implements console.Auth.
func (a *Data) Authenticate(ctx context.Context, secret string) (console.Principal, error) {
	p, err := a.d.Tokens.Authenticate(ctx, server.Secret(secret))
	if errors.Is(err, server.ErrUnauthenticated) {
		return console.Principal{}, console.ErrUnauthenticated
	}
	if err != nil {
		return console.Principal{}, err
	}
	return console.Principal{Name: p.Name, Role: string(p.Role)}, nil
}

// Audit implements console.Auth: the record goes to the API's audit table.
func (a *Data) Audit(ctx context.Context, e console.AuditEvent) error {
	return a.d.Tokens.Audit(ctx, server.AuditRecord{Time: e.Time, RequestID: e.RequestID, Token: e.Principal.Name, Role: server.Role(e.Principal.Role),
		Action: e.Action, Target: e.Target, Status: 200, Outcome: e.Outcome})
}

// --- the plots' data -------------------------------------------------------------

// plot returns an update's contacts and its class's baseline, from the
// groups read for this analysis (once per analysis).
func (a *Data) plot(ctx context.Context, s *snapshot, digest, class string) ([]console.Contact, console.Baseline, error) {
	s.groupsMu.Lock()
	defer s.groupsMu.Unlock()
	if !s.synced {
		if err := a.groups.sync(ctx, a.d.Fleet); err != nil {
			return nil, console.Baseline{}, err
		}
		s.synced = true
	}
	c, ok := s.contacts[digest]
	if !ok {
		dests := map[string]bool{}
		for _, i := range s.updFind[digest] {
			for _, d := range s.rep.Findings[i].Destinations {
				dests[d] = true
			}
		}
		c = a.groups.contacts(s.inv, s.firstSeen[digest], dests)
		s.contacts[digest] = c
	}
	end := s.cfg.Baseline.End
	if end.IsZero() {
		end = s.baseEnd // as the analysis: the baseline ends at the first installation
	}
	return c, a.groups.baseline(s.inv, class, s.classDevs[class], s.cfg.Baseline.Start, end), nil
}
