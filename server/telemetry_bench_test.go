package server

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/internal/proccpu"
)

// The telemetry benchmarks' load: a hospital group's sensors posting
// Defender JSON Lines for loadDevices devices (four classes, each device
// reaching five of forty public destinations and one private one), about
// 70 events per device-hour as bench/egress/gendefender writes them, on
// top of the fleet fixture (docs/egress.md, "Incremental analysis").
const (
	loadDevices = 600
	loadBatch   = 10_000 // lines per POST
)

var loadClasses = []string{"bench-pump", "bench-mri", "bench-hvac", "bench-pacs"}

type loadDevice struct {
	name, local string
	dests       []int
}

type loadGen struct {
	devs []loadDevice
	rng  *rand.Rand
	t    time.Time // simulated time of the next event
	step time.Duration
}

func newLoadGen(seed uint64) *loadGen {
	g := &loadGen{rng: rand.New(rand.NewPCG(seed, 7)), t: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)}
	for i := range loadDevices {
		d := loadDevice{name: fmt.Sprintf("HOSP-BENCH-%04d", i), local: fmt.Sprintf("10.200.%d.%d", i/250, 1+i%250)}
		for range 5 {
			d.dests = append(d.dests, g.rng.IntN(40))
		}
		d.dests = append(d.dests, 40+g.rng.IntN(4))
		g.devs = append(g.devs, d)
	}
	g.step = time.Hour / time.Duration(70*loadDevices)
	return g
}

// inventory is the fleet fixture's devices and the load's.
func (g *loadGen) inventory(tb testing.TB, base *egress.Inventory) *egress.Inventory {
	devs := slices.Clone(base.Devices)
	for i, d := range g.devs {
		devs = append(devs, egress.Device{Name: d.name, Addresses: []netip.Addr{netip.MustParseAddr(d.local)}, Class: loadClasses[i%len(loadClasses)], Segment: "bench"})
	}
	inv, err := egress.NewInventory(devs)
	if err != nil {
		tb.Fatal(err)
	}
	return inv
}

// batch writes the next n events.
func (g *loadGen) batch(n int) []byte {
	b := make([]byte, 0, n*260)
	for range n {
		d := &g.devs[g.rng.IntN(len(g.devs))]
		k := d.dests[g.rng.IntN(len(d.dests))]
		url, ip, typ := fmt.Sprintf("api.vendor%02d.example.com", k), fmt.Sprintf("52.%d.%d.%d", 10+k, k, 7), "Public"
		if k >= 40 {
			url, ip, typ = fmt.Sprintf("pacs%d.hospital.local", k-40), fmt.Sprintf("10.10.0.%d", k), "Private"
		}
		sent := int64(math.Exp(g.rng.NormFloat64()*1.2 + 7.5))
		b = append(b, `{"Timestamp":"`...)
		b = g.t.AppendFormat(b, "2006-01-02T15:04:05.000Z")
		b = append(b, `","DeviceName":"`...)
		b = append(b, d.name...)
		b = append(b, `","ActionType":"ConnectionSuccess","RemoteIP":"`...)
		b = append(b, ip...)
		b = append(b, `","RemotePort":443,"RemoteUrl":"`...)
		b = append(b, url...)
		b = append(b, `","RemoteIPType":"`...)
		b = append(b, typ...)
		b = append(b, `","LocalIP":"`...)
		b = append(b, d.local...)
		b = append(b, `","InitiatingProcessFileName":"svc","SentBytes":`...)
		b = strconv.AppendInt(b, sent, 10)
		b = append(b, `,"ReceivedBytes":`...)
		b = strconv.AppendInt(b, sent*3, 10)
		b = append(b, "}\n"...)
		g.t = g.t.Add(g.step)
	}
	return b
}

func withBigBatches() envOpt {
	return func(_ *Deps, opts *[]Option) {
		*opts = append(*opts, WithLimits(Limits{MaxTelemetryBytes: 16 << 20, TelemetryTimeout: time.Minute}))
	}
}

