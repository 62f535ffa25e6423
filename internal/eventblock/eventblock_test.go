package eventblock

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/wardgate/wardgate/egress"
)

func randomEvents(rng *rand.Rand, n int, t0 time.Time) []egress.Event {
	addrs := []netip.Addr{{}, netip.MustParseAddr("52.1.1.1"), netip.MustParseAddr("10.0.0.7"), netip.MustParseAddr("2001:db8::1"),
		netip.MustParseAddr("fe80::1%eth0"), netip.MustParseAddr("::ffff:1.2.3.4")}
	actions := []string{egress.ActionConnectionSuccess, egress.ActionConnectionFailed, egress.ActionConnectionAttempt, ""}
	out := make([]egress.Event, n)
	for i := range out {
		out[i] = egress.Event{
			// Few distinct times: many ties, out of order.
			Time:       t0.Add(time.Duration(rng.IntN(50)) * time.Millisecond * 7),
			DeviceName: fmt.Sprint("dev-", rng.IntN(20)), DeviceID: fmt.Sprint("id-", rng.IntN(3)), ActionType: actions[rng.IntN(len(actions))],
			RemoteIP: addrs[rng.IntN(len(addrs))], RemotePort: uint16(rng.IntN(65536)), RemoteURL: fmt.Sprint("h", rng.IntN(9), ".example.com"),
			RemoteIPType: []string{"Public", "Private", ""}[rng.IntN(3)], LocalIP: addrs[rng.IntN(len(addrs))], LocalPort: uint16(rng.IntN(65536)),
			Protocol: "Tcp", Process: strings.Repeat("p", rng.IntN(4)), SentBytes: rng.Int64N(1 << 40), ReceivedBytes: rng.Int64N(1<<40) - 1<<39,
		}
		if rng.IntN(10) == 0 {
			out[i].Time = time.Unix(-rng.Int64N(1<<31), 0).UTC() // before 1970
		}
	}
	return out
}

func encode(t testing.TB, evs []egress.Event) (data []byte, first, last int64) {
	t.Helper()
	b := NewBuilder()
	for i := range evs {
		if err := b.Add(&evs[i]); err != nil {
			t.Fatal(err)
		}
	}
	data, first, last, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if b.Len() != 0 {
		t.Fatalf("builder holds %d events after Encode", b.Len())
	}
	return data, first, last
}

func decodeAll(t testing.TB, data []byte) []egress.Event {
	t.Helper()
	b, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]egress.Event, b.Len())
	for i := range out {
		b.Event(i, &out[i])
	}
	return out
}

