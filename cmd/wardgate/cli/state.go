package cli

import (
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
)

// StateEnv overrides the default state directory.
const StateEnv = "WARDGATE_STATE"

// defaultStateDir is $WARDGATE_STATE, else $XDG_DATA_HOME/wardgate, else
// ~/.local/share/wardgate.
func defaultStateDir() string {
	if d := os.Getenv(StateEnv); d != "" {
		return d
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "wardgate")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "wardgate")
	}
	return "wardgate-state"
}

// StoreEnv names a store outside the state directory (a PostgreSQL DSN),
// as --store does, for every command that reads or writes the store:
// admit, serve, egress ingest and findings, attest log and export, token.
const StoreEnv = "WARDGATE_STORE"

// addStoreFlag adds --store, whose default is $WARDGATE_STORE.
func addStoreFlag(cmd *cobra.Command, loc *string) {
	cmd.Flags().StringVar(loc, "store", os.Getenv(StoreEnv), "where the store is when it is not the state directory's SQLite: a PostgreSQL DSN (postgres://USER@HOST:PORT/DB); $"+StoreEnv+" (docs/postgres.md)")
}

// storeLocation is what store.Open opens: the --store location when one
// is given (store.Open refuses a URL scheme it has no backend for), else
// the state directory's SQLite store.
func storeLocation(state, loc string) string {
	if loc != "" {
		return loc
	}
	return state
}

func addStateFlag(cmd *cobra.Command, dir *string) {
	cmd.Flags().StringVar(dir, "state", defaultStateDir(), "state directory (release ledger, verdict log); $"+StateEnv)
}
