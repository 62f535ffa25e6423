// Package eventblock is how the stores keep raw egress events: a block of
// up to MaxEvents events of one ingested batch, sorted by time (stably:
// ties keep their ingestion order), column-encoded (one dictionary of the
// block's strings and one of its addresses, varint time deltas, varint
// ports and byte counts) and compressed with zstd. A store keeps one row
// per block, with the block's first time and an ingestion sequence, and
// reads its events back in time order by merging the blocks (Merge).
//
// Decode never trusts a block: a corrupt or oversized one is an error
// (ErrCorrupt), never a panic, and nothing is allocated beyond the limits
// below.
//
// Imports: the standard library, egress and klauspost/compress/zstd.
package eventblock

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/wardgate/wardgate/egress"
)

// Limits of one block.
const (
	// MaxEvents is the most events a block holds.
	MaxEvents = 1 << 16
	// MaxEventStrings is the most bytes an event's text fields (device
	// name and ID, action, URL, address type, protocol, process) may hold
	// together: Add refuses a larger event.
	MaxEventStrings = 1 << 20
	// blockStrings: a block is full once its dictionary holds this many
	// bytes of text.
	blockStrings = 8 << 20
	// MaxDecoded is the most bytes a block decompresses to: a full
	// dictionary (blockStrings, plus one event's MaxEventStrings) and
	// MaxEvents events' columns at their widest, rounded up.
	MaxDecoded = 16 << 20
)

// version is the encoding's first byte.
const version = 1

// ErrCorrupt: a stored block does not decode.
var ErrCorrupt = errors.New("eventblock: corrupt event block")

// ErrEventTooLarge: an event's text fields exceed MaxEventStrings.
var ErrEventTooLarge = errors.New("eventblock: event too large to store")

// The text columns, in the encoding's order.
const (
	colDevice = iota
	colDeviceID
	colAction
	colRemoteURL
	colRemoteIPType
	colProtocol
	colProcess
	nStr
)

// Builder collects the events of one block, in ingestion order. The zero
// value is not usable: NewBuilder.
type Builder struct {
	strs     map[string]uint32
	strList  []string
	strBytes int
	addrs    map[netip.Addr]uint32
	addrList []netip.Addr
	ts       []int64
	str      [nStr][]uint32
	addr     [2][]uint32 // remote, local
	port     [2][]uint16
	sent     []int64
	recv     []int64
}

// NewBuilder returns an empty Builder.
func NewBuilder() *Builder {
	return &Builder{strs: map[string]uint32{}, addrs: map[netip.Addr]uint32{}}
}

// Len is the number of events added since the last Encode.
func (b *Builder) Len() int { return len(b.ts) }

// Full reports whether the block should be encoded before the next Add.
func (b *Builder) Full() bool { return len(b.ts) >= MaxEvents || b.strBytes >= blockStrings }

func (b *Builder) str1(s string) uint32 {
	if i, ok := b.strs[s]; ok {
		return i
	}
	i := uint32(len(b.strList))
	b.strs[s] = i
	b.strList = append(b.strList, s)
	b.strBytes += len(s)
	return i
}

func (b *Builder) addr1(a netip.Addr) uint32 {
	if i, ok := b.addrs[a]; ok {
		return i
	}
	i := uint32(len(b.addrList))
	b.addrs[a] = i
	b.addrList = append(b.addrList, a)
	return i
}

