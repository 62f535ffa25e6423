package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/store"
)

// RunChanges is the behaviour of a store.ChangeFeed, for a backend whose
// store several processes share: two handles on one location stand for
// two replicas. It is skipped for a store without a feed.
func RunChanges(t *testing.T, loc Location) {
	open := loc(t)
	a := opened(t, open)
	fa, ok := a.(store.ChangeFeed)
	if !ok {
		t.Skipf("%T has no change feed: one process writes it", a)
	}
	b := opened(t, open)
	fb := b.(store.ChangeFeed)
	ctx := t.Context()
	sctx, cancel := context.WithCancel(ctx)
	ch := fb.Subscribe(sctx)
	// The feed starts with a reset (what came before was not seen), then
	// syncs now and then.
	if c := next(t, ch, false); c.Kind != store.ChangeReset {
		t.Fatalf("first change %+v, want a reset", c)
	}
	sync := next(t, ch, false)
	if sync.Kind != store.ChangeSync {
		t.Fatalf("after the reset: %+v, want a sync", sync)
	}
	if at, err := time.Parse(time.RFC3339Nano, sync.Value); err != nil || time.Since(at) > time.Minute || time.Until(at) > 0 {
		t.Fatalf("sync dated %q (%v): want a time of this process's clock, just before now", sync.Value, err)
	}

	// Writes on a are announced to b in commit order; a write on b itself
	// is not (b knows it), nor a write that did not commit.
	if err := a.PutEvaluation(ctx, evaluation('a', "1.0.0", 0)); err != nil {
		t.Fatal(err)
	}
	if err := b.PutEvaluation(ctx, evaluation('b', "1.0.0", 0)); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("scan failed")
	if _, err := a.Ingest(ctx, egress.Source{Name: "bad", Digest: "sha256:0bad"}, func(add func(*egress.Event) error) error {
		if err := add(&egress.Event{Time: At(0), DeviceName: "A"}); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("failed ingest: %v", err)
	}
	events := func(add func(*egress.Event) error) error { return add(&egress.Event{Time: At(0), DeviceName: "A"}) }
	if _, err := a.Ingest(ctx, egress.Source{Name: "good", Digest: "sha256:0900d"}, events); err != nil {
		t.Fatal(err)
	}
	// Ingested again: nothing is added, nothing is announced.
	if added, err := a.Ingest(ctx, egress.Source{Name: "good", Digest: "sha256:0900d"}, events); err != nil || added {
		t.Fatalf("second ingest: %v, %v", added, err)
	}
	if err := a.PutToken(ctx, store.Token{Hash: strings.Repeat("1", 64), Name: "ci-1", Role: "ci", Created: At(0)}); err != nil {
		t.Fatal(err)
	}
	if err := a.RevokeToken(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoke of an unknown token: %v", err)
	}
	if err := a.RevokeToken(ctx, "ci-1"); err != nil {
		t.Fatal(err)
	}
	// A log append announces the artifacts of its Notify items, once each.
	seq := &chain{origin: "test/changes"}
	items := []store.LogItem{item(0), item(1), item(3)}
	items[0].Notify, items[2].Notify = true, true // both of artifact a
	items[1].Notify = false
	if _, _, err := a.AppendLog(ctx, seq, items); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.AppendLog(ctx, seq, []store.LogItem{item(4)}); err != nil { // no Notify
		t.Fatal(err)
	}
	// Installations announce each digest of a committed write once, in
	// the order first recorded; a refused write announces nothing.
	if err := a.RecordInstallations(ctx, []egress.Installation{installation("F1", 'f', 0), installation("F2", 'g', 1), installation("F3", 'f', 2)}); err != nil {
		t.Fatal(err)
	}
	if err := a.RecordInstallations(ctx, []egress.Installation{installation("F4", 'h', 0), {Device: "F5", Digest: "sha256:short"}}); err == nil {
		t.Fatal("a batch with an invalid installation was accepted")
	}
	if err := a.RecordInstallation(ctx, installation("F6", 'h', 3)); err != nil {
		t.Fatal(err)
	}
	if err := b.RecordInstallation(ctx, installation("F7", 'h', 4)); err != nil { // b's own
		t.Fatal(err)
	}
	if err := fa.Publish(ctx, store.Change{Kind: store.ChangeRisk, Key: Digest('c'), Value: "quarantined"}); err != nil {
		t.Fatal(err)
	}
	if err := fb.Publish(ctx, store.Change{Kind: store.ChangeTrust, Key: Digest('d')}); err != nil { // b's own
		t.Fatal(err)
	}
	if err := fa.Publish(ctx, store.Change{Kind: store.ChangeTrust, Key: Digest('e')}); err != nil {
		t.Fatal(err)
	}
	want := []store.Change{
		{Kind: store.ChangeEvaluation, Key: Digest('a')},
		{Kind: store.ChangeTelemetry, Key: "sha256:0900d"},
		{Kind: store.ChangeToken, Key: "ci-1"},
		{Kind: store.ChangeToken, Key: "ci-1"},
		{Kind: store.ChangeLog, Key: Digest('a')},
		{Kind: store.ChangeInstallation, Key: Digest('f')},
		{Kind: store.ChangeInstallation, Key: Digest('g')},
		{Kind: store.ChangeInstallation, Key: Digest('h')},
		{Kind: store.ChangeRisk, Key: Digest('c'), Value: "quarantined"},
		{Kind: store.ChangeTrust, Key: Digest('e')},
	}
	var got []store.Change
	for len(got) < len(want) {
		got = append(got, next(t, ch, true))
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("changes b saw:\n%+v\nwant\n%+v", got, want)
	}
	// A sync sent after all that comes after it: nothing else is left.
	deadline := time.Now()
	for {
		c := next(t, ch, false)
		if c.Kind != store.ChangeSync {
			t.Fatalf("after the changes: %+v, want only syncs", c)
		}
		if at, _ := time.Parse(time.RFC3339Nano, c.Value); at.After(deadline) {
			break
		}
	}

	// What cannot be announced is refused.
	for _, c := range []store.Change{
		{Kind: store.ChangeSync, Value: "x"},
		{Kind: store.ChangeReset},
		{Kind: "mystery"},
		{Kind: store.ChangeRisk, Key: "a\tb"},
		{Kind: store.ChangeRisk, Key: strings.Repeat("x", store.MaxChangeBytes+1)},
	} {
		if err := fa.Publish(ctx, c); err == nil {
			t.Errorf("Publish(%+v) accepted", c)
		}
	}

	// The subscription ends with its context: the channel is closed.
	cancel()
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				goto closed
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the channel is still open 10 s after its context ended")
		}
	}
closed:
	// A subscription on a closed store is closed at once.
	b.Close()
	select {
	case _, ok := <-fb.Subscribe(ctx):
		if ok {
			t.Fatal("a subscription on a closed store delivered a change")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a subscription on a closed store is not closed")
	}
}

// next returns the next change on ch within 10 s; skipSync passes over
// syncs.
func next(t *testing.T, ch <-chan store.Change, skipSync bool) store.Change {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case c, ok := <-ch:
			if !ok {
				t.Fatal("the feed closed")
			}
			if skipSync && c.Kind == store.ChangeSync {
				continue
			}
			return c
		case <-timeout:
			t.Fatal(fmt.Sprintf("no change within 10 s (skipping syncs: %v)", skipSync))
		}
	}
}
