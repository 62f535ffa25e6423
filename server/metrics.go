package server

import (
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wardgate/wardgate/gate"
	"github.com/wardgate/wardgate/internal/groupcommit"
	"github.com/wardgate/wardgate/store"
)

// Metrics in the Prometheus text exposition format (version 0.0.4),
// written by hand: a few counters and histograms do not need a client
// library, and the hot path stays free of its allocations.

// latencyBuckets are the request latency histogram's upper bounds, seconds.
var latencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

type histogram struct {
	counts []atomic.Uint64 // one per bucket, then +Inf
	sumNs  atomic.Uint64
}

func newHistogram() *histogram {
	return &histogram{counts: make([]atomic.Uint64, len(latencyBuckets)+1)}
}

func (h *histogram) observe(d time.Duration) {
	s := d.Seconds()
	i, _ := slices.BinarySearch(latencyBuckets, s)
	h.counts[i].Add(1)
	h.sumNs.Add(uint64(d.Nanoseconds()))
}

// counterVec is a counter with labels; the label values are joined with
// \xff into the key.
type counterVec struct {
	m sync.Map // string -> *atomic.Uint64
}

func (c *counterVec) add(n uint64, labels ...string) {
	k := strings.Join(labels, "\xff")
	v, ok := c.m.Load(k)
	if !ok {
		v, _ = c.m.LoadOrStore(k, new(atomic.Uint64))
	}
	v.(*atomic.Uint64).Add(n)
}

func (c *counterVec) each(fn func(labels []string, v uint64)) {
	var keys []string
	c.m.Range(func(k, _ any) bool { keys = append(keys, k.(string)); return true })
	slices.Sort(keys)
	for _, k := range keys {
		v, _ := c.m.Load(k)
		fn(strings.Split(k, "\xff"), v.(*atomic.Uint64).Load())
	}
}

type metrics struct {
	latency   map[string]*histogram // by route, fixed at registration
	requests  counterVec            // route, status
	decisions counterVec            // phase, result, reason
	// rolloutHolds counts rollout-hold answers by the device's ring;
	// rolloutActions admin rollout actions by action.
	rolloutHolds, rolloutActions counterVec
	events                       atomic.Uint64 // telemetry events stored
	inflight                     atomic.Int64  // evaluations running
	limits                       counterVec    // limit
	conns                        atomic.Int64  // connections open (with the connection limiter)
}

// limit counts one request or connection that reached a limit.
func (m *metrics) limit(name string) { m.limits.add(1, name) }

func newMetrics() *metrics { return &metrics{latency: map[string]*histogram{}} }

// decision counts one decision: allow with reason "none", or deny once per
// violation code.
func (m *metrics) decision(phase string, allow bool, codes []string) {
	if allow {
		m.decisions.add(1, phase, "allow", "none")
		return
	}
	if len(codes) == 0 {
		m.decisions.add(1, phase, "deny", "none")
	}
	for _, c := range codes {
		m.decisions.add(1, phase, "deny", c)
	}
}