// post sends one telemetry batch and checks it was stored.
func (e *env) postTelemetry(body []byte) {
	r := e.do("POST", "/v1/telemetry", RoleSensor, "application/x-ndjson", bytes.NewReader(body), TelemetryFormatHeader, "defender-json")
	if r.status != 200 {
		e.t.Fatalf("telemetry: %d %s", r.status, r.body)
	}
}

// BenchmarkTelemetryHTTP: sustained ingest through POST /v1/telemetry,
// events stored and findings updated (each POST is answered once a fleet
// analysis includes its batch), four sensors posting at once, batches of
// 10,000 Defender JSON lines, on the fleet fixture plus the load's 600
// devices. Each iteration posts 8 new batches (generated outside the
// timer). Reports events/s, the groups the analysis holds, and the heap
// in use after a GC at the end (memory follows the groups, not the
// events).
func BenchmarkTelemetryHTTP(b *testing.B) { benchTelemetryHTTP(b, false) }

// BenchmarkTelemetryHTTPWholeHistory is BenchmarkTelemetryHTTP's
// baseline: each analysis reads every stored event (egress.AnalyzeStore),
// as every analysis did before the groups.
func BenchmarkTelemetryHTTPWholeHistory(b *testing.B) { benchTelemetryHTTP(b, true) }

func benchTelemetryHTTP(b *testing.B, wholeHistory bool) {
	e := newEnv(b, withBigBatches())
	e.wholeHistory.Store(wholeHistory)
	g := newLoadGen(1)
	e.inv.Store(g.inventory(b, e.inv.Load()))
	e.ingestInstallations()
	tel, err := os.ReadFile(fleet + "defender.jsonl")
	if err != nil {
		b.Fatal(err)
	}
	e.postTelemetry(tel)
	var events int64
	var cpu time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		batches := make(chan []byte, 8)
		for range 8 {
			batches <- g.batch(loadBatch)
		}
		close(batches)
		c0 := proccpu.Time()
		b.StartTimer()
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for body := range batches {
					e.postTelemetry(body)
				}
			})
		}
		wg.Wait()
		events += 8 * loadBatch
		b.StopTimer()
		cpu += proccpu.Time() - c0
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	// The process's CPU time (user+sys, every goroutine: the HTTP client,
	// the server, SQLite, the analyses) per event: what the shared
	// machine's load does not change.
	b.ReportMetric(float64(events)/cpu.Seconds(), "events/cpu-s")
	rep, err := e.risk.Sync(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	if rep.Events != events+int64(bytes.Count(tel, []byte("\n"))) {
		b.Fatalf("the analysis covers %d events, %d were posted", rep.Events, events)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
	groups := 0
	if _, err := e.st.Groups(b.Context(), 0, func(*egress.Group) error { groups++; return nil }); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(groups), "groups")
	b.ReportMetric(float64(events), "events")
}