// Add appends one event (copied). The caller encodes the block once Full.
func (b *Builder) Add(ev *egress.Event) error {
	if n := len(ev.DeviceName) + len(ev.DeviceID) + len(ev.ActionType) + len(ev.RemoteURL) + len(ev.RemoteIPType) +
		len(ev.Protocol) + len(ev.Process) + len(ev.RemoteIP.Zone()) + len(ev.LocalIP.Zone()); n > MaxEventStrings {
		return fmt.Errorf("%w: event of device %.64q at %s has %d bytes of text, over %d", ErrEventTooLarge, ev.DeviceName,
			ev.Time.Format(time.RFC3339Nano), n, MaxEventStrings)
	}
	if len(b.ts) >= MaxEvents {
		return fmt.Errorf("eventblock: block full (%d events): encode it first", len(b.ts))
	}
	b.ts = append(b.ts, ev.Time.UnixNano())
	for c, s := range [nStr]string{ev.DeviceName, ev.DeviceID, ev.ActionType, ev.RemoteURL, ev.RemoteIPType, ev.Protocol, ev.Process} {
		b.str[c] = append(b.str[c], b.str1(s))
	}
	b.addr[0] = append(b.addr[0], b.addr1(ev.RemoteIP))
	b.addr[1] = append(b.addr[1], b.addr1(ev.LocalIP))
	b.port[0] = append(b.port[0], ev.RemotePort)
	b.port[1] = append(b.port[1], ev.LocalPort)
	b.sent = append(b.sent, ev.SentBytes)
	b.recv = append(b.recv, ev.ReceivedBytes)
	return nil
}

var (
	encOnce sync.Once
	enc     *zstd.Encoder
	dec     *zstd.Decoder
	zErr    error
)

func codecs() error {
	encOnce.Do(func() {
		enc, zErr = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(true))
		if zErr == nil {
			dec, zErr = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(MaxDecoded), zstd.WithDecoderMaxWindow(MaxDecoded))
		}
	})
	return zErr
}

// Encode returns the block of the events added, sorted by time (stably),
// compressed, with its first and last time (Unix nanoseconds), and
// empties the Builder. Encoding an empty Builder is an error.
func (b *Builder) Encode() (data []byte, first, last int64, err error) {
	n := len(b.ts)
	if n == 0 {
		return nil, 0, 0, errors.New("eventblock: no events to encode")
	}
	if err := codecs(); err != nil {
		return nil, 0, 0, err
	}
	// The order: a stable sort by time of the positions, unless they are
	// in order already (the usual case).
	var order []int32
	if !slices.IsSorted(b.ts) {
		order = make([]int32, n)
		for i := range order {
			order[i] = int32(i)
		}
		slices.SortStableFunc(order, func(x, y int32) int {
			switch tx, ty := b.ts[x], b.ts[y]; {
			case tx < ty:
				return -1
			case tx > ty:
				return 1
			}
			return 0
		})
	}
	at := func(i int) int {
		if order == nil {
			return i
		}
		return int(order[i])
	}
	raw := make([]byte, 0, 64+b.strBytes+len(b.strList)*2+len(b.addrList)*17+n*40)
	raw = append(raw, version)
	raw = binary.AppendUvarint(raw, uint64(n))
	raw = binary.AppendUvarint(raw, uint64(len(b.strList)))
	for _, s := range b.strList {
		raw = binary.AppendUvarint(raw, uint64(len(s)))
		raw = append(raw, s...)
	}
	raw = binary.AppendUvarint(raw, uint64(len(b.addrList)))
	for _, a := range b.addrList {
		ab, _ := a.MarshalBinary() // never fails
		raw = binary.AppendUvarint(raw, uint64(len(ab)))
		raw = append(raw, ab...)
	}
	prev := int64(0)
	for i := range n {
		t := b.ts[at(i)]
		raw = binary.AppendVarint(raw, t-prev)
		prev = t
	}
	for c := range nStr {
		for i := range n {
			raw = binary.AppendUvarint(raw, uint64(b.str[c][at(i)]))
		}
	}
	for c := range 2 {
		for i := range n {
			raw = binary.AppendUvarint(raw, uint64(b.addr[c][at(i)]))
		}
	}
	for c := range 2 {
		for i := range n {
			raw = binary.AppendUvarint(raw, uint64(b.port[c][at(i)]))
		}
	}
	for i := range n {
		raw = binary.AppendVarint(raw, b.sent[at(i)])
	}
	for i := range n {
		raw = binary.AppendVarint(raw, b.recv[at(i)])
	}
	first, last = b.ts[at(0)], b.ts[at(n-1)]
	data = enc.EncodeAll(raw, make([]byte, 0, len(raw)/4+64))
	b.reset()
	return data, first, last, nil
}

