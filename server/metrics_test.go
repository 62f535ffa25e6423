package server

import (
	"bytes"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/wardgate/wardgate/internal/groupcommit"
	"github.com/wardgate/wardgate/store"
)

// The commit histogram is cumulative, in seconds, one series per
// committer.
func TestCommitMetrics(t *testing.T) {
	s := groupcommit.Stats{Commits: 4, Failed: 1, Requests: 9, Sum: 131500 * time.Microsecond, Max: 120 * time.Millisecond}
	s.Buckets[0] = 2 // ≤ 0.5 ms
	s.Buckets[3] = 1 // ≤ 5 ms
	s.Buckets[8] = 1 // ≤ 250 ms
	var b bytes.Buffer
	writeCommitMetrics(&b, []store.CommitStats{{Writer: "wardgate.db", Stats: s}})
	want := `# HELP wardgate_store_commit_duration_seconds Store commits (one transaction and its fsync, for a batch of writes) by group committer; a write on the admission path waits for its commit.
# TYPE wardgate_store_commit_duration_seconds histogram
wardgate_store_commit_duration_seconds_bucket{writer="wardgate.db",le="0.0005"} 2
wardgate_store_commit_duration_seconds_bucket{writer="wardgate.db",le="0.001"} 2
wardgate_store_commit_duration_seconds_bucket{writer="wardgate.db",le="0.0025"} 2
wardgate_store_commit_duration_seconds_bucket{writer="wardgate.db",le="0.005"} 3
wardgate_store_commit_duration_seconds_bucket{writer="wardgate.db",le="0.01"} 3
wardgate_store_commit_duration_seconds_bucket{writer="wardgate.db",le="0.025"} 3
wardgate_store_commit_duration_seconds_bucket{writer="wardgate.db",le="0.05"} 3
wardgate_store_commit_duration_seconds_bucket{writer="wardgate.db",le="0.1"} 3
wardgate_store_commit_duration_seconds_bucket{writer="wardgate.db",le="0.25"} 4
wardgate_store_commit_duration_seconds_bucket{writer="wardgate.db",le="0.5"} 4
wardgate_store_commit_duration_seconds_bucket{writer="wardgate.db",le="1"} 4
wardgate_store_commit_duration_seconds_bucket{writer="wardgate.db",le="2.5"} 4
wardgate_store_commit_duration_seconds_bucket{writer="wardgate.db",le="5"} 4
wardgate_store_commit_duration_seconds_bucket{writer="wardgate.db",le="10"} 4
wardgate_store_commit_duration_seconds_bucket{writer="wardgate.db",le="30"} 4
wardgate_store_commit_duration_seconds_bucket{writer="wardgate.db",le="+Inf"} 4
wardgate_store_commit_duration_seconds_sum{writer="wardgate.db"} 0.1315
wardgate_store_commit_duration_seconds_count{writer="wardgate.db"} 4
# HELP wardgate_store_commit_max_seconds The longest store commit since the start, by group committer.
# TYPE wardgate_store_commit_max_seconds gauge
wardgate_store_commit_max_seconds{writer="wardgate.db"} 0.12
# HELP wardgate_store_commit_writes_total Writes committed or failed by the store's group commits (several share one commit under load).
# TYPE wardgate_store_commit_writes_total counter
wardgate_store_commit_writes_total{writer="wardgate.db"} 9
# HELP wardgate_store_commit_failures_total Store commits that failed (every write of the batch failed with it).
# TYPE wardgate_store_commit_failures_total counter
wardgate_store_commit_failures_total{writer="wardgate.db"} 1
`
	if b.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

// The server reports the SQLite store's commits: an admission's writes
// (its verdict in the log) are counted on wardgate.db.
func TestMetricsStoreCommits(t *testing.T) {
	var e *env
	e = newEnv(t, func(d *Deps, _ *[]Option) {
		d.Commits = func() []store.CommitStats { return e.st.CommitStats() }
	})
	writes := func() (count, writes int) {
		t.Helper()
		m := e.do("GET", "/metrics", "", "", nil).body
		c := regexp.MustCompile(`(?m)^wardgate_store_commit_duration_seconds_count\{writer="wardgate.db"\} (\d+)$`).FindSubmatch(m)
		inf := regexp.MustCompile(`(?m)^wardgate_store_commit_duration_seconds_bucket\{writer="wardgate.db",le="\+Inf"\} (\d+)$`).FindSubmatch(m)
		w := regexp.MustCompile(`(?m)^wardgate_store_commit_writes_total\{writer="wardgate.db"\} (\d+)$`).FindSubmatch(m)
		if c == nil || inf == nil || w == nil || string(c[1]) != string(inf[1]) {
			t.Fatalf("metrics lack wardgate.db's commits, or their count is not the +Inf bucket's:\n%s", m)
		}
		count, _ = strconv.Atoi(string(c[1]))
		writes, _ = strconv.Atoi(string(w[1]))
		return count, writes
	}
	e.evaluate(RoleCI)
	c0, w0 := writes()
	if a := e.admit("P-1", "infusion-pump", "2.3.0"); !a.Allow {
		t.Fatalf("admission: %+v", a)
	}
	c1, w1 := writes()
	if c1 <= c0 || w1 <= w0 || w1-w0 < c1-c0 {
		t.Fatalf("after one admission: %d commits of %d writes, was %d of %d: want more, each commit at least one write", c1, w1, c0, w0)
	}
}
