package bus_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/egress/bus"
	"github.com/wardgate/wardgate/internal/natstest"
	"github.com/wardgate/wardgate/store"
	_ "github.com/wardgate/wardgate/store/sqlite" // the embedded backend
)

const fleet = "../../fixtures/fleet/testdata/"

type rig struct {
	t   testing.TB
	url string
	db  store.Store
	inv *egress.Inventory
	// fail, when set, makes the store fail (a transient error).
	fail error
}

func newRig(t testing.TB) *rig {
	t.Helper()
	ns := natstest.Start(t)
	db, err := store.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	inv, err := egress.ReadInventoryFile(fleet + "inventory.json")
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, url: ns.URL, db: db, inv: inv}
}

func (r *rig) ingest(ctx context.Context, src egress.Source, body io.Reader, f egress.Format) (egress.IngestResult, error) {
	if r.fail != nil {
		return egress.IngestResult{}, r.fail
	}
	return egress.Ingest(ctx, r.db, r.inv, src, body, f)
}

// connect returns a JetStream context on a new connection, closed at the
// end of the test.
func (r *rig) connect() (*nats.Conn, jetstream.JetStream) {
	r.t.Helper()
	nc, err := bus.Dial(r.url, "test")
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		r.t.Fatal(err)
	}
	return nc, js
}

func (r *rig) consumer(js jetstream.JetStream, opts ...bus.Option) *bus.Consumer {
	r.t.Helper()
	c, err := bus.New(r.t.Context(), js, r.ingest, append([]bus.Option{bus.WithAckWait(time.Second), bus.WithRetryDelay(100 * time.Millisecond)}, opts...)...)
	if err != nil {
		r.t.Fatal(err)
	}
	return c
}

// run runs c until the returned stop is called; stop returns Run's error.
func run(c *bus.Consumer) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	return func() error { cancel(); return <-done }
}

func (r *rig) publish(js jetstream.JetStream, subject string, body []byte) {
	r.t.Helper()
	if _, err := js.Publish(r.t.Context(), subject, body); err != nil {
		r.t.Fatalf("publish %s: %v", subject, err)
	}
}

// storedEvents counts the events in the store.
func (r *rig) storedEvents() int64 {
	r.t.Helper()
	var n int64
	if err := r.db.Events(r.t.Context(), func(*egress.Event) error { n++; return nil }); err != nil {
		r.t.Fatal(err)
	}
	return n
}

