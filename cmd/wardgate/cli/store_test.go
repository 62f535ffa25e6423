package cli_test

import (
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
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