func (b *Builder) reset() {
	clear(b.strs)
	clear(b.addrs)
	b.strList, b.addrList, b.strBytes = b.strList[:0], b.addrList[:0], 0
	b.ts, b.sent, b.recv = b.ts[:0], b.sent[:0], b.recv[:0]
	for c := range b.str {
		b.str[c] = b.str[c][:0]
	}
	for c := range 2 {
		b.addr[c], b.port[c] = b.addr[c][:0], b.port[c][:0]
	}
}

// Block is a decoded block: its events in time order.
type Block struct {
	strs  []string
	addrs []netip.Addr
	ts    []int64
	str   [nStr][]uint32
	addr  [2][]uint32
	port  [2][]uint16
	sent  []int64
	recv  []int64
}

// Len is the number of events.
func (b *Block) Len() int { return len(b.ts) }

// Time is event i's time, Unix nanoseconds.
func (b *Block) Time(i int) int64 { return b.ts[i] }

// Event sets *ev to event i.
func (b *Block) Event(i int, ev *egress.Event) {
	*ev = egress.Event{
		Time:          time.Unix(0, b.ts[i]).UTC(),
		DeviceName:    b.strs[b.str[colDevice][i]],
		DeviceID:      b.strs[b.str[colDeviceID][i]],
		ActionType:    b.strs[b.str[colAction][i]],
		RemoteIP:      b.addrs[b.addr[0][i]],
		RemotePort:    b.port[0][i],
		RemoteURL:     b.strs[b.str[colRemoteURL][i]],
		RemoteIPType:  b.strs[b.str[colRemoteIPType][i]],
		LocalIP:       b.addrs[b.addr[1][i]],
		LocalPort:     b.port[1][i],
		Protocol:      b.strs[b.str[colProtocol][i]],
		Process:       b.strs[b.str[colProcess][i]],
		SentBytes:     b.sent[i],
		ReceivedBytes: b.recv[i],
	}
}

// reader reads the decompressed encoding; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrCorrupt, what)
	}
}

