package server

import (
	"errors"
	"sync/atomic"
	"testing"

	"github.com/wardgate/wardgate/store/sqlite"
)

// A token revoked by another process (another replica) keeps working
// from the cache until the change is followed (Forget), and is looked up
// in the store at every call while this replica lags behind the others'
// changes (Follow's fresh says no).
func TestTokensFollowOtherReplicas(t *testing.T) {
	st, err := sqlite.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tk := NewTokens(st)
	var fresh atomic.Bool
	fresh.Store(true)
	tk.Follow(fresh.Load)
	a, err := tk.Create(t.Context(), RoleSensor, "ward-7")
	if err != nil {
		t.Fatal(err)
	}
	b, err := tk.Create(t.Context(), RoleSensor, "ward-8")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []Secret{a, b} {
		if _, err := tk.Authenticate(t.Context(), s); err != nil {
			t.Fatal(err)
		}
	}
	// Revoked elsewhere (straight in the store, as another replica does).
	for _, name := range []string{"ward-7", "ward-8"} {
		if err := st.RevokeToken(t.Context(), name); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tk.Authenticate(t.Context(), a); err != nil {
		t.Fatalf("cached answer before the change is followed: %v", err)
	}
	tk.Forget() // the change arrives
	if _, err := tk.Authenticate(t.Context(), a); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("after Forget: %v, want ErrUnauthenticated", err)
	}
	// Lagging: the cache is not used.
	fresh.Store(false)
	if _, err := tk.Authenticate(t.Context(), b); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("lagging: %v, want ErrUnauthenticated from the store", err)
	}
}
