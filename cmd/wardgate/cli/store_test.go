package cli_test

import (
	"encoding/json"
	"errors"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/wardgate/wardgate/attest"
)

// postgresStore returns the DSN of a fresh schema on the test PostgreSQL
// ($WARDGATE_TEST_POSTGRES), dropped when the test ends; the test skips,
// saying so, without one.
func postgresStore(t *testing.T) string {
	t.Helper()
	server := os.Getenv("WARDGATE_TEST_POSTGRES")
	if server == "" {
		t.Skip("WARDGATE_TEST_POSTGRES is not set (a PostgreSQL DSN, e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable): the PostgreSQL store's CLI test is skipped")
	}
	conn, err := pgx.Connect(t.Context(), server)
	if err != nil {
		t.Fatalf("WARDGATE_TEST_POSTGRES: %v", err)
	}
	name := "wardgate_cli_" + strings.ToLower(strings.NewReplacer("/", "_", "-", "_").Replace(t.Name()))
	if _, err := conn.Exec(t.Context(), `DROP SCHEMA IF EXISTS `+name+` CASCADE; CREATE SCHEMA `+name); err != nil {
		t.Fatal(err)
	}
	conn.Close(t.Context())
	t.Cleanup(func() {
		c, err := pgx.Connect(t.Context(), server)
		if err != nil {
			return
		}
		defer c.Close(t.Context())
		_, _ = c.Exec(t.Context(), `DROP SCHEMA `+name+` CASCADE`)
	})
	u, err := url.Parse(server)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// admit --store keeps the ledger in PostgreSQL, not in the state
// directory: a second state directory on the same store sees the release
// the first admitted (a rollback below it is refused), and neither holds
// a SQLite store.
func TestAdmitWithPostgresStore(t *testing.T) {
	dsn := postgresStore(t)
	// Logged (the ledger records what the log holds); one log, so one
	// service key: the first state directory's, made on first use.
	logged := func(version string, extra ...string) []string {
		args := slices.DeleteFunc(pumpArgs(version, extra...), func(s string) bool { return s == "--no-log" })
		return append(args, "--unencrypted-key")
	}
	a, b := t.TempDir(), t.TempDir()
	if code, r := admit(t, a, logged("2.4.0", "--store", dsn)); code != 0 || !r.Allow {
		t.Fatalf("2.4.0: exit %d %+v", code, r)
	}
	key := filepath.Join(a, "signing.key")
	code, r := admit(t, b, logged("2.3.0", "--store", dsn, "--signing-key", key))
	if code != 1 || r.Allow || len(r.Decision.Violations) == 0 || r.Decision.Violations[0].Code != "rollback" ||
		!strings.Contains(r.Decision.Violations[0].Message, "2.4.0") {
		t.Fatalf("2.3.0 after 2.4.0 on the shared store: exit %d %+v", code, r)
	}
	for _, dir := range []string{a, b} {
		if m, _ := filepath.Glob(filepath.Join(dir, "*.db")); len(m) != 0 {
			t.Errorf("%s holds %v: the store is PostgreSQL", dir, m)
		}
	}
	// WARDGATE_STORE is --store's default.
	t.Setenv("WARDGATE_STORE", dsn)
	if code, r := admit(t, t.TempDir(), logged("2.3.0", "--signing-key", key)); code != 1 || r.Allow {
		t.Fatalf("2.3.0 with WARDGATE_STORE: exit %d %+v", code, r)
	}
}

// egress --store keeps telemetry and installations in PostgreSQL: what
// `egress ingest --store` stored is what `egress findings --store` and
// `admit --store` see (the 3CX-like update of the fleet fixture, relabelled
// as the pump 2.4.0 firmware, is quarantined), while the state directory,
// which keeps only the inventory and detection configuration, holds no
// store of its own.
func TestEgressWithPostgresStore(t *testing.T) {
	dsn := postgresStore(t)
	state := t.TempDir()
	insPath, digest := fleetScenario(t, state)
	fleet := fleetFx + "/"
	code, out, errOut := run(t, "egress", "ingest", "--state", state, "--store", dsn, "--inventory", fleet+"inventory.json", "--installs", insPath, fleet+"defender.jsonl", "-o", "json")
	if code != 0 || strings.Count(out, "\n") != 2 || !strings.Contains(out, `"kind":"telemetry","added":true`) {
		t.Fatalf("ingest: %d %s %s", code, out, errOut)
	}
	// Ingesting the same file again through the store adds nothing.
	if code, out, errOut := run(t, "egress", "ingest", "--state", state, "--store", dsn, fleet+"defender.jsonl"); code != 0 || !strings.Contains(out, "already ingested, skipped") {
		t.Fatalf("second ingest: %d %s %s", code, out, errOut)
	}
	findings := func(extra ...string) (int, string) {
		t.Helper()
		code, out, errOut := run(t, append([]string{"egress", "findings", "--state", state, "--update", digest, "-o", "json"}, extra...)...)
		if code == 2 {
			t.Fatalf("findings %v: exit 2 %s", extra, errOut)
		}
		var rep struct {
			Updates []struct{ State string } `json:"updates"`
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Updates) != 1 {
			t.Fatalf("findings %v: %v %s", extra, err, out)
		}
		return code, rep.Updates[0].State
	}
	if code, st := findings("--store", dsn); code != 1 || st != "quarantined" {
		t.Fatalf("findings on the store: exit %d, state %s", code, st)
	}
	if m, _ := filepath.Glob(filepath.Join(state, "*.db")); len(m) != 0 {
		t.Fatalf("%s holds %v: the store is PostgreSQL", state, m)
	}
	code, r := admit(t, state, pumpArgs("2.4.0", "--store", dsn))
	if code != 1 || !slices.Equal(r.codes(), []string{"quarantined"}) || r.Evidence.Fleet.RiskState != "quarantined" {
		t.Fatalf("admit on the store: exit %d %+v", code, r)
	}
	// WARDGATE_STORE is --store's default for egress too.
	t.Setenv("WARDGATE_STORE", dsn)
	if code, st := findings(); code != 1 || st != "quarantined" {
		t.Fatalf("findings with WARDGATE_STORE: exit %d, state %s", code, st)
	}
	t.Setenv("WARDGATE_STORE", "")
	// The state directory's own SQLite store never saw the telemetry: the
	// same state without --store admits the update.
	if code, r := admit(t, state, pumpArgs("2.4.0")); code != 0 || !r.Allow {
		t.Fatalf("admit on the state directory's store: exit %d %+v", code, r)
	}
}

// attest --store reads the log PostgreSQL keeps: admissions logged through
// `admit --store` are listed by `attest log --store` from another state
// directory, and a pack `attest export --store` writes verifies offline.
// An unknown URL scheme is refused, not taken for a directory.
func TestAttestWithPostgresStore(t *testing.T) {
	dsn := postgresStore(t)
	t.Setenv(attest.PasswordEnv, "")
	keys := t.TempDir()
	if code, _, errOut := run(t, "attest", "keygen", "--out", filepath.Join(keys, "service")); code != 0 {
		t.Fatalf("keygen: %s", errOut)
	}
	key, pub := filepath.Join(keys, "service.key"), filepath.Join(keys, "service.pub")
	logged := func(version string) []string {
		args := slices.DeleteFunc(pumpArgs(version), func(s string) bool { return s == "--no-log" })
		return append(args, "--store", dsn, "--signing-key", key)
	}
	for _, v := range []string{"2.4.0", "2.3.0"} {
		code, r := admit(t, t.TempDir(), logged(v))
		if r.LogEntry == nil || (v == "2.4.0") != (code == 0) {
			t.Fatalf("admit %s: exit %d %+v", v, code, r)
		}
	}
	reader := t.TempDir() // a state directory that never admitted anything
	type logOut struct {
		Checkpoint struct{ Size int } `json:"checkpoint"`
		Entries    []struct {
			Index   int      `json:"index"`
			Version string   `json:"version"`
			Result  string   `json:"result"`
			Reasons []string `json:"reasons"`
		} `json:"entries"`
	}
	attestLog := func(extra ...string) logOut {
		t.Helper()
		code, out, errOut := run(t, append([]string{"attest", "log", "--state", reader, "--signing-key", key, "-o", "json"}, extra...)...)
		var l logOut
		if code != 0 || json.Unmarshal([]byte(out), &l) != nil {
			t.Fatalf("attest log %v: %d %s %s", extra, code, out, errOut)
		}
		return l
	}
	l := attestLog("--store", dsn)
	if l.Checkpoint.Size != 2 || len(l.Entries) != 2 || l.Entries[0].Version != "2.4.0" || l.Entries[0].Result != "PASSED" ||
		l.Entries[1].Version != "2.3.0" || l.Entries[1].Result != "FAILED" || !slices.Contains(l.Entries[1].Reasons, "rollback") {
		t.Fatalf("attest log --store: %+v", l)
	}
	pack := filepath.Join(t.TempDir(), "pack.tar.gz")
	if code, out, errOut := run(t, "attest", "export", "--state", reader, "--store", dsn, "--signing-key", key, "--out", pack); code != 0 || !strings.Contains(out, "2 of 2 entries") {
		t.Fatalf("export: %d %s %s", code, out, errOut)
	}
	if code, out, errOut := run(t, "attest", "verify", pack, "--key", pub); code != 0 || !strings.HasPrefix(out, "INTACT    "+pack+": 2 entries, tree size 2") {
		t.Fatalf("verify: %d %s %s", code, out, errOut)
	}
	// WARDGATE_STORE is --store's default.
	t.Setenv("WARDGATE_STORE", dsn)
	if l := attestLog(); l.Checkpoint.Size != 2 {
		t.Fatalf("attest log with WARDGATE_STORE: %+v", l)
	}
	t.Setenv("WARDGATE_STORE", "")
	// Without --store: the reader's own (empty) SQLite log.
	if l := attestLog(); l.Checkpoint.Size != 0 || len(l.Entries) != 0 {
		t.Fatalf("attest log without --store: %+v", l)
	}
	code, _, errOut := run(t, "attest", "log", "--state", reader, "--signing-key", key, "--store", "mysql://db.example/wardgate")
	if code != 2 || !strings.Contains(errOut, "store: no mysql backend in this wardgate (it has: postgres, sqlite)") {
		t.Fatalf("mysql://: %d %s", code, errOut)
	}
	if _, err := os.Stat("mysql:"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a mysql: directory was made: %v", err)
	}
}

// token --store keeps the API tokens in PostgreSQL, where `serve --store`
// reads them: created and listed through the store, absent from the state
// directory's own SQLite store.
func TestTokenWithPostgresStore(t *testing.T) {
	dsn := postgresStore(t)
	state := t.TempDir()
	code, out, errOut := run(t, "token", "create", "--role", "update-server", "--name", "us-1", "--state", state, "--store", dsn)
	if code != 0 || !strings.HasPrefix(out, "wgt_") {
		t.Fatalf("create: %d %s %s", code, out, errOut)
	}
	list := func(extra ...string) []string {
		t.Helper()
		code, out, errOut := run(t, append([]string{"token", "list", "--state", state, "-o", "json"}, extra...)...)
		var ts []struct{ Name string }
		if code != 0 || json.Unmarshal([]byte(out), &ts) != nil {
			t.Fatalf("list %v: %d %s %s", extra, code, out, errOut)
		}
		var names []string
		for _, x := range ts {
			names = append(names, x.Name)
		}
		return names
	}
	if got := list("--store", dsn); !slices.Equal(got, []string{"us-1"}) {
		t.Fatalf("list --store: %v", got)
	}
	if got := list(); len(got) != 0 {
		t.Fatalf("list on the state directory: %v", got)
	}
	if code, _, errOut := run(t, "token", "revoke", "us-1", "--state", state, "--store", dsn); code != 0 {
		t.Fatalf("revoke: %d %s", code, errOut)
	}
}