func (r *reader) uvarint(what string, limit uint64) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	if v > limit {
		r.fail(fmt.Sprintf("%s %d over %d", what, v, limit))
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint(what string) int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes(what string, n uint64) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.fail(what + " past the end")
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

// Decode decodes a block Encode made. A block that is not one, or that
// exceeds the limits, is ErrCorrupt.
func Decode(data []byte) (*Block, error) {
	if err := codecs(); err != nil {
		return nil, err
	}
	raw, err := dec.DecodeAll(data, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if len(raw) > MaxDecoded {
		return nil, fmt.Errorf("%w: %d bytes decoded, over %d", ErrCorrupt, len(raw), MaxDecoded)
	}
	return decodeRaw(raw)
}

func decodeRaw(raw []byte) (*Block, error) {
	if len(raw) == 0 || raw[0] != version {
		return nil, fmt.Errorf("%w: not an event block of version %d", ErrCorrupt, version)
	}
	r := &reader{b: raw[1:]}
	// Every event takes at least one byte in each of its 14 columns, every
	// dictionary entry one byte: the counts are bounded by what is left.
	n := r.uvarint("event count", min(MaxEvents, uint64(len(r.b))/14))
	if r.err == nil && n == 0 {
		r.fail("no events")
	}
	ns := r.uvarint("string count", uint64(len(r.b)))
	// One string holding the whole dictionary: one allocation.
	var lens []uint64
	total := 0
	start := r.b
	for range ns {
		l := r.uvarint("string length", uint64(len(r.b)))
		lens = append(lens, l)
		r.bytes("string", l)
		total += int(l)
		if r.err != nil {
			return nil, r.err
		}
	}
	b := &Block{strs: make([]string, 0, ns)}
	if ns > 0 {
		all := make([]byte, 0, total)
		rr := &reader{b: start}
		for _, l := range lens {
			rr.uvarint("string length", l)
			all = append(all, rr.bytes("string", l)...)
		}
		s := string(all)
		off := 0
		for _, l := range lens {
			b.strs = append(b.strs, s[off:off+int(l)])
			off += int(l)
		}
	}
	na := r.uvarint("address count", uint64(len(r.b)))
	b.addrs = make([]netip.Addr, 0, na)
	for range na {
		l := r.uvarint("address length", uint64(len(r.b)))
		ab := r.bytes("address", l)
		if r.err != nil {
			return nil, r.err
		}
		var a netip.Addr
		if err := a.UnmarshalBinary(ab); err != nil {
			r.fail("address: " + err.Error())
			return nil, r.err
		}
		b.addrs = append(b.addrs, a)
	}
	if r.err != nil {
		return nil, r.err
	}
	if uint64(len(r.b)) < n*14 {
		r.fail("columns shorter than their events")
		return nil, r.err
	}
	b.ts = make([]int64, n)
	prev := int64(0)
	for i := range b.ts {
		d := r.varint("time")
		if i > 0 && (d < 0 || prev+d < prev) {
			r.fail("times out of order")
		}
		prev += d
		b.ts[i] = prev
	}
	for c := range nStr {
		b.str[c] = make([]uint32, n)
		for i := range b.str[c] {
			b.str[c][i] = uint32(r.uvarint("string index", max(ns, 1)-1))
		}
	}
	if ns == 0 {
		r.fail("no strings")
	}
	for c := range 2 {
		b.addr[c] = make([]uint32, n)
		for i := range b.addr[c] {
			b.addr[c][i] = uint32(r.uvarint("address index", max(na, 1)-1))
		}
	}
	if na == 0 {
		r.fail("no addresses")
	}
	for c := range 2 {
		b.port[c] = make([]uint16, n)
		for i := range b.port[c] {
			b.port[c][i] = uint16(r.uvarint("port", 1<<16-1))
		}
	}
	b.sent = make([]int64, n)
	for i := range b.sent {
		b.sent[i] = r.varint("sent bytes")
	}
	b.recv = make([]int64, n)
	for i := range b.recv {
		b.recv[i] = r.varint("received bytes")
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail(fmt.Sprintf("%d bytes after the columns", len(r.b)))
	}
	if r.err != nil {
		return nil, r.err
	}
	return b, nil
}

// Writer adds events to a Builder and hands each block to store once it is
// full, and the rest at Flush: how a store writes a batch's blocks.
type Writer struct {
	b     *Builder
	store func(ctx context.Context, events int, first, last int64, data []byte) error
}

// NewWriter returns a Writer that stores each encoded block with store
// (the block's event count, first and last times, and its bytes).
func NewWriter(store func(ctx context.Context, events int, first, last int64, data []byte) error) *Writer {
	return &Writer{b: NewBuilder(), store: store}
}

// Add adds ev, storing the block once it is full.
func (w *Writer) Add(ctx context.Context, ev *egress.Event) error {
	full, err := w.Append(ev)
	if err != nil || !full {
		return err
	}
	return w.Flush(ctx)
}

// Append adds ev without storing anything, and reports whether the block
// is full: the caller then calls Flush (as Add does), when it can write.
func (w *Writer) Append(ev *egress.Event) (full bool, err error) {
	if err := w.b.Add(ev); err != nil {
		return false, err
	}
	return w.b.Full(), nil
}

// Flush stores the events added since the last block was stored, if any.
func (w *Writer) Flush(ctx context.Context) error {
	n := w.b.Len()
	if n == 0 {
		return nil
	}
	data, first, last, err := w.b.Encode()
	if err != nil {
		return err
	}
	return w.store(ctx, n, first, last, data)
}
