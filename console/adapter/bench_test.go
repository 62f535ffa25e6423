package adapter_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardgate/wardgate/attest"
	"github.com/wardgate/wardgate/console"
	"github.com/wardgate/wardgate/console/adapter"
	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/evidence"
	"github.com/wardgate/wardgate/gate"
	"github.com/wardgate/wardgate/internal/benchfleet"
	"github.com/wardgate/wardgate/policy"
	"github.com/wardgate/wardgate/server"
	"github.com/wardgate/wardgate/store"
	"github.com/wardgate/wardgate/store/sqlite"
)

// The console at the scale the issue names (internal/benchfleet): 10,000 evaluated updates,
// 1,000,000 telemetry events (findings among them) and 100,000 devices,
// in the real stores (kept evaluations on disk, the SQLite egress store,
// the SQLite verdict log, the token database) behind the real adapter.
// Each benchmark renders one page through the console's handler with a
// signed-in session; the fleet analysis and the adapter's indexes are
// built once before (they are per analysis, not per page: see
// BenchmarkBuild for that cost).

type benchEnv struct {
	handler http.Handler
	cookie  *http.Cookie
	data    *adapter.Data
	deps    adapter.Deps
	risk    *gate.RiskCache
	db      *sqlite.DB
	inv     *egress.Inventory
	cfg     egress.Config
	flagged string // a quarantined update
	device  string
	build   time.Duration
}

