// Package adapter implements console.Data over wardgate's stores as they
// are today: the kept evaluations (gate.Records), the fleet analysis
// (gate.RiskCache's egress.Report), the egress store (installations and
// events), the fleet inventory and detection configuration, the verdict
// log (attest.Log) and the API tokens and audit table (server.Tokens).
//
// It is the one place that knows those types: when storage moves, only
// this file changes. Nothing here is stored anew; what no store keeps
// (each installer's hourly traffic to the new destinations, and the device
// class's hourly baseline, for the update page's plots) is computed from
// the egress store's events with the egress package's own rules
// (egress.Destination, public addresses, the baseline window), once per
// fleet analysis, and kept in memory.
//
// Imports: console, gate, egress, attest, server (tokens), evidence.
// Must not import: cobra, cmd/.
package adapter

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
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

// Deps are the stores the console reads. All are required.
type Deps struct {
	Records *gate.Records
	Risk    Reporter
	Fleet   egress.Store
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
	return &Data{d: d}, nil
}

// snapshotTTL bounds how long indexes built from one analysis are used
// when nothing visible changed (an installation that adds no device to
// any update's list).
const snapshotTTL = 5 * time.Minute

// snapKey tells one analysis from the next: a new batch of events, a new
// installer, a reload of the inventory or configuration changes it.
type snapKey struct {
	events, unresolved int64
	findings, installs int
	inv                *egress.Inventory
	cfg                *egress.Config
}

