package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/wardgate/wardgate/store"
)

func runTokens(t *testing.T, loc Location) {
	s := fresh(t, loc)
	ctx := t.Context()
	created := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	tk := store.Token{Hash: fmt.Sprintf("%064x", 1), Name: "ward-7", Role: "sensor", Created: created}
	if err := s.PutToken(ctx, tk); err != nil {
		t.Fatal(err)
	}
	dup := tk
	dup.Hash = fmt.Sprintf("%064x", 2)
	if err := s.PutToken(ctx, dup); !errors.Is(err, store.ErrExists) {
		t.Fatalf("a second token named ward-7: %v, want ErrExists", err)
	}
	got, err := s.TokenByHash(ctx, tk.Hash)
	if err != nil || !reflect.DeepEqual(got, tk) {
		t.Fatalf("TokenByHash = %+v, %v", got, err)
	}
	if _, err := s.TokenByHash(ctx, dup.Hash); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown hash: %v, want ErrNotFound", err)
	}
	if err := s.PutToken(ctx, store.Token{Hash: fmt.Sprintf("%064x", 3), Name: "ci-1", Role: "ci", Created: created}); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken(ctx, "ward-7"); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoke unknown: %v, want ErrNotFound", err)
	}
	all, err := s.ListTokens(ctx)
	if err != nil || len(all) != 2 || all[0].Name != "ci-1" || all[1].Name != "ward-7" || !all[1].Revoked || all[0].Revoked {
		t.Fatalf("ListTokens = %+v, %v", all, err)
	}
}

func audit(i int) store.AuditRecord {
	return store.AuditRecord{Time: At(i), RequestID: fmt.Sprintf("req-%d", i), Token: "update-server-1", Role: "update-server",
		Action: "POST /v1/admissions", Target: Digest('a') + " pump-" + fmt.Sprint(i), Status: 200, Outcome: "allow"}
}

func runAudit(t *testing.T, loc Location) {
	open := loc(t)
	s := opened(t, open)
	ctx := t.Context()
	var wg sync.WaitGroup
	for i := range 50 {
		done := s.ExpectAudit()
		wg.Go(func() {
			defer done()
			rec := audit(i)
			if i%10 == 0 {
				rec.Action, rec.Outcome = "POST /v1/telemetry", "ingested"
			}
			if err := s.Audit(ctx, rec); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := s.Audit(cancelled(t), audit(99)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	s.Close()
	s = opened(t, open)
	all, err := s.AuditLog(ctx, store.AuditFilter{})
	if err != nil || len(all) != 50 {
		t.Fatalf("AuditLog: %d records, %v", len(all), err)
	}
	seen := map[string]bool{}
	for _, r := range all {
		seen[r.RequestID] = true
	}
	if len(seen) != 50 || seen["req-99"] {
		t.Fatalf("records %v", seen)
	}
	tel, err := s.AuditLog(ctx, store.AuditFilter{Action: "POST /v1/telemetry", Since: At(15)})
	if err != nil || len(tel) != 3 {
		t.Fatalf("filtered: %+v, %v", tel, err)
	}
	want := audit(20)
	want.Action, want.Outcome = "POST /v1/telemetry", "ingested"
	if !reflect.DeepEqual(tel[0], want) && !reflect.DeepEqual(tel[1], want) && !reflect.DeepEqual(tel[2], want) {
		t.Fatalf("record 20 read back as one of %+v", tel)
	}
	if lim, err := s.AuditLog(ctx, store.AuditFilter{Limit: 7}); err != nil || len(lim) != 7 {
		t.Fatalf("limit 7: %d, %v", len(lim), err)
	}
}
