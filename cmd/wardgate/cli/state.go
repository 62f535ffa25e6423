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

// StoreEnv names a store outside the state directory (a PostgreSQL DSN)
// for admit and serve, as --store does.
const StoreEnv = "WARDGATE_STORE"

func addStateFlag(cmd *cobra.Command, dir *string) {
	cmd.Flags().StringVar(dir, "state", defaultStateDir(), "state directory (release ledger, verdict log); $"+StateEnv)
}
