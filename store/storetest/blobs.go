package storetest

import (
	"errors"
	"reflect"
	"testing"

	"github.com/wardgate/wardgate/store"
)

func runBlobs(t *testing.T, loc Location) {
	open := loc(t)
	s := opened(t, open)
	ctx := t.Context()
	b := store.Blob{MediaType: "application/vnd.cyclonedx+json", Data: []byte(`{"bomFormat":"CycloneDX"}`)}
	d, err := s.PutBlob(ctx, b)
	if err != nil || d != b.Digest() {
		t.Fatalf("PutBlob = %s, %v; want %s", d, err, b.Digest())
	}
	if _, err := s.PutBlob(ctx, b); err != nil { // kept already: a no-op
		t.Fatal(err)
	}
	s.Close()
	s = opened(t, open)
	got, err := s.Blob(ctx, d)
	if err != nil || !reflect.DeepEqual(got, b) {
		t.Fatalf("Blob = %+v, %v", got, err)
	}
	if _, err := s.Blob(ctx, Digest('f')); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown blob: %v, want ErrNotFound", err)
	}
}