var (
	benchOnce sync.Once
	bench     *benchEnv
	benchErr  error
	benchDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

func buildBench(ctx context.Context) (*benchEnv, error) {
	dir, err := os.MkdirTemp("", "wardgate-console-bench-")
	if err != nil {
		return nil, err
	}
	benchDir = dir
	// The fleet (internal/benchfleet): 100,000 devices in 10 classes.
	devs := benchfleet.Inventory()
	inv, err := egress.NewInventory(devs)
	if err != nil {
		return nil, err
	}
	cfg := benchfleet.Config()
	db, err := sqlite.Open(ctx, dir)
	if err != nil {
		return nil, err
	}
	// Kept evaluations: 10,000 records, written as the gate writes them.
	for i := range benchfleet.Updates {
		d := benchfleet.Digest(i)
		rec := gate.Record{Evidence: evidence.Evidence{Schema: evidence.Schema, EvaluatedAt: benchfleet.Start.Add(time.Duration(i) * time.Minute),
			Artifact: evidence.Artifact{Kind: "blob", Digest: d, Vendor: fmt.Sprintf("vendor-%d", i%50), Product: fmt.Sprintf("product-%d", i%500), Version: fmt.Sprintf("1.%d.0", i),
				DeviceClasses: []string{fmt.Sprintf("class-%d", i%benchfleet.Classes)}},
			SBOM: &evidence.SBOM{Source: "vendor", Format: "cyclonedx-json", Components: []evidence.Component{{Name: "openssl", Version: "3.0.7"}, {Name: "busybox", Version: "1.36"}}}},
			Decision: policy.Decision{Allow: i%7 != 0, PolicyDigest: "sha256:00"}, RecordedAt: benchfleet.Start.Add(time.Duration(i) * time.Minute)}
		if i%7 == 0 {
			rec.Decision.Violations = []policy.Violation{{Code: "sbom-drift", Rule: "sbom", Message: "the vendor SBOM does not match", Severity: "high"}}
		}
		b, err := json.Marshal(rec)
		if err != nil {
			return nil, err
		}
		a := rec.Evidence.Artifact
		if err := db.PutEvaluation(ctx, store.Evaluation{Digest: d, Vendor: a.Vendor, Product: a.Product, Version: a.Version, RecordedAt: rec.RecordedAt, Record: b}); err != nil {
			return nil, err
		}
	}
	recs, err := gate.OpenRecords(ctx, db)
	if err != nil {
		return nil, err
	}
	// Installations: each device installs one update (10 per update) on
	// day 15; events: 10 per device, in time order, the installers of
	// every 100th update reaching a new destination days after the
	// install.
	if err := db.RecordInstallations(ctx, benchfleet.Installations()); err != nil {
		return nil, err
	}
	_, err = db.Ingest(ctx, egress.Source{Name: "bench", Digest: "sha256:bench"}, func(add func(*egress.Event) error) error {
		return benchfleet.EachEvent(devs, add)
	})
	if err != nil {
		return nil, err
	}
	live := egress.NewLive() // the gate's incremental analysis (gate.Open)
	risk, err := gate.NewRiskCache(func(ctx context.Context) (egress.Report, error) { return live.Analyze(ctx, db, inv, cfg) }, time.Hour, nil)
	if err != nil {
		return nil, err
	}
	// The verdict log: one entry per update.
	key, _, err := attest.Keygen(filepath.Join(dir, "signing"))
	if err != nil {
		return nil, err
	}
	signer, err := attest.LoadSigner(ctx, key)
	if err != nil {
		return nil, err
	}
	lg, err := attest.OpenLog(ctx, db, signer, "")
	if err != nil {
		return nil, err
	}
	var items []attest.Item
	for i := range benchfleet.Updates {
		st, err := attest.NewStatement(attest.Verdict{SubjectDigest: map[string]string{"sha256": benchfleet.Digest(i)[7:]}, Passed: true, Time: benchfleet.Start}, "bench")
		if err != nil {
			return nil, err
		}
		env, err := signer.SignStatement(ctx, st)
		if err != nil {
			return nil, err
		}
		items = append(items, attest.Item{Envelope: env, Artifact: benchfleet.Digest(i), Time: benchfleet.Start})
		if len(items) == 1000 {
			if _, err := lg.AppendBatch(ctx, items); err != nil {
				return nil, err
			}
			items = items[:0]
		}
	}
	tokens := server.NewTokens(db)
	tok, err := tokens.Create(ctx, server.RoleAuditor, "bench")
	if err != nil {
		return nil, err
	}
	deps := adapter.Deps{Records: recs, Risk: risk, Fleet: db, Inventory: func() *egress.Inventory { return inv },
		Config: func() *egress.Config { return &cfg }, Log: lg, Tokens: tokens, WorkDir: filepath.Join(dir, "tmp")}
	data, err := adapter.New(deps)
	if err != nil {
		return nil, err
	}
	con, err := console.New(data)
	if err != nil {
		return nil, err
	}
	e := &benchEnv{handler: con.Handler(), data: data, deps: deps, risk: risk, db: db, inv: inv, cfg: cfg, flagged: benchfleet.Digest(0), device: benchfleet.Device(0)}
	start := time.Now()
	d, err := data.Update(ctx, e.flagged) // the analysis, the indexes and the plots' groups
	if err != nil {
		return nil, err
	}
	if len(d.Findings) == 0 || len(d.Contacts) == 0 || !d.Baseline.HasObservation {
		return nil, fmt.Errorf("the flagged update has %d findings, %d contacts, baseline %+v: its page would draw no plot", len(d.Findings), len(d.Contacts), d.Baseline)
	}
	e.build = time.Since(start)
	// Sign in.
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ui/signin", nil))
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(rec.Body.String())[1]
	req := httptest.NewRequest(http.MethodPost, "/ui/signin", strings.NewReader(url.Values{"csrf": {csrf}, "token": {string(tok)}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range rec.Result().Cookies() {
		req.AddCookie(c)
	}
	rec = httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	for _, c := range rec.Result().Cookies() {
		if c.Name == "wardgate_session" {
			e.cookie = c
		}
	}
	if e.cookie == nil {
		return nil, fmt.Errorf("sign-in: %d %s", rec.Code, rec.Body.String())
	}
	return e, nil
}

func loadBench(b *testing.B) *benchEnv {
	b.Helper()
	benchOnce.Do(func() {
		b.Setenv(attest.PasswordEnv, "")
		start := time.Now()
		bench, benchErr = buildBench(context.Background())
		if benchErr == nil {
			fmt.Fprintf(os.Stderr, "console bench data: %d updates, %d devices, %d events in %s; first update page (analysis, indexes, plot scan) %s\n",
				benchfleet.Updates, benchfleet.Devices, benchfleet.Events, time.Since(start).Round(time.Second), bench.build.Round(time.Millisecond))
		}
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return bench
}

func (e *benchEnv) get(b *testing.B, path string) int {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.AddCookie(e.cookie)
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		b.Fatalf("GET %s: %d\n%.500s", path, rec.Code, rec.Body.String())
	}
	return rec.Body.Len()
}

// BenchmarkPage renders each page; B/page is the size of the HTML (or SVG).
func BenchmarkPage(b *testing.B) {
	e := loadBench(b)
	for _, p := range []struct{ name, path string }{
		{"updates", "/ui/updates"},
		{"updates-quarantined-by-installed", "/ui/updates?state=quarantined&sort=installed"},
		{"updates-last-page", fmt.Sprintf("/ui/updates?page=%d", benchfleet.Updates/console.PageSize)},
		{"update", "/ui/updates/" + e.flagged},
		{"contacts.svg", "/ui/updates/" + e.flagged + "/contacts.svg"},
		{"volume.svg", "/ui/updates/" + e.flagged + "/volume.svg"},
		{"findings", "/ui/findings"},
		{"findings-of-a-class", "/ui/findings?class=class-3&severity=quarantined"},
		{"devices", "/ui/devices"},
		{"devices-search", "/ui/devices?q=0999"},
		{"device", "/ui/device?name=" + e.device},
		{"log", "/ui/log"},
		{"log-of-an-artifact", "/ui/log?artifact=" + e.flagged},
	} {
		b.Run(p.name, func(b *testing.B) {
			size := e.get(b, p.path)
			b.ReportAllocs()
			for b.Loop() {
				e.get(b, p.path)
			}
			b.ReportMetric(float64(size), "B/page")
		})
	}
}

// BenchmarkBuild is what a new console pays for its first update page
// over an analysis already made: the installations, the adapter's
// indexes and every group the plots read (the analysis itself is the
// risk cache's, shared with the gate: BenchmarkColdStart).
func BenchmarkBuild(b *testing.B) {
	e := loadBench(b)
	ctx := context.Background()
	for b.Loop() {
		d, err := adapter.New(e.deps)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := d.Update(ctx, e.flagged); err != nil {
			b.Fatal(err)
		}
	}
}

// batchSeq numbers the batches the benchmarks ingest.
var batchSeq int

// ingestBatch stores a batch of 100 events one hour after the previous
// one: the flagged update's 10 installers reach its new destination
// again, 90 other devices their vendor cloud; then the fleet analysis
// covers it (as the server answers a batch only after it).
func (e *benchEnv) ingestBatch(b *testing.B) {
	b.Helper()
	ctx := context.Background()
	batchSeq++
	at := benchfleet.Start.Add(60*24*time.Hour + time.Duration(batchSeq)*time.Hour)
	_, err := e.db.Ingest(ctx, egress.Source{Name: "batch", Digest: fmt.Sprintf("sha256:batch-%d-%d", time.Now().UnixNano(), batchSeq)}, func(add func(*egress.Event) error) error {
		for j := range 100 {
			i := j * benchfleet.Updates // the installers of update 0
			ev := &egress.Event{Time: at.Add(time.Duration(j) * time.Second), ActionType: egress.ActionConnectionSuccess, RemoteIPType: "Public", RemotePort: 443, Protocol: "Tcp",
				RemoteURL: "cdn.c2-0.net", RemoteIP: netip.AddrFrom4([4]byte{198, 51, 0, 0}), SentBytes: 4000}
			if j >= 10 {
				i = j*997 + batchSeq
				ev.RemoteURL, ev.RemoteIP, ev.SentBytes = fmt.Sprintf("cloud.vendor-%d.com", i%benchfleet.Classes), netip.AddrFrom4([4]byte{203, 0, 113, byte(i % benchfleet.Classes)}), 1200
			}
			ev.DeviceName = benchfleet.Device(i % benchfleet.Devices)
			if err := add(ev); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	e.risk.Invalidate()
	if _, err := e.risk.Sync(ctx); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkFirstPage renders each page once after something changed:
// a telemetry batch (and its analysis), a new evaluation of an update, a
// new installation. The change and the analysis are not timed (the
// analysis is the gate's, shared: analysis-ms reports it); the page is,
// with everything the adapter does to follow the change.
func BenchmarkFirstPage(b *testing.B) {
	e := loadBench(b)
	ctx := context.Background()
	pages := []struct{ name, path string }{
		{"updates", "/ui/updates"},
		{"update", "/ui/updates/" + e.flagged},
		{"contacts.svg", "/ui/updates/" + e.flagged + "/contacts.svg"},
		{"findings", "/ui/findings"},
		{"devices", "/ui/devices"},
		{"device", "/ui/device?name=" + e.device},
	}
	for _, p := range pages {
		b.Run("telemetry/"+p.name, func(b *testing.B) {
			var analysis time.Duration
			for range b.N {
				b.StopTimer()
				start := time.Now()
				e.ingestBatch(b)
				analysis += time.Since(start)
				b.StartTimer()
				e.get(b, p.path)
			}
			b.ReportMetric(float64(analysis.Milliseconds())/float64(b.N), "analysis-ms")
		})
	}
	rec, _ := e.deps.Records.Get(benchfleet.Digest(1))
	for _, p := range pages[:2] {
		b.Run("evaluation/"+p.name, func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				out := &gate.Outcome{Evidence: rec.Evidence, Decision: rec.Decision, Evaluated: true}
				out.Evidence.EvaluatedAt = time.Now().UTC()
				if err := e.deps.Records.Put(ctx, out); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				e.get(b, p.path)
			}
		})
	}
	b.Run("installation/updates", func(b *testing.B) {
		for i := range b.N {
			b.StopTimer()
			in := egress.Installation{Device: benchfleet.Device(i % benchfleet.Devices), Digest: benchfleet.Digest(benchfleet.Updates - 1 - i%benchfleet.Updates), Product: "product-x", Version: "9.9.9",
				Time: benchfleet.Start.Add(90*24*time.Hour + time.Duration(batchSeq)*time.Hour + time.Duration(i)*time.Second)}
			if err := e.db.RecordInstallation(ctx, in); err != nil {
				b.Fatal(err)
			}
			e.risk.Invalidate()
			if _, err := e.risk.Sync(ctx); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			e.get(b, "/ui/updates")
		}
	})
}

// BenchmarkColdStart is a gate and console started on the stored fleet:
// the first fleet analysis (analysis-ms: egress.Live reads every group)
// and the console's first update page (page-ms: the installations, the
// indexes and every group the plots read), each from nothing.
func BenchmarkColdStart(b *testing.B) {
	e := loadBench(b)
	ctx := context.Background()
	var analysis, page time.Duration
	for range b.N {
		live := egress.NewLive()
		risk, err := gate.NewRiskCache(func(ctx context.Context) (egress.Report, error) { return live.Analyze(ctx, e.db, e.inv, e.cfg) }, time.Hour, nil)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if _, err := risk.Sync(ctx); err != nil {
			b.Fatal(err)
		}
		analysis += time.Since(start)
		deps := e.deps
		deps.Risk = risk
		d, err := adapter.New(deps)
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		if _, err := d.Update(ctx, e.flagged); err != nil {
			b.Fatal(err)
		}
		page += time.Since(start)
	}
	b.ReportMetric(float64(analysis.Milliseconds())/float64(b.N), "analysis-ms")
	b.ReportMetric(float64(page.Milliseconds())/float64(b.N), "page-ms")
}