// snapshot is everything derived from one fleet analysis.
type snapshot struct {
	key   snapKey
	built time.Time
	rep   egress.Report
	inv   *egress.Inventory
	cfg   egress.Config

	risk      map[string]*egress.UpdateRisk
	byDevice  map[string][]egress.Installation // lower-case name -> time order
	firstSeen map[string]map[string]time.Time  // digest -> device -> first install
	classes   map[string][]string              // digest -> installer classes
	baseEnd   time.Time                        // first installation of all
	devFind   map[string][]int                 // lower-case name -> finding indexes
	updFind   map[string][]int                 // digest -> finding indexes
	newest    []int                            // finding indexes, newest first
	devOrder  []int                            // inventory indexes by name
	lower     []string                         // inventory names, lower case
	classN    map[string]int                   // devices per class
	segments  []string
	invClass  []string

	plotMu sync.Mutex
	plots  *plots

	rowsMu sync.Mutex
	rows   *updateRows
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
	key := snapKey{events: rep.Events, unresolved: rep.Unresolved, findings: len(rep.Findings), inv: a.d.Inventory(), cfg: a.d.Config()}
	for _, u := range rep.Updates {
		key.installs += len(u.Installed)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if s := a.snap; s != nil && s.key == key && time.Since(s.built) < snapshotTTL {
		return s, nil
	}
	s, err := a.build(ctx, key, rep)
	if err != nil {
		return nil, err
	}
	a.snap = s
	return s, nil
}

func (a *Data) build(ctx context.Context, key snapKey, rep egress.Report) (*snapshot, error) {
	ins, err := a.d.Fleet.Installations(ctx)
	if err != nil {
		return nil, fmt.Errorf("installations: %w", err)
	}
	inv := key.inv
	if inv == nil {
		inv, _ = egress.NewInventory(nil)
	}
	s := &snapshot{key: key, built: time.Now(), rep: rep, inv: inv, risk: map[string]*egress.UpdateRisk{}, byDevice: map[string][]egress.Installation{},
		firstSeen: map[string]map[string]time.Time{}, classes: map[string][]string{}, devFind: map[string][]int{}, updFind: map[string][]int{}, classN: map[string]int{}}
	if key.cfg != nil {
		s.cfg = *key.cfg
	}
	s.cfg = s.cfg.WithDefaults()
	for i := range rep.Updates {
		s.risk[rep.Updates[i].Digest] = &rep.Updates[i]
	}
	for _, in := range ins {
		k := strings.ToLower(in.Device)
		s.byDevice[k] = append(s.byDevice[k], in)
		m := s.firstSeen[in.Digest]
		if m == nil {
			m = map[string]time.Time{}
			s.firstSeen[in.Digest] = m
		}
		if t, ok := m[in.Device]; !ok || in.Time.Before(t) {
			m[in.Device] = in.Time
		}
		if s.baseEnd.IsZero() || in.Time.Before(s.baseEnd) {
			s.baseEnd = in.Time
		}
		if d, ok := inv.Device(in.Device); ok && !slices.Contains(s.classes[in.Digest], d.Class) {
			s.classes[in.Digest] = append(s.classes[in.Digest], d.Class)
		}
	}
	for _, l := range s.byDevice {
		slices.SortFunc(l, func(x, y egress.Installation) int { return x.Time.Compare(y.Time) })
	}
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
	segs := map[string]bool{}
	s.lower = make([]string, len(inv.Devices))
	s.devOrder = make([]int, len(inv.Devices))
	for i, d := range inv.Devices {
		s.lower[i] = strings.ToLower(d.Name)
		s.devOrder[i] = i
		s.classN[d.Class]++
		if d.Segment != "" {
			segs[d.Segment] = true
		}
	}
	slices.SortFunc(s.devOrder, func(x, y int) int { return strings.Compare(s.lower[x], s.lower[y]) })
	s.segments = sortedKeys(segs)
	for c := range s.classN {
		s.invClass = append(s.invClass, c)
	}
	slices.Sort(s.invClass)
	return s, nil
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
		p, err := s.plotData(ctx, a.d.Fleet)
		if err != nil {
			return console.UpdateDetail{}, err
		}
		out.Contacts = p.contacts[digest]
		out.Baseline = p.baseline(s, s.mainClass(digest, rec))
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

// plots is every flagged update's installer traffic to its findings'
// destinations, and each class's baseline, from one scan of the events.
type plots struct {
	contacts map[string][]console.Contact // digest -> contacts
	base     map[string]*baseAcc          // class -> baseline
	start    time.Time
	end      time.Time
}

type baseAcc struct {
	values []int64 // device-hour byte sums (a reservoir sample when many)
	seen   int64
	rng    *rand.Rand
}

// maxBaselineSample bounds the device-hours kept per class for the
// percentile (a uniform reservoir sample beyond it).
const maxBaselineSample = 200_000

func (b *baseAcc) add(v int64) {
	b.seen++
	if len(b.values) < maxBaselineSample {
		b.values = append(b.values, v)
		return
	}
	if j := b.rng.Int64N(b.seen); j < maxBaselineSample {
		b.values[j] = v
	}
}

func (p *plots) baseline(s *snapshot, class string) console.Baseline {
	out := console.Baseline{Class: class, Start: p.start, End: p.end, ClassDevices: s.classN[class]}
	b := p.base[class]
	if b == nil || len(b.values) == 0 {
		return out
	}
	v := slices.Clone(b.values)
	slices.Sort(v)
	rank := (95*len(v) + 99) / 100 // nearest rank
	out.DeviceHourP95, out.DeviceHours, out.HasObservation = v[max(0, rank-1)], b.seen, true
	return out
}

// maxContactHours bounds the hourly bins kept per contact (120 days).
const maxContactHours = 120 * 24

// isPublic is the egress analysis's rule for a public destination: the
// sensor's RemoteIPType when it gives one, else the address.
func isPublic(ev *egress.Event) bool {
	if ev.RemoteIPType != "" {
		return ev.RemoteIPType == "Public"
	}
	return egress.IsPublicIP(ev.RemoteIP)
}

func (s *snapshot) plotData(ctx context.Context, st egress.EventStore) (*plots, error) {
	s.plotMu.Lock()
	defer s.plotMu.Unlock()
	if s.plots != nil {
		return s.plots, nil
	}
	// What to collect: for each update with findings, its findings'
	// destinations and its installers.
	type target struct {
		dests map[string]bool
	}
	targets := map[string]*target{}
	for digest, idx := range s.updFind {
		t := &target{dests: map[string]bool{}}
		for _, i := range idx {
			for _, d := range s.rep.Findings[i].Destinations {
				t.dests[d] = true
			}
		}
		targets[digest] = t
	}
	byDev := map[string][]string{} // lower-case device -> flagged digests it installed
	classes := map[string]bool{}
	for digest := range targets {
		for dev := range s.firstSeen[digest] {
			k := strings.ToLower(dev)
			byDev[k] = append(byDev[k], digest)
			if d, ok := s.inv.Device(dev); ok {
				classes[d.Class] = true
			}
		}
	}
	p := &plots{contacts: map[string][]console.Contact{}, base: map[string]*baseAcc{}, start: s.cfg.Baseline.Start, end: s.cfg.Baseline.End}
	if p.end.IsZero() {
		p.end = s.baseEnd // as the analysis: the baseline ends at the first installation
	}
	type ckey struct{ digest, device, dest string }
	type cacc struct {
		c     console.Contact
		hours map[int64]*console.Hour
	}
	acc := map[ckey]*cacc{}
	// Device-hour sums of the baseline, flushed when the hour ends (events
	// come in time order).
	type dh struct{ device string }
	cur := map[dh]int64{}
	curClass := map[dh]string{}
	var curHour int64 = -1
	flush := func() {
		for k, v := range cur {
			c := curClass[k]
			b := p.base[c]
			if b == nil {
				b = &baseAcc{rng: rand.New(rand.NewPCG(1, 2))}
				p.base[c] = b
			}
			b.add(v)
		}
		clear(cur)
		clear(curClass)
	}
	inBase := func(t time.Time) bool {
		return (p.start.IsZero() || !t.Before(p.start)) && !p.end.IsZero() && t.Before(p.end)
	}
	err := st.Events(ctx, func(ev *egress.Event) error {
		if ev.ActionType != egress.ActionConnectionSuccess || !isPublic(ev) {
			return nil
		}
		dev, ok := s.inv.Resolve(ev)
		if !ok {
			return nil
		}
		hour := ev.Time.Unix() / 3600 * 3600
		if classes[dev.Class] && inBase(ev.Time) {
			if hour != curHour {
				flush()
				curHour = hour
			}
			k := dh{dev.Name}
			cur[k] += ev.SentBytes
			curClass[k] = dev.Class
		}
		digests := byDev[strings.ToLower(dev.Name)]
		if len(digests) == 0 {
			return nil
		}
		dest := egress.Destination(ev.RemoteURL, ev.RemoteIP)
		for _, d := range digests {
			if !targets[d].dests[dest] {
				continue
			}
			k := ckey{d, dev.Name, dest}
			a := acc[k]
			if a == nil {
				a = &cacc{c: console.Contact{Device: dev.Name, Destination: dest, Installed: s.firstSeen[d][dev.Name], First: ev.Time, Last: ev.Time}, hours: map[int64]*console.Hour{}}
				acc[k] = a
			}
			c := &a.c
			if ev.Time.Before(c.First) {
				c.First = ev.Time
			}
			if ev.Time.After(c.Last) {
				c.Last = ev.Time
			}
			c.Connections++
			c.Bytes += ev.SentBytes
			h := a.hours[hour]
			if h == nil {
				if len(a.hours) >= maxContactHours {
					continue
				}
				h = &console.Hour{Start: time.Unix(hour, 0).UTC()}
				a.hours[hour] = h
			}
			h.Connections++
			h.Bytes += ev.SentBytes
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("events for the plots: %w", err)
	}
	flush()
	for k, a := range acc {
		for _, h := range a.hours {
			a.c.Hours = append(a.c.Hours, *h)
		}
		slices.SortFunc(a.c.Hours, func(x, y console.Hour) int { return x.Start.Compare(y.Start) })
		p.contacts[k.digest] = append(p.contacts[k.digest], a.c)
	}
	for _, l := range p.contacts {
		slices.SortFunc(l, func(x, y console.Contact) int {
			return cmp.Or(x.Installed.Compare(y.Installed), strings.Compare(x.Device, y.Device), strings.Compare(x.Destination, y.Destination))
		})
	}
	s.plots = p
	return p, nil
}
