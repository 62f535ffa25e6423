package postgres_test

import (
	"context"
	"fmt"
	"os"

	"github.com/wardgate/wardgate/store"
	_ "github.com/wardgate/wardgate/store/postgres" // registers postgres:// and postgresql://
)

// Opening the shared store: the tables go in the DSN's search_path schema,
// migrated on open.
func Example() {
	ctx := context.Background()
	s, err := store.Open(ctx, "postgres://wardgate@db.hospital.example:5432/wardgate?sslmode=verify-full&search_path=wardgate")
	if err != nil {
		fmt.Fprintln(os.Stderr, err) // store.ErrUnavailable when the server cannot be reached
		return
	}
	defer s.Close()
	if err := s.Ping(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "not ready:", err)
	}
}
