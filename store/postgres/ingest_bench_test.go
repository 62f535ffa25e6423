package postgres_test

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/store"
)

// fleetLoad generates events as server's BenchmarkTelemetryHTTP posts
// them (bench/egress/gendefender's shape): 600 devices, each reaching five
// of forty public destinations and one of four private ones, about 70
// events per device-hour, in time order.
type fleetLoad struct {
	devs []fleetDevice
	rng  *rand.Rand
	t    time.Time
	step time.Duration
}

type fleetDevice struct {
	name  string
	local netip.Addr
	dests []int
}

func newFleetLoad(seed uint64) *fleetLoad {
	const devices = 600
	g := &fleetLoad{rng: rand.New(rand.NewPCG(seed, 7)), t: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)}
	for i := range devices {
		d := fleetDevice{name: fmt.Sprintf("HOSP-BENCH-%04d", i), local: netip.AddrFrom4([4]byte{10, 200, byte(i / 250), byte(1 + i%250)})}
		for range 5 {
			d.dests = append(d.dests, g.rng.IntN(40))
		}
		d.dests = append(d.dests, 40+g.rng.IntN(4))
		g.devs = append(g.devs, d)
	}
	g.step = time.Hour / time.Duration(70*devices)
	return g
}

func (g *fleetLoad) batch(n int) []egress.Event {
	out := make([]egress.Event, n)
	for i := range out {
		d := &g.devs[g.rng.IntN(len(g.devs))]
		k := d.dests[g.rng.IntN(len(d.dests))]
		url, ip, typ := fmt.Sprintf("api.vendor%02d.example.com", k), netip.AddrFrom4([4]byte{52, byte(10 + k), byte(k), 7}), "Public"
		if k >= 40 {
			url, ip, typ = fmt.Sprintf("pacs%d.hospital.local", k-40), netip.AddrFrom4([4]byte{10, 10, 0, byte(k)}), "Private"
		}
		sent := int64(math.Exp(g.rng.NormFloat64()*1.2 + 7.5))
		out[i] = egress.Event{Time: g.t, DeviceName: d.name, ActionType: egress.ActionConnectionSuccess, RemoteIP: ip, RemotePort: 443,
			RemoteURL: url, RemoteIPType: typ, LocalIP: d.local, LocalPort: uint16(40000 + g.rng.IntN(20000)), Protocol: "Tcp",
			Process: "svc", SentBytes: sent, ReceivedBytes: sent * 3}
		g.t = g.t.Add(g.step)
	}
	return out
}

func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkIngestFleet ingests batches of 10,000 events of a fleet
// (fleetLoad: about 3,000 groups changed per batch), one source each, as
// POST /v1/telemetry's sensors send them: the store's side of the ingest
// path (events stored, groups merged, commit). It reports events/s,
// events/cpu-s (this process's user+sys: on PostgreSQL the server's CPU is
// not in it) and the bytes stored per event, in the events' tables and in
// the groups' (tables, indexes and TOAST).
func BenchmarkIngestFleet(b *testing.B) {
	locs := map[string]func(b *testing.B) string{"sqlite": func(b *testing.B) string { return b.TempDir() }}
	if server := os.Getenv("WARDGATE_TEST_POSTGRES"); server != "" {
		locs["postgres"] = func(b *testing.B) string { return schemaDSN(b, server) }
	}
	for _, name := range []string{"sqlite", "postgres"} {
		loc, ok := locs[name]
		if !ok {
			continue
		}
		b.Run(name, func(b *testing.B) {
			const perBatch = 10_000
			where := loc(b)
			s := openStore(b, where)
			g := newFleetLoad(1)
			var cpu time.Duration
			n := 0
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				evs := g.batch(perBatch)
				src := egress.Source{Name: fmt.Sprint("batch-", i), Digest: fmt.Sprintf("sha256:%064x", i+1)}
				c0 := processCPU(b)
				b.StartTimer()
				added, err := s.Ingest(b.Context(), src, func(add func(*egress.Event) error) error {
					for j := range evs {
						if err := add(&evs[j]); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil || !added {
					b.Fatal(added, err)
				}
				b.StopTimer()
				cpu += processCPU(b) - c0
				n += perBatch
				b.StartTimer()
			}
			b.StopTimer()
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(n)/cpu.Seconds(), "events/cpu-s")
			ev, gr := storedBytes(b, name, s, where)
			b.ReportMetric(float64(ev)/float64(n), "event-B/event")
			b.ReportMetric(float64(gr)/float64(n), "group-B/event")
		})
	}
}

// storedBytes is what the telemetry takes in s: the events' tables and
// the groups', with their indexes.
func storedBytes(b *testing.B, backend string, s store.Store, where string) (events, groups int64) {
	ctx := context.Background()
	switch backend {
	case "sqlite":
		p, ok := s.(interface{ Paths() []string })
		if !ok {
			b.Fatal("the SQLite store does not list its files")
		}
		for _, path := range p.Paths() {
			if filepath.Base(path) != "egress.db" {
				continue
			}
			db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			rows, err := db.QueryContext(ctx, `SELECT name, sum(pgsize) FROM dbstat GROUP BY name`)
			if err != nil {
				b.Fatal(err)
			}
			defer rows.Close()
			for rows.Next() {
				var name string
				var size int64
				if err := rows.Scan(&name, &size); err != nil {
					b.Fatal(err)
				}
				switch {
				case strings.HasPrefix(name, "event_groups"):
					groups += size
				case strings.HasPrefix(name, "event"):
					events += size
				}
			}
			if err := rows.Err(); err != nil {
				b.Fatal(err)
			}
		}
	case "postgres":
		c, err := pgx.Connect(ctx, where)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close(ctx)
		err = c.QueryRow(ctx, `SELECT
			coalesce(sum(pg_total_relation_size(c.oid)) FILTER (WHERE c.relname <> 'telemetry_groups' AND c.relname <> 'telemetry_sources'), 0),
			coalesce(sum(pg_total_relation_size(c.oid)) FILTER (WHERE c.relname = 'telemetry_groups'), 0)
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname LIKE 'telemetry\_%'`).Scan(&events, &groups)
		if err != nil {
			b.Fatal(err)
		}
	}
	return events, groups
}