// stableByTime is what a block must give back: the events sorted by time,
// ties in the order they were added.
func stableByTime(evs []egress.Event) []egress.Event {
	out := slices.Clone(evs)
	slices.SortStableFunc(out, func(x, y egress.Event) int { return x.Time.Compare(y.Time) })
	for i := range out {
		out[i].Time = time.Unix(0, out[i].Time.UnixNano()).UTC()
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Date(2026, 3, 2, 10, 0, 0, 123, time.UTC)
	for _, n := range []int{1, 2, 17, 1000, MaxEvents} {
		evs := randomEvents(rng, n, t0)
		data, first, last := encode(t, evs)
		want := stableByTime(evs)
		got := decodeAll(t, data)
		if !reflect.DeepEqual(got, want) {
			for i := range got {
				if !reflect.DeepEqual(got[i], want[i]) {
					t.Fatalf("n=%d: event %d = %+v, want %+v", n, i, got[i], want[i])
				}
			}
			t.Fatalf("n=%d: %d events, want %d", n, len(got), len(want))
		}
		if first != want[0].Time.UnixNano() || last != want[n-1].Time.UnixNano() {
			t.Fatalf("n=%d: first %d last %d", n, first, last)
		}
	}
}

// A builder reused after Encode starts a new block.
func TestBuilderReuse(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	b := NewBuilder()
	for round := range 3 {
		evs := randomEvents(rng, 100+round, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		for i := range evs {
			if err := b.Add(&evs[i]); err != nil {
				t.Fatal(err)
			}
		}
		data, _, _, err := b.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if got := decodeAll(t, data); !reflect.DeepEqual(got, stableByTime(evs)) {
			t.Fatalf("round %d: events differ", round)
		}
	}
	if _, _, _, err := b.Encode(); err == nil {
		t.Fatal("an empty block encoded")
	}
}

func TestLimits(t *testing.T) {
	b := NewBuilder()
	big := egress.Event{DeviceName: "pump", RemoteURL: strings.Repeat("a", MaxEventStrings)}
	if err := b.Add(&big); !errors.Is(err, ErrEventTooLarge) || b.Len() != 0 {
		t.Fatalf("Add of a %d-byte event: %v, %d held", MaxEventStrings+4, err, b.Len())
	}
	ev := egress.Event{DeviceName: "pump"}
	for range MaxEvents {
		if err := b.Add(&ev); err != nil {
			t.Fatal(err)
		}
	}
	if !b.Full() {
		t.Fatal("a block of MaxEvents is not full")
	}
	if err := b.Add(&ev); err == nil {
		t.Fatal("Add past MaxEvents accepted")
	}
	// Text fills a block before MaxEvents do.
	b = NewBuilder()
	for i := 0; !b.Full(); i++ {
		e := egress.Event{DeviceName: fmt.Sprint(i), RemoteURL: strings.Repeat("u", 100_000) + fmt.Sprint(i)}
		if err := b.Add(&e); err != nil {
			t.Fatal(err)
		}
	}
	if b.Len() > 100 {
		t.Fatalf("a block of %d events of 100 kB each is not full", b.Len())
	}
	data, _, _, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(data); err != nil {
		t.Fatal(err)
	}
}

func TestCorrupt(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	evs := randomEvents(rng, 300, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	data, _, _ := encode(t, evs)
	raw, err := dec.DecodeAll(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	z, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	recompress := func(b []byte) []byte { return z.EncodeAll(b, nil) }
	cases := map[string][]byte{
		"empty":            nil,
		"not zstd":         []byte("hello, world"),
		"truncated frame":  data[:len(data)/2],
		"other version":    recompress(append([]byte{2}, raw[1:]...)),
		"truncated raw":    recompress(raw[:len(raw)-1]),
		"trailing bytes":   recompress(append(slices.Clone(raw), 0)),
		"huge event count": recompress(append([]byte{version, 0xff, 0xff, 0xff, 0xff, 0x0f}, raw[3:]...)),
		"too large":        recompress(make([]byte, MaxDecoded+1)),
	}
	for name, b := range cases {
		if _, err := Decode(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
	// Every single-byte change of the decompressed block decodes to an
	// error or to a block (never a panic); every truncation is an error.
	for i := range raw {
		c := slices.Clone(raw)
		c[i] ^= 0x5a
		decodeRaw(c)
		if _, err := decodeRaw(raw[:i]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated at %d: %v", i, err)
		}
	}
}

func TestMerge(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	t0 := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	var all []egress.Event
	var blocks []Stored
	for seq := range int64(12) {
		// Overlapping blocks with ties between them.
		evs := randomEvents(rng, 1+rng.IntN(200), t0.Add(time.Duration(seq)*100*time.Millisecond))
		all = append(all, evs...)
		data, first, _ := encode(t, evs)
		blocks = append(blocks, Stored{Seq: seq + 1, First: first, Data: data})
	}
	slices.SortStableFunc(blocks, func(x, y Stored) int {
		if x.First != y.First {
			return cmpInt(x.First, y.First)
		}
		return cmpInt(x.Seq, y.Seq)
	})
	i := 0
	next := func() (Stored, bool, error) {
		if i == len(blocks) {
			return Stored{}, false, nil
		}
		i++
		return blocks[i-1], true, nil
	}
	var got []egress.Event
	if err := Merge(next, func(ev *egress.Event) error { got = append(got, *ev); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := stableByTime(all); !reflect.DeepEqual(got, want) {
		t.Fatalf("merged %d events, not in time then ingestion order (want %d)", len(got), len(want))
	}
	// A block stored with another first time is refused.
	i = 0
	blocks[3].First--
	if err := Merge(next, func(*egress.Event) error { return nil }); err == nil {
		t.Fatal("a block out of place merged")
	}
	blocks[3].First++
	i = 0
	blocks[5].Data = []byte("junk")
	if err := Merge(next, func(*egress.Event) error { return nil }); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt block: %v", err)
	}
}

func cmpInt(x, y int64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// FuzzDecode: whatever the bytes, Decode returns a block or ErrCorrupt,
// and a block it returns re-encodes to the same events.
func FuzzDecode(f *testing.F) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, n := range []int{1, 3, 40} {
		data, _, _ := encode(f, randomEvents(rng, n, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)))
		f.Add(data)
		raw, _ := dec.DecodeAll(data, nil)
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, decode := range []func([]byte) (*Block, error){Decode, decodeRaw} {
			b, err := decode(data)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("err = %v, want ErrCorrupt", err)
				}
				continue
			}
			evs := make([]egress.Event, b.Len())
			for i := range evs {
				b.Event(i, &evs[i])
			}
			again, _, _ := encode(t, evs)
			if got := decodeAll(t, again); !reflect.DeepEqual(got, evs) {
				t.Fatalf("re-encoded block differs")
			}
		}
	})
}

// A Writer stores a block each time one fills and the rest at Flush; the
// blocks hold every event added, and a Flush with nothing added stores
// nothing.
func TestWriterStoresFullBlocks(t *testing.T) {
	evs := randomEvents(rand.New(rand.NewPCG(7, 7)), MaxEvents+3, time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC))
	var sizes []int
	var got []egress.Event
	w := NewWriter(func(_ context.Context, n int, _, _ int64, data []byte) error {
		sizes = append(sizes, n)
		got = append(got, decodeAll(t, data)...)
		return nil
	})
	for i := range evs {
		if err := w.Add(t.Context(), &evs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(sizes, []int{MaxEvents}) {
		t.Fatalf("blocks stored before Flush: %v, want [%d]", sizes, MaxEvents)
	}
	for range 2 {
		if err := w.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(sizes, []int{MaxEvents, 3}) {
		t.Fatalf("blocks stored: %v, want [%d 3]", sizes, MaxEvents)
	}
	if len(got) != len(evs) {
		t.Fatalf("%d events stored, want %d", len(got), len(evs))
	}
	stored := errors.New("disk full")
	w = NewWriter(func(context.Context, int, int64, int64, []byte) error { return stored })
	if err := w.Add(t.Context(), &evs[0]); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(t.Context()); !errors.Is(err, stored) {
		t.Fatalf("Flush = %v, want the store's error", err)
	}
}

// sliceRows are rows held in memory, one []any a row.
type sliceRows struct {
	rows [][]any
	err  error
}

func (r *sliceRows) Next() bool { return len(r.rows) > 0 }
func (r *sliceRows) Err() error { return r.err }
func (r *sliceRows) Scan(dest ...any) error {
	row := r.rows[0]
	r.rows = r.rows[1:]
	for i, d := range dest {
		reflect.ValueOf(d).Elem().Set(reflect.ValueOf(row[i]))
	}
	return nil
}

// MergeRows gives the events in time order and says whose an error is;
// GroupRows groups every event of the blocks.
func TestMergeRowsAndGroupRows(t *testing.T) {
	evs := randomEvents(rand.New(rand.NewPCG(3, 4)), 300, time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC))
	d1, f1, _ := encode(t, evs[:150])
	d2, f2, _ := encode(t, evs[150:])
	stored := [][]any{{int64(1), f1, d1}, {int64(2), f2, d2}}
	if f2 < f1 {
		stored = [][]any{{int64(2), f2, d2}, {int64(1), f1, d1}}
	}
	var got []egress.Event
	fromFn, err := MergeRows(&sliceRows{rows: slices.Clone(stored)}, func(ev *egress.Event) error { got = append(got, *ev); return nil })
	if err != nil || fromFn {
		t.Fatalf("MergeRows = %v, %v", fromFn, err)
	}
	want := slices.Clone(evs)
	slices.SortStableFunc(want, func(x, y egress.Event) int { return x.Time.Compare(y.Time) })
	if !reflect.DeepEqual(got, want) {
		t.Fatal("MergeRows: events not in time then ingestion order")
	}
	stop := errors.New("enough")
	if fromFn, err := MergeRows(&sliceRows{rows: slices.Clone(stored)}, func(*egress.Event) error { return stop }); err != stop || !fromFn {
		t.Fatalf("fn failing: %v, %v; want its error, from fn", fromFn, err)
	}
	broken := errors.New("connection lost")
	if fromFn, err := MergeRows(&sliceRows{err: broken}, func(*egress.Event) error { return nil }); err != broken || fromFn {
		t.Fatalf("rows failing: %v, %v; want the rows' error, not from fn", fromFn, err)
	}
	gr, all := egress.NewGrouper(), egress.NewGrouper()
	if err := GroupRows(&sliceRows{rows: [][]any{{d1}, {d2}}}, gr); err != nil {
		t.Fatal(err)
	}
	for i := range evs {
		all.Add(evs[i].DeviceName, &evs[i])
	}
	if !reflect.DeepEqual(gr.Groups(), all.Groups()) {
		t.Fatal("GroupRows: groups differ from the events'")
	}
	if err := GroupRows(&sliceRows{rows: [][]any{{[]byte("not a block")}}}, gr); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("GroupRows of a bad block: %v, want ErrCorrupt", err)
	}
}