// settled waits until the durable consumer has settled every message the
// stream held when it was called: nothing pending or unacknowledged, and
// the acknowledgement floor at the stream's last message. The floor is what
// makes the wait sound for a message published just before: the server
// counts it as pending only once its delivery loop has seen it, so
// "nothing pending" alone can hold before the consumer ever got it.
func settled(t testing.TB, js jetstream.JetStream, c *bus.Consumer) {
	t.Helper()
	ci, err := c.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(t.Context(), ci.Stream)
	if err != nil {
		t.Fatal(err)
	}
	last := st.CachedInfo().State.LastSeq
	deadline := time.Now().Add(20 * time.Second)
	for {
		ci, err := c.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if ci.NumPending == 0 && ci.NumAckPending == 0 && ci.AckFloor.Stream >= last {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer not settled: %d pending, %d unacknowledged, acknowledged up to %d of %d", ci.NumPending, ci.NumAckPending, ci.AckFloor.Stream, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// batches splits the fleet fixture's Defender telemetry into n batches of
// lines and counts the events of inventory devices in each.
func batches(t testing.TB, inv *egress.Inventory, n, lines int) (out [][]byte, want int64) {
	t.Helper()
	f, err := os.Open(fleet + "defender.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for len(out) < n {
		var b bytes.Buffer
		for i := 0; i < lines && sc.Scan(); i++ {
			b.Write(sc.Bytes())
			b.WriteByte('\n')
		}
		if b.Len() == 0 {
			t.Fatalf("fixture has fewer than %d batches of %d lines", n, lines)
		}
		if _, err := egress.Scan(bytes.NewReader(b.Bytes()), func(ev *egress.Event) error {
			if _, ok := inv.Resolve(ev); ok {
				want++
			}
			return nil
		}, egress.WithFormat(egress.FormatDefenderJSON)); err != nil {
			t.Fatal(err)
		}
		out = append(out, b.Bytes())
	}
	if want == 0 {
		t.Fatal("fixture batches hold no inventory events")
	}
	return out, want
}

func TestSubjects(t *testing.T) {
	want := []string{"wardgate.telemetry.auto", "wardgate.telemetry.defender-json", "wardgate.telemetry.defender-csv",
		"wardgate.telemetry.zeek-tsv", "wardgate.telemetry.zeek-json", "wardgate.telemetry.ocsf-json"}
	got := bus.Subjects()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("subjects %v, want %v", got, want)
	}
}

// A consumer that stops after the commit and before the ack loses
// nothing, and the restarted consumer doubles nothing.
func TestCrashBeforeAck(t *testing.T) {
	r := newRig(t)
	bs, want := batches(t, r.inv, 3, 400)
	// First consumer: commits the first batch, then its connection dies
	// before the acknowledgement.
	nc1, js1 := r.connect()
	c1 := r.consumer(js1)
	_, pub := r.connect()
	for _, b := range bs {
		r.publish(pub, bus.Subject(egress.FormatDefenderJSON), b)
	}
	crashed := make(chan struct{})
	bus.SetBeforeAck(c1, func(jetstream.Msg) bool {
		nc1.Close()
		close(crashed)
		return false
	})
	stop1 := run(c1)
	select {
	case <-crashed:
	case <-time.After(20 * time.Second):
		t.Fatal("first consumer never committed a batch")
	}
	if err := stop1(); err == nil {
		t.Fatal("Run after the connection closed: nil error, want the connection's")
	}
	if s := c1.Stats(); s.Batches != 1 || s.Duplicates != 0 {
		t.Fatalf("first consumer %+v, want 1 batch", s)
	}
	committed := r.storedEvents()
	if committed == 0 || committed >= want {
		t.Fatalf("after the crash %d events stored, want those of one batch (0 < n < %d)", committed, want)
	}
	// Second consumer, same durable: the unacknowledged batch comes back
	// after the ack wait and is recognised; the others are stored.
	_, js2 := r.connect()
	c2 := r.consumer(js2)
	stop2 := run(c2)
	settled(t, js2, c2)
	if err := stop2(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := r.storedEvents(); got != want {
		t.Fatalf("stored %d events, want %d (nothing lost, nothing doubled)", got, want)
	}
	if s := c2.Stats(); s.Batches != 2 || s.Duplicates != 1 || s.Dead != 0 || int64(s.Events)+committed != want {
		t.Fatalf("second consumer %+v, want 2 batches and 1 duplicate (%d events)", s, want-committed)
	}
}

// Messages that are not telemetry are dead-lettered with their reason,
// terminated (never redelivered), and do not hold up the telemetry behind
// them.
func TestDeadLetters(t *testing.T) {
	r := newRig(t)
	bs, want := batches(t, r.inv, 1, 200)
	_, js := r.connect()
	c := r.consumer(js, bus.WithMaxBytes(64<<10))
	big := bytes.Repeat(bs[0], 1+(64<<10)/len(bs[0]))
	cases := []struct {
		subject string
		body    []byte
		reason  string
		detail  string
	}{
		{"wardgate.telemetry.splunk", bs[0], bus.ReasonWrongSubject, `subject "wardgate.telemetry.splunk" names no telemetry format: want wardgate.telemetry.<format>, format one of ` + egress.FormatNames()},
		{"wardgate.telemetry.auto", []byte(`{"hello":"world"}` + "\n"), bus.ReasonUnknownFormat, "egress: unknown telemetry format"},
		{"wardgate.telemetry.defender-json", []byte("hello\nworld\n"), bus.ReasonNoEvents, "no connection event in 2 lines read as defender-json (2 malformed, 0 skipped)"},
		{"wardgate.telemetry.zeek-json", []byte{}, bus.ReasonNoEvents, "empty message"},
		{"wardgate.telemetry.defender-json", big, bus.ReasonTooLarge, fmt.Sprintf("message of %d bytes over the limit of %d", len(big), 64<<10)},
	}
	for _, tc := range cases {
		r.publish(js, tc.subject, tc.body)
	}
	r.publish(js, bus.Subject(egress.FormatDefenderJSON), bs[0])
	stop := run(c)
	settled(t, js, c)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if s := c.Stats(); s.Dead != uint64(len(cases)) || s.Batches != 1 || s.Retried != 0 {
		t.Fatalf("stats %+v, want %d dead letters and 1 batch", s, len(cases))
	}
	if got := r.storedEvents(); got != want {
		t.Fatalf("stored %d events, want %d", got, want)
	}
	// Terminated messages left the work queue; nothing is redelivered.
	ci, err := c.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if ci.NumRedelivered != 0 || ci.NumAckPending != 0 {
		t.Fatalf("consumer: %d redelivered, %d unacknowledged", ci.NumRedelivered, ci.NumAckPending)
	}
	ts, err := js.Stream(t.Context(), bus.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	if n := ts.CachedInfo().State.Msgs; n != 0 {
		t.Fatalf("telemetry stream holds %d messages, want 0", n)
	}
	ds, err := js.Stream(t.Context(), bus.DefaultDeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range cases {
		m, err := ds.GetMsg(t.Context(), uint64(i+1))
		if err != nil {
			t.Fatalf("dead letter %d: %v", i+1, err)
		}
		if m.Subject != bus.DeadLetterPrefix+tc.reason || m.Header.Get(bus.ReasonHeader) != tc.reason || m.Header.Get(bus.DetailHeader) != tc.detail ||
			m.Header.Get(bus.SubjectHeader) != tc.subject || m.Header.Get(bus.SequenceHeader) != strconv.Itoa(i+1) || !bytes.Equal(m.Data, tc.body) {
			t.Errorf("dead letter %d: %s %v (%d bytes), want %s %q %q", i+1, m.Subject, m.Header, len(m.Data), tc.reason, tc.detail, tc.subject)
		}
	}
	if _, err := ds.GetMsg(t.Context(), uint64(len(cases)+1)); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Fatalf("dead letter %d: %v, want none", len(cases)+1, err)
	}
}

// A transient store failure is retried (nak with delay), not
// dead-lettered; the batch is stored once the store is back.
func TestTransientFailureRetried(t *testing.T) {
	r := newRig(t)
	bs, want := batches(t, r.inv, 1, 200)
	_, js := r.connect()
	c := r.consumer(js)
	r.fail = errors.New("egress.db: disk I/O error")
	r.publish(js, bus.Subject(egress.FormatDefenderJSON), bs[0])
	stop := run(c)
	deadline := time.Now().Add(20 * time.Second)
	for c.Stats().Retried < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v: want 2 retries", c.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Ingest reads r.fail on the consumer's goroutine: stop it first.
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	r.fail = nil
	stop = run(c)
	settled(t, js, c)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if s := c.Stats(); s.Dead != 0 || s.Batches != 1 {
		t.Fatalf("stats %+v, want 1 batch and no dead letter", s)
	}
	if got := r.storedEvents(); got != want {
		t.Fatalf("stored %d events, want %d", got, want)
	}
}

func TestOptionsRejected(t *testing.T) {
	r := newRig(t)
	_, js := r.connect()
	for _, tc := range []struct {
		opt  bus.Option
		want string
	}{
		{bus.WithMaxBytes(0), "bus: message limit 0 not positive"},
		{bus.WithAckWait(time.Millisecond), "bus: ack wait 1ms below 100ms"},
		{bus.WithDurable("a.b"), `bus: durable name "a.b": want a non-empty name without '.', '*', '>' or spaces`},
		{bus.WithStreams("X", "X"), `bus: streams "X" and "X": want two different names`},
		{bus.WithRetryDelay(2 * time.Minute), "bus: retry delay 2m0s: want more than 0 and at most 1m0s"},
	} {
		if _, err := bus.New(t.Context(), js, r.ingest, tc.opt); err == nil || err.Error() != tc.want {
			t.Errorf("err %v, want %s", err, tc.want)
		}
	}
	if _, err := bus.Dial("http://127.0.0.1:4222", "x"); err == nil || err.Error() != `telemetry bus "http://127.0.0.1:4222": want nats://HOST:PORT or tls://HOST:PORT` {
		t.Errorf("dial: %v", err)
	}
}