func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`).Replace(s)
}

func fmtFloat(f float64) string {
	if math.IsInf(f, 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// findingCount is a findings gauge sample.
type findingCount struct {
	code, severity string
	n              int
}

func (m *metrics) write(w io.Writer, findings []findingCount, findingsErr bool, risk gate.RiskStats) {
	fmt.Fprintln(w, "# HELP wardgate_http_requests_total HTTP requests by route and status.")
	fmt.Fprintln(w, "# TYPE wardgate_http_requests_total counter")
	m.requests.each(func(l []string, v uint64) {
		fmt.Fprintf(w, "wardgate_http_requests_total{route=\"%s\",status=\"%s\"} %d\n", escapeLabel(l[0]), escapeLabel(l[1]), v)
	})
	fmt.Fprintln(w, "# HELP wardgate_http_request_duration_seconds HTTP request latency by route.")
	fmt.Fprintln(w, "# TYPE wardgate_http_request_duration_seconds histogram")
	routes := make([]string, 0, len(m.latency))
	for r := range m.latency {
		routes = append(routes, r)
	}
	slices.Sort(routes)
	for _, r := range routes {
		h := m.latency[r]
		var cum uint64
		for i := range h.counts {
			cum += h.counts[i].Load()
			le := math.Inf(1)
			if i < len(latencyBuckets) {
				le = latencyBuckets[i]
			}
			fmt.Fprintf(w, "wardgate_http_request_duration_seconds_bucket{route=\"%s\",le=\"%s\"} %d\n", escapeLabel(r), fmtFloat(le), cum)
		}
		fmt.Fprintf(w, "wardgate_http_request_duration_seconds_sum{route=\"%s\"} %s\n", escapeLabel(r), fmtFloat(float64(h.sumNs.Load())/1e9))
		fmt.Fprintf(w, "wardgate_http_request_duration_seconds_count{route=\"%s\"} %d\n", escapeLabel(r), cum)
	}
	fmt.Fprintln(w, "# HELP wardgate_decisions_total Gate decisions by phase (evaluate, admit), result (allow, deny) and reason code; a deny counts once per violation.")
	fmt.Fprintln(w, "# TYPE wardgate_decisions_total counter")
	m.decisions.each(func(l []string, v uint64) {
		fmt.Fprintf(w, "wardgate_decisions_total{phase=\"%s\",result=\"%s\",reason=\"%s\"} %d\n", escapeLabel(l[0]), escapeLabel(l[1]), escapeLabel(l[2]), v)
	})
	fmt.Fprintln(w, "# HELP wardgate_rollout_holds_total Admissions held (rollout-hold) by the ring of the device held.")
	fmt.Fprintln(w, "# TYPE wardgate_rollout_holds_total counter")
	m.rolloutHolds.each(func(l []string, v uint64) {
		fmt.Fprintf(w, "wardgate_rollout_holds_total{ring=\"%s\"} %d\n", escapeLabel(l[0]), v)
	})
	fmt.Fprintln(w, "# HELP wardgate_rollout_admin_actions_total Admin rollout actions (pause, resume, abort, force-widen).")
	fmt.Fprintln(w, "# TYPE wardgate_rollout_admin_actions_total counter")
	m.rolloutActions.each(func(l []string, v uint64) {
		fmt.Fprintf(w, "wardgate_rollout_admin_actions_total{action=\"%s\"} %d\n", escapeLabel(l[0]), v)
	})
	fmt.Fprintln(w, "# HELP wardgate_telemetry_events_ingested_total Telemetry events stored.")
	fmt.Fprintln(w, "# TYPE wardgate_telemetry_events_ingested_total counter")
	fmt.Fprintf(w, "wardgate_telemetry_events_ingested_total %d\n", m.events.Load())
	fmt.Fprintln(w, "# HELP wardgate_evaluations_in_flight Update evaluations running.")
	fmt.Fprintln(w, "# TYPE wardgate_evaluations_in_flight gauge")
	fmt.Fprintf(w, "wardgate_evaluations_in_flight %d\n", m.inflight.Load())
	fmt.Fprintln(w, "# HELP wardgate_limit_reached_total Requests and connections refused, cut off or made to wait by a limit (docs/serve.md, Limits).")
	fmt.Fprintln(w, "# TYPE wardgate_limit_reached_total counter")
	m.limits.each(func(l []string, v uint64) {
		fmt.Fprintf(w, "wardgate_limit_reached_total{limit=\"%s\"} %d\n", escapeLabel(l[0]), v)
	})
	fmt.Fprintf(w, "wardgate_limit_reached_total{limit=\"%s\"} %d\n", limitFleetWait, risk.WaitTimeouts)
	fmt.Fprintf(w, "wardgate_limit_reached_total{limit=\"%s\"} %d\n", limitFleetStaleness, risk.Refused)
	fmt.Fprintln(w, "# HELP wardgate_connections_open Client connections open.")
	fmt.Fprintln(w, "# TYPE wardgate_connections_open gauge")
	fmt.Fprintf(w, "wardgate_connections_open %d\n", m.conns.Load())
	fmt.Fprintln(w, "# HELP go_goroutines Goroutines that currently exist.")
	fmt.Fprintln(w, "# TYPE go_goroutines gauge")
	fmt.Fprintf(w, "go_goroutines %d\n", runtime.NumGoroutine())
	if n, ok := openFDs(); ok {
		fmt.Fprintln(w, "# HELP process_open_fds Open file descriptors.")
		fmt.Fprintln(w, "# TYPE process_open_fds gauge")
		fmt.Fprintf(w, "process_open_fds %d\n", n)
	}
	fmt.Fprintln(w, "# HELP wardgate_findings Current fleet findings by code and severity.")
	fmt.Fprintln(w, "# TYPE wardgate_findings gauge")
	for _, f := range findings {
		fmt.Fprintf(w, "wardgate_findings{code=\"%s\",severity=\"%s\"} %d\n", escapeLabel(f.code), escapeLabel(f.severity), f.n)
	}
	fmt.Fprintln(w, "# HELP wardgate_fleet_analysis_up Whether the fleet analysis behind the findings could run (1) or not (0).")
	fmt.Fprintln(w, "# TYPE wardgate_fleet_analysis_up gauge")
	up := 1
	if findingsErr {
		up = 0
	}
	fmt.Fprintf(w, "wardgate_fleet_analysis_up %d\n", up)
	fmt.Fprintln(w, "# HELP wardgate_fleet_analyses_total Fleet analyses run, and how many failed.")
	fmt.Fprintln(w, "# TYPE wardgate_fleet_analyses_total counter")
	fmt.Fprintf(w, "wardgate_fleet_analyses_total{result=\"ok\"} %d\n", risk.Analyses-risk.Failures)
	fmt.Fprintf(w, "wardgate_fleet_analyses_total{result=\"failed\"} %d\n", risk.Failures)
	fmt.Fprintln(w, "# HELP wardgate_fleet_analysis_duration_seconds How long the last fleet analysis took.")
	fmt.Fprintln(w, "# TYPE wardgate_fleet_analysis_duration_seconds gauge")
	fmt.Fprintf(w, "wardgate_fleet_analysis_duration_seconds %s\n", fmtFloat(risk.LastDuration.Seconds()))
	fmt.Fprintln(w, "# HELP wardgate_fleet_analysis_age_seconds Age of the analysis admissions are answered from.")
	fmt.Fprintln(w, "# TYPE wardgate_fleet_analysis_age_seconds gauge")
	fmt.Fprintf(w, "wardgate_fleet_analysis_age_seconds %s\n", fmtFloat(risk.Age.Seconds()))
	fmt.Fprintln(w, "# HELP wardgate_fleet_stale_answers_total Answers from an analysis that misses stored telemetry (within the staleness bound).")
	fmt.Fprintln(w, "# TYPE wardgate_fleet_stale_answers_total counter")
	fmt.Fprintf(w, "wardgate_fleet_stale_answers_total %d\n", risk.StaleAnswers)
}

// openFDs counts the process's open file descriptors where the system
// lists them (/proc/self/fd on Linux, /dev/fd elsewhere).
func openFDs() (int, bool) {
	for _, d := range []string{"/proc/self/fd", "/dev/fd"} {
		f, err := os.Open(d)
		if err != nil {
			continue
		}
		names, err := f.Readdirnames(-1)
		f.Close()
		if err == nil {
			return len(names) - 1, true // less the directory just opened
		}
	}
	return 0, false
}

// writeCommitMetrics writes the store's group commits: a histogram of
// their durations and the requests they held, by committer.
func writeCommitMetrics(w io.Writer, cs []store.CommitStats) {
	fmt.Fprintln(w, "# HELP wardgate_store_commit_duration_seconds Store commits (one transaction and its fsync, for a batch of writes) by group committer; a write on the admission path waits for its commit.")
	fmt.Fprintln(w, "# TYPE wardgate_store_commit_duration_seconds histogram")
	for _, c := range cs {
		var cum uint64
		for i, n := range c.Buckets {
			cum += n
			le := "+Inf"
			if i < len(groupcommit.DurationBuckets) {
				le = fmtFloat(groupcommit.DurationBuckets[i].Seconds())
			}
			fmt.Fprintf(w, "wardgate_store_commit_duration_seconds_bucket{writer=\"%s\",le=\"%s\"} %d\n", escapeLabel(c.Writer), le, cum)
		}
		fmt.Fprintf(w, "wardgate_store_commit_duration_seconds_sum{writer=\"%s\"} %s\n", escapeLabel(c.Writer), fmtFloat(c.Sum.Seconds()))
		fmt.Fprintf(w, "wardgate_store_commit_duration_seconds_count{writer=\"%s\"} %d\n", escapeLabel(c.Writer), cum)
	}
	fmt.Fprintln(w, "# HELP wardgate_store_commit_max_seconds The longest store commit since the start, by group committer.")
	fmt.Fprintln(w, "# TYPE wardgate_store_commit_max_seconds gauge")
	for _, c := range cs {
		fmt.Fprintf(w, "wardgate_store_commit_max_seconds{writer=\"%s\"} %s\n", escapeLabel(c.Writer), fmtFloat(c.Max.Seconds()))
	}
	fmt.Fprintln(w, "# HELP wardgate_store_commit_writes_total Writes committed or failed by the store's group commits (several share one commit under load).")
	fmt.Fprintln(w, "# TYPE wardgate_store_commit_writes_total counter")
	for _, c := range cs {
		fmt.Fprintf(w, "wardgate_store_commit_writes_total{writer=\"%s\"} %d\n", escapeLabel(c.Writer), c.Requests)
	}
	fmt.Fprintln(w, "# HELP wardgate_store_commit_failures_total Store commits that failed (every write of the batch failed with it).")
	fmt.Fprintln(w, "# TYPE wardgate_store_commit_failures_total counter")
	for _, c := range cs {
		fmt.Fprintf(w, "wardgate_store_commit_failures_total{writer=\"%s\"} %d\n", escapeLabel(c.Writer), c.Failed)
	}
}

// writeReplicaMetrics writes how this replica follows the others' changes
// (a store with a change feed: PostgreSQL).
func writeReplicaMetrics(w io.Writer, rs gate.ReplicaStats) {
	fmt.Fprintln(w, "# HELP wardgate_replica_lag_seconds How far behind the other replicas' commits this replica may be (the age of its change feed's last sync).")
	fmt.Fprintln(w, "# TYPE wardgate_replica_lag_seconds gauge")
	fmt.Fprintf(w, "wardgate_replica_lag_seconds %s\n", fmtFloat(rs.Lag.Seconds()))
	fmt.Fprintln(w, "# HELP wardgate_replica_lag_bound_seconds The lag past which this replica's caches are not used.")
	fmt.Fprintln(w, "# TYPE wardgate_replica_lag_bound_seconds gauge")
	fmt.Fprintf(w, "wardgate_replica_lag_bound_seconds %s\n", fmtFloat(rs.Bound.Seconds()))
	fmt.Fprintln(w, "# HELP wardgate_replica_caches_bypassed Whether the caches are bypassed (1: the lag is past the bound, the change feed is down or behind) or used (0).")
	fmt.Fprintln(w, "# TYPE wardgate_replica_caches_bypassed gauge")
	bypassed := 0
	if rs.Lag > rs.Bound {
		bypassed = 1
	}
	fmt.Fprintf(w, "wardgate_replica_caches_bypassed %d\n", bypassed)
	fmt.Fprintln(w, "# HELP wardgate_replica_changes_total Other replicas' changes applied to this replica's caches.")
	fmt.Fprintln(w, "# TYPE wardgate_replica_changes_total counter")
	fmt.Fprintf(w, "wardgate_replica_changes_total %d\n", rs.Changes)
	fmt.Fprintln(w, "# HELP wardgate_replica_resets_total Change feed (re)connections: every cache dropped.")
	fmt.Fprintln(w, "# TYPE wardgate_replica_resets_total counter")
	fmt.Fprintf(w, "wardgate_replica_resets_total %d\n", rs.Resets)
	fmt.Fprintln(w, "# HELP wardgate_replica_publish_failures_total Risk changes and trust reloads this replica could not announce to the others.")
	fmt.Fprintln(w, "# TYPE wardgate_replica_publish_failures_total counter")
	fmt.Fprintf(w, "wardgate_replica_publish_failures_total %d\n", rs.PublishFailures)
}
