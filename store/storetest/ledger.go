package storetest

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/wardgate/wardgate/store"
)

// Release returns a complete release for acme/pump.
func Release(version string, digest byte, allowed bool, minutes int) store.Release {
	r := store.Release{
		Vendor: "acme", Product: "pump", Version: version, Digest: Digest(digest), Allowed: allowed,
		Codes: []string{}, SBOMDigest: Digest('5'), PolicyDigest: Digest('6'), TrustDigest: Digest('7'),
		EvaluatedAt: At(minutes),
	}
	if !allowed {
		r.Codes = []string{"rollback", "sbom-drift"}
	}
	return r
}

// RunLedger runs the ledger's part of the suite.
func RunLedger(t *testing.T, loc Location) {
	t.Run("empty", func(t *testing.T) {
		l := fresh(t, loc)
		if _, err := l.LatestAdmitted(t.Context(), "acme", "pump"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("LatestAdmitted on empty ledger: %v, want ErrNotFound", err)
		}
		rs, err := l.ReleaseByVersion(t.Context(), "acme", "pump", "1.0.0")
		if err != nil || rs == nil || len(rs) != 0 {
			t.Fatalf("ReleaseByVersion on empty ledger: %v %v, want empty slice", rs, err)
		}
	})
	t.Run("record and read", func(t *testing.T) {
		open := loc(t)
		l := opened(t, open)
		in := []store.Release{
			Release("2.3.0", 'a', true, 0),
			Release("2.4.0", 'b', false, 10),
			Release("2.4.0", 'c', true, 20),
			Release("2.2.0", 'd', false, 30),
			{Vendor: "other", Product: "pump", Version: "9.0.0", Digest: Digest('e'), Allowed: true, Codes: []string{}, EvaluatedAt: At(40)},
		}
		for _, r := range in {
			if err := l.RecordRelease(t.Context(), r); err != nil {
				t.Fatal(err)
			}
		}
		l.Close()
		l = opened(t, open) // durable
		latest, err := l.LatestAdmitted(t.Context(), "acme", "pump")
		if err != nil || !reflect.DeepEqual(latest, in[2]) {
			t.Fatalf("LatestAdmitted = %+v, %v; want %+v", latest, err, in[2])
		}
		v, err := l.ReleaseByVersion(t.Context(), "acme", "pump", "2.4.0")
		if err != nil || !reflect.DeepEqual(v, in[1:3]) {
			t.Fatalf("ReleaseByVersion = %+v, %v", v, err)
		}
		all, err := l.Releases(t.Context(), "acme", "pump")
		if err != nil || !reflect.DeepEqual(all, in[:4]) {
			t.Fatalf("Releases = %+v, %v", all, err)
		}
	})
	t.Run("order is by time not insertion", func(t *testing.T) {
		l := fresh(t, loc)
		late, early := Release("2.0.0", 'a', true, 90), Release("1.0.0", 'b', true, 5)
		early.EvaluatedAt = early.EvaluatedAt.Add(500 * time.Millisecond) // fractional seconds sort as times
		for _, r := range []store.Release{late, early} {
			if err := l.RecordRelease(t.Context(), r); err != nil {
				t.Fatal(err)
			}
		}
		got, err := l.LatestAdmitted(t.Context(), "acme", "pump")
		if err != nil || got.Version != "2.0.0" {
			t.Fatalf("LatestAdmitted = %+v, %v", got, err)
		}
	})
	t.Run("invalid release", func(t *testing.T) {
		l := fresh(t, loc)
		r := Release("1.0.0", 'a', true, 0)
		r.Vendor, r.Digest = "", "md5:x"
		err := l.RecordRelease(t.Context(), r)
		want := "store: invalid release: vendor is empty\nstore: invalid release: digest \"md5:x\" is not sha256:<64 hex>"
		if !errors.Is(err, store.ErrInvalid) || err.Error() != want {
			t.Fatalf("err = %v", err)
		}
		if rs, _ := l.Releases(t.Context(), "", "pump"); len(rs) != 0 {
			t.Fatalf("invalid release was recorded: %v", rs)
		}
	})
	t.Run("two handles", func(t *testing.T) {
		open := loc(t)
		a, b := opened(t, open), opened(t, open)
		if err := a.RecordRelease(t.Context(), Release("1.0.0", 'a', true, 0)); err != nil {
			t.Fatal(err)
		}
		if err := b.RecordRelease(t.Context(), Release("1.1.0", 'b', true, 1)); err != nil {
			t.Fatal(err)
		}
		for _, s := range []store.Store{a, b} {
			if got, err := s.LatestAdmitted(t.Context(), "acme", "pump"); err != nil || got.Version != "1.1.0" {
				t.Fatalf("LatestAdmitted = %+v, %v; want 1.1.0 through either handle", got, err)
			}
		}
	})
}
