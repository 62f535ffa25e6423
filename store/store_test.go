package store_test

import (
	"reflect"
	"testing"

	"github.com/wardgate/wardgate/evidence"
	"github.com/wardgate/wardgate/store"
	"github.com/wardgate/wardgate/store/storetest"
)

func TestEvidenceConversion(t *testing.T) {
	a, b := storetest.Release("2.4.0", 'a', true, 0), storetest.Release("2.4.0", 'b', false, 5)
	got := store.EvidenceLedger([]store.Release{a, b})
	want := evidence.Ledger{Entries: []evidence.LedgerEntry{
		{Digest: storetest.Digest('a'), Allowed: true, RecordedAt: storetest.At(0)},
		{Digest: storetest.Digest('b'), Allowed: false, RecordedAt: storetest.At(5)},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("EvidenceLedger = %+v", got)
	}
	if e := store.EvidenceLedger(nil); e.Entries == nil {
		t.Fatal("EvidenceLedger(nil) must give an empty, non-nil list (the schema requires an array)")
	}
	if p := store.EvidencePrevious(a); *p != (evidence.Release{Version: "2.4.0", Digest: storetest.Digest('a'), AdmittedAt: storetest.At(0)}) {
		t.Fatalf("EvidencePrevious = %+v", p)
	}
}