// BenchmarkQuarantineUnderLoad: the time from a compromising batch posted
// to POST /v1/telemetry to its quarantine answered at POST
// /v1/admissions, while four sensors post the load as fast as the gate
// takes it. Each iteration is one sample on a fresh gate (built outside
// the timer) holding the fleet fixture's clean telemetry; the load starts
// before the timer. Reports p50 and p99 over the samples (and of the
// compromising POST alone) and the load's events/s while sampling.
func BenchmarkQuarantineUnderLoad(b *testing.B) {
	tel, err := os.ReadFile(fleet + "defender.jsonl")
	if err != nil {
		b.Fatal(err)
	}
	var clean, bad []string
	for _, l := range strings.SplitAfter(string(tel), "\n") {
		if strings.Contains(l, "raw.githubusercontent.com") {
			bad = append(bad, l)
		} else if l != "" {
			clean = append(clean, l)
		}
	}
	g := newLoadGen(2)
	pool := make([][]byte, 16)
	for i := range pool {
		pool[i] = g.batch(loadBatch)
	}
	var samples, posts []time.Duration // whole delay; the compromising POST alone
	// The compromising POST's parts: its commit (its turn at egress.db's
	// writer included) and its wait for an analysis that includes it; and
	// how long the analyses took meanwhile.
	var commits, analysisWaits, analyses []time.Duration
	var loadEvents atomic.Int64
	var sampling time.Duration
	var sampled int64 // load events committed while sampling
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		e := newEnv(b, withBigBatches())
		e.inv.Store(g.inventory(b, e.inv.Load()))
		var traceMu sync.Mutex
		var commit, analysisWait time.Duration
		e.srv.traceIngest = func(stored int64, c, a time.Duration) {
			if stored == int64(len(bad)) {
				traceMu.Lock()
				commit, analysisWait = c, a
				traceMu.Unlock()
			}
		}
		e.evaluate(RoleCI)
		e.ingestInstallations()
		e.postTelemetry([]byte(strings.Join(clean, "")))
		if a := e.admit("HOSP-IOT-PUMP-30", "infusion-pump", "2.3.0"); !a.Allow {
			b.Fatalf("clean telemetry denied: %+v", a)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var next atomic.Int64
		for range 4 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					// Each batch once per gate (a batch sent again adds nothing).
					j := next.Add(1) - 1
					if j >= int64(len(pool)) {
						<-stop
						return
					}
					e.postTelemetry(pool[j])
					loadEvents.Add(loadBatch)
				}
			})
		}
		for next.Load() < 4 {
			time.Sleep(time.Millisecond)
		}
		before := loadEvents.Load()
		b.StartTimer()
		t0 := time.Now()
		e.postTelemetry([]byte(strings.Join(bad, "")))
		posts = append(posts, time.Since(t0))
		traceMu.Lock()
		commits, analysisWaits = append(commits, commit), append(analysisWaits, analysisWait)
		traceMu.Unlock()
		for {
			a := e.admit("HOSP-IOT-PUMP-30", "infusion-pump", "2.3.0")
			if !a.Allow {
				if a.RiskState != "quarantined" {
					b.Fatalf("denied, not quarantined: %+v", a)
				}
				break
			}
			if time.Since(t0) > 60*time.Second {
				b.Fatal("no quarantine within 60s")
			}
		}
		d := time.Since(t0)
		analyses = append(analyses, e.risk.Stats().LastDuration)
		sampled += loadEvents.Load() - before
		samples = append(samples, d)
		b.StopTimer()
		sampling += d
		close(stop)
		wg.Wait()
		b.StartTimer()
	}
	q := func(l []time.Duration, p float64) float64 {
		l = slices.Sorted(slices.Values(l))
		return float64(l[min(len(l)-1, int(p*float64(len(l))))].Microseconds()) / 1000
	}
	b.ReportMetric(q(samples, 0.50), "p50-ms")
	b.ReportMetric(q(samples, 0.99), "p99-ms")
	// The POST alone (its batch committed behind the load's, then the
	// analysis that includes it): the rest is the admissions' answer.
	b.ReportMetric(q(posts, 0.50), "post-p50-ms")
	b.ReportMetric(q(posts, 0.99), "post-p99-ms")
	b.ReportMetric(q(commits, 0.50), "commit-p50-ms")
	b.ReportMetric(q(commits, 0.99), "commit-p99-ms")
	b.ReportMetric(q(analysisWaits, 0.50), "analysis-wait-p50-ms")
	b.ReportMetric(q(analysisWaits, 0.99), "analysis-wait-p99-ms")
	// The analysis that included it (wall, under the load).
	b.ReportMetric(q(analyses, 0.50), "analysis-p50-ms")
	b.ReportMetric(float64(sampled)/sampling.Seconds(), "load-events/s")
}
