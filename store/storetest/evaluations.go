package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/wardgate/wardgate/store"
)

func evaluation(digest byte, version string, minutes int) store.Evaluation {
	return store.Evaluation{Digest: Digest(digest), Vendor: "acme", Product: "pump", Version: version, RecordedAt: At(minutes),
		Record: fmt.Appendf(nil, `{"digest":%q,"minutes":%d}`, Digest(digest), minutes)}
}

func runEvaluations(t *testing.T, loc Location) {
	open := loc(t)
	s := opened(t, open)
	ctx := t.Context()
	if _, err := s.Evaluation(ctx, Digest('a')); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Evaluation of an unknown digest: %v, want ErrNotFound", err)
	}
	if ds, err := s.ReleaseDigests(ctx, "acme", "pump", "2.4.0"); err != nil || ds == nil || len(ds) != 0 {
		t.Fatalf("ReleaseDigests on an empty store: %v, %v; want an empty slice", ds, err)
	}
	in := []store.Evaluation{evaluation('b', "2.4.0", 0), evaluation('a', "2.4.0", 1), evaluation('c', "2.3.0", 2)}
	for _, e := range in {
		if err := s.PutEvaluation(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	// Evaluated again: the new one replaces the old.
	again := evaluation('a', "2.4.0", 9)
	if err := s.PutEvaluation(ctx, again); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = opened(t, open)
	got, err := s.Evaluation(ctx, Digest('a'))
	if err != nil || !reflect.DeepEqual(got, again) {
		t.Fatalf("Evaluation = %+v, %v; want %+v", got, err, again)
	}
	ds, err := s.ReleaseDigests(ctx, "acme", "pump", "2.4.0")
	if err != nil || !slices.Equal(ds, []string{Digest('a'), Digest('b')}) {
		t.Fatalf("ReleaseDigests = %v, %v", ds, err)
	}
	var all []store.Evaluation
	if err := s.ListEvaluations(ctx, func(e store.Evaluation) error {
		// The callback may call the store.
		if _, err := s.Evaluation(ctx, e.Digest); err != nil {
			return err
		}
		all = append(all, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []store.Evaluation{again, in[0], in[2]}; !reflect.DeepEqual(all, want) {
		t.Fatalf("ListEvaluations = %+v, want %+v", all, want)
	}
	// An update whose version is not known is kept.
	unversioned := evaluation('e', "", 9)
	if err := s.PutEvaluation(ctx, unversioned); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Evaluation(ctx, unversioned.Digest); err != nil || !reflect.DeepEqual(got, unversioned) {
		t.Fatalf("Evaluation(unversioned) = %+v, %v", got, err)
	}
	bad := evaluation('d', "1.0.0", 0)
	bad.Digest, bad.Vendor = "sha256:xyz", ""
	if err := s.PutEvaluation(ctx, bad); err == nil || err.Error() != "evaluation: digest \"sha256:xyz\" is not sha256:<64 hex>\nevaluation: vendor and product are required" {
		t.Fatalf("invalid evaluation: %v", err)
	}
}
