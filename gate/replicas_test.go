package gate_test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wardgate/wardgate/attest"
	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/gate"
	"github.com/wardgate/wardgate/rollout"
)

// postgresSchema returns the DSN of a schema of its own on the test
// PostgreSQL, dropped when the test ends; the test skips, saying so,
// without WARDGATE_TEST_POSTGRES.
func postgresSchema(t *testing.T) (dsn string, exec func(sql string, args ...any)) {
	t.Helper()
	server := os.Getenv("WARDGATE_TEST_POSTGRES")
	if server == "" {
		t.Skip("WARDGATE_TEST_POSTGRES is not set (a PostgreSQL DSN, e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable): the replica test of the gate is skipped")
	}
	var b [6]byte
	rand.Read(b[:])
	name := "wardgate_gate_" + hex.EncodeToString(b[:])
	u, err := url.Parse(server)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	exec = func(sql string, args ...any) {
		t.Helper()
		c, err := pgx.Connect(t.Context(), u.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(t.Context())
		if _, err := c.Exec(t.Context(), sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec(`CREATE SCHEMA ` + name)
	t.Cleanup(func() {
		c, err := pgx.Connect(t.Context(), server)
		if err == nil {
			_, _ = c.Exec(t.Context(), `DROP SCHEMA `+name+` CASCADE`)
			c.Close(t.Context())
		}
	})
	return u.String(), exec
}

// fixtureTrustFile writes the fixtures' trust configuration with its
// testdata paths made absolute, for pipelines whose state is elsewhere.
func fixtureTrustFile(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../fixtures/trust.yaml")
	if err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs("../fixtures")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "trust.yaml")
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(string(b), "testdata/", abs+"/testdata/")), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Two pipelines on one PostgreSQL store (two replicas): an evaluation
// kept on A replaces what B holds, through the change feed. A change
// written behind the feed's back (no announcement) shows the fail-safe:
// B, following, keeps its cache; a replica whose lag is past its bound
// reads the store.
func TestReplicaPipelines(t *testing.T) {
	t.Setenv(attest.PasswordEnv, "")
	dsn, exec := postgresSchema(t)
	trustPath := fixtureTrustFile(t)
	stateA := t.TempDir()
	open := func(state, key string, bound time.Duration) *gate.Pipeline {
		t.Helper()
		p, err := gate.Open(t.Context(), gate.Config{State: state, Store: dsn, Trust: trustPath, SigningKey: key, UnencryptedKey: true, ReplicaBound: bound},
			gate.WithoutSBOMGeneration())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	a := open(stateA, "", 0)
	key := filepath.Join(stateA, gate.SigningKeyFile)
	b1 := open(t.TempDir(), key, 0)
	lagging := open(t.TempDir(), key, time.Nanosecond) // always past its bound
	waitFresh := func(p *gate.Pipeline) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !p.Fresh(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				st, _ := p.ReplicaStats()
				t.Fatalf("not following the others' changes 10 s after opening: %+v", st)
			}
		}
	}
	waitFresh(b1)
	if lagging.Fresh() {
		t.Fatal("a replica with a 1 ns bound says its caches are fresh")
	}
	if st, ok := b1.ReplicaStats(); !ok || st.Bound != gate.DefaultReplicaBound || st.Resets != 1 || st.Lag > st.Bound {
		t.Fatalf("B's replica stats %+v %v", st, ok)
	}
	out, err := a.Gate().Evaluate(t.Context(), pump(t))
	if err != nil || !out.Decision.Allow {
		t.Fatalf("evaluate: %v %+v", err, out.Decision)
	}
	if err := a.Records().Put(t.Context(), out); err != nil {
		t.Fatal(err)
	}
	digest := out.Evidence.Artifact.Digest
	recordedAt := func(p *gate.Pipeline) time.Time {
		t.Helper()
		rec, ok, err := p.Records().Lookup(t.Context(), digest)
		if err != nil || !ok {
			t.Fatalf("lookup: %v %v", ok, err)
		}
		return rec.RecordedAt
	}
	first := recordedAt(b1)
	if lt := recordedAt(lagging); !first.Equal(out.Evidence.EvaluatedAt) || !lt.Equal(first) {
		t.Fatalf("B holds the evaluation of %s, the lagging replica %s; A kept %s", first, lt, out.Evidence.EvaluatedAt)
	}

	// Behind the feed's back: B keeps what it holds; the lagging replica
	// reads the store.
	rec, _, _ := a.Records().Lookup(t.Context(), digest)
	moved := *rec
	moved.RecordedAt = first.Add(time.Hour)
	raw, _ := json.Marshal(moved)
	exec(`UPDATE evaluations SET record = $1 WHERE digest = $2`, raw, digest)
	time.Sleep(3 * gate.DefaultReplicaBound / 2)
	st0, _ := b1.ReplicaStats()
	fresh := b1.Fresh()
	got := recordedAt(b1)
	st1, _ := b1.ReplicaStats()
	switch {
	case got.Equal(first):
	case fresh && st1.Resets == st0.Resets && st1.Lag <= st1.Bound:
		t.Fatalf("B, following and within its bound (lag %s), reread the store (%s)", st1.Lag, got)
	default:
		// A loaded machine held B's syncs past its bound, or its feed
		// reconnected: the reread is the fail-safe, right, and the cache
		// cannot be told from it this run.
		t.Logf("B was past its bound or reconnected (fresh %v, lag %s, resets %d -> %d): it read the store, as it must", fresh, st1.Lag, st0.Resets, st1.Resets)
	}
	if got := recordedAt(lagging); !got.Equal(moved.RecordedAt) {
		t.Fatalf("the lagging replica answered from its cache (%s), not the store (%s)", got, moved.RecordedAt)
	}

	// Kept again on A: B holds the new evaluation within the bound.
	again := *out
	again.Evidence.EvaluatedAt = first.Add(2 * time.Hour)
	if err := a.Records().Put(t.Context(), &again); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for !recordedAt(b1).Equal(again.Evidence.EvaluatedAt) {
		if time.Since(start) > gate.DefaultReplicaBound {
			t.Fatalf("B still holds %s %s after A kept %s", recordedAt(b1), time.Since(start), again.Evidence.EvaluatedAt)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("B held A's new evaluation %s after A kept it", time.Since(start).Round(time.Millisecond))
	// Held in memory (read again when the change came), so listed.
	if l := b1.Records().List(); len(l) != 1 || !l[0].RecordedAt.Equal(again.Evidence.EvaluatedAt) {
		t.Fatalf("B lists %d records", len(l))
	}
	if st, _ := b1.ReplicaStats(); st.Changes == 0 {
		t.Fatalf("B's stats count no change: %+v", st)
	}
}

// Two pipelines with rollout rings on one PostgreSQL: installations
// recorded through A (as `wardgate egress ingest --installs --store` or
// A's admissions do) are counted by B's rollout view within the replica
// bound, through the change feed (store.ChangeInstallation), not at B's
// next full read (Rollout.InstallRefresh, 30 s).
func TestReplicaRolloutInstallations(t *testing.T) {
	t.Setenv(attest.PasswordEnv, "")
	dsn, _ := postgresSchema(t)
	trustPath := fixtureTrustFile(t)
	stateA := t.TempDir()
	open := func(state, key string) *gate.Pipeline {
		t.Helper()
		p, err := gate.Open(t.Context(), gate.Config{State: state, Store: dsn, Trust: trustPath, SigningKey: key, UnencryptedKey: true,
			Rollout: func(l *attest.Log) (*rollout.Controller, error) {
				return rollout.NewController([]byte("0123456789abcdef0123456789abcdef"), rollout.LogJournal{Log: l}, rollout.NewClock(nil, nil))
			}}, gate.WithoutSBOMGeneration())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	a := open(stateA, "")
	pb := open(t.TempDir(), filepath.Join(stateA, gate.SigningKeyFile))
	for deadline := time.Now().Add(10 * time.Second); !pb.Fresh(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("B is not following the others' changes 10 s after opening")
		}
	}
	digest := "sha256:" + strings.Repeat("ab", 32)
	plan := &rollout.Plan{Digest: digest}
	installedAt := func(dev string) (time.Time, bool) {
		t.Helper()
		obs, err := pb.Gate().RolloutObserved(t.Context(), plan, "")
		if err != nil {
			t.Fatal(err)
		}
		return obs.View.InstalledAt(dev)
	}
	// B has read the installations (none) before A records any.
	if at, ok := installedAt("pump-1"); ok {
		t.Fatalf("B counts pump-1 as installed at %s before anything was recorded", at)
	}
	at0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	ins := []egress.Installation{
		{Device: "pump-1", Digest: digest, Product: "pump", Version: "2.0.0", Time: at0},
		{Device: "pump-2", Digest: digest, Product: "pump", Version: "2.0.0", Time: at0.Add(time.Minute)},
	}
	recorded := time.Now()
	if err := a.Store().RecordInstallations(t.Context(), ins); err != nil {
		t.Fatal(err)
	}
	// Within the replica bound (the feed's delivery, one full read).
	for _, in := range ins {
		for {
			at, ok := installedAt(in.Device)
			if ok {
				if !at.Equal(in.Time) {
					t.Fatalf("B counts %s installed at %s, recorded at %s", in.Device, at, in.Time)
				}
				t.Logf("B counts %s %s after A recorded it", in.Device, time.Since(recorded))
				break
			}
			if time.Since(recorded) > gate.DefaultReplicaBound {
				t.Fatalf("B does not count %s %s after A recorded it (its next full read is in %s)", in.Device, time.Since(recorded), gate.DefaultInstallRefresh)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// One recorded alone (the group-committed path) is counted too.
	recorded = time.Now()
	if err := a.Store().RecordInstallation(t.Context(), egress.Installation{Device: "pump-3", Digest: digest, Product: "pump", Version: "2.0.0", Time: at0}); err != nil {
		t.Fatal(err)
	}
	for {
		if _, ok := installedAt("PUMP-3"); ok { // device names match regardless of case
			break
		}
		if time.Since(recorded) > gate.DefaultReplicaBound {
			t.Fatalf("B does not count pump-3 %s after A recorded it", time.Since(recorded))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, ok := installedAt("pump-4"); ok {
		t.Fatal("B counts pump-4, never recorded")
	}
}
