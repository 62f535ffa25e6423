package egress

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
)

// zeekTSV holds the state of a Zeek ASCII log: its separators and the
// positions of the conn.log columns wardgate reads.
type zeekTSV struct {
	sep     []byte
	unset   string
	empty   string
	names   []string
	cols    zeekCols
	parts   [][]byte
	tailBuf [][]byte
	addrs   map[string]netip.Addr // parsed addresses, bounded by maxAddrCache
}

const maxAddrCache = 4096

// addr parses an address through a small cache: logs repeat the same hosts.
func (z *zeekTSV) addr(b []byte) (netip.Addr, error) {
	if a, ok := z.addrs[string(b)]; ok {
		return a, nil
	}
	a, err := netip.ParseAddr(string(b))
	if err != nil {
		return a, err
	}
	if z.addrs == nil || len(z.addrs) >= maxAddrCache {
		z.addrs = make(map[string]netip.Addr, 64)
	}
	z.addrs[string(b)] = a
	return a, nil
}

// intern returns common protocol names without allocating.
func intern(b []byte) string {
	switch string(b) {
	case "tcp":
		return "tcp"
	case "udp":
		return "udp"
	case "icmp":
		return "icmp"
	}
	return string(b)
}

type zeekCols struct{ ts, origH, origP, respH, respP, proto, origBytes, respBytes, state int }

func newZeekTSV() *zeekTSV {
	return &zeekTSV{sep: []byte{'\t'}, unset: "-", empty: "(empty)", cols: zeekCols{-1, -1, -1, -1, -1, -1, -1, -1, -1}}
}

// header handles a '#' line. It returns false for a directive it cannot
// read (a malformed header).
func (z *zeekTSV) header(line []byte) bool {
	if v, ok := bytes.CutPrefix(line, []byte("#separator ")); ok {
		s, err := strconv.Unquote(`"` + string(v) + `"`)
		if err != nil || s == "" {
			return false
		}
		z.sep = []byte(s)
		return true
	}
	name, val, _ := bytes.Cut(line[1:], z.sep)
	switch string(name) {
	case "unset_field":
		z.unset = string(val)
	case "empty_field":
		z.empty = string(val)
	case "fields":
		z.names = z.names[:0]
		for _, f := range bytes.Split(val, z.sep) {
			// IoT-23 joined its last columns with runs of spaces.
			z.names = append(z.names, strings.Fields(string(f))...)
		}
		z.cols = zeekCols{-1, -1, -1, -1, -1, -1, -1, -1, -1}
		for i, n := range z.names {
			switch n {
			case "ts":
				z.cols.ts = i
			case "id.orig_h":
				z.cols.origH = i
			case "id.orig_p":
				z.cols.origP = i
			case "id.resp_h":
				z.cols.respH = i
			case "id.resp_p":
				z.cols.respP = i
			case "proto":
				z.cols.proto = i
			case "orig_bytes":
				z.cols.origBytes = i
			case "resp_bytes":
				z.cols.respBytes = i
			case "conn_state":
				z.cols.state = i
			}
		}
		return z.cols.ts >= 0 && z.cols.origH >= 0 && z.cols.respH >= 0
	}
	return true
}

// split cuts a data line into exactly len(names) fields, splitting a
// space-joined tail (IoT-23) when the separator count falls short.
func (z *zeekTSV) split(line []byte) bool {
	z.parts = z.parts[:0]
	for {
		i := bytes.Index(line, z.sep)
		if i < 0 {
			z.parts = append(z.parts, line)
			break
		}
		z.parts = append(z.parts, line[:i])
		line = line[i+len(z.sep):]
	}
	if len(z.parts) < len(z.names) {
		last := z.parts[len(z.parts)-1]
		z.tailBuf = z.tailBuf[:0]
		for len(last) > 0 {
			i := bytes.IndexByte(last, ' ')
			if i < 0 {
				z.tailBuf = append(z.tailBuf, last)
				break
			}
			if i > 0 {
				z.tailBuf = append(z.tailBuf, last[:i])
			}
			last = last[i+1:]
		}
		z.parts = append(z.parts[:len(z.parts)-1], z.tailBuf...)
	}
	return len(z.parts) == len(z.names)
}

func (z *zeekTSV) field(i int) []byte {
	if i < 0 {
		return nil
	}
	v := z.parts[i]
	if string(v) == z.unset || string(v) == z.empty {
		return nil
	}
	return v
}

// event converts the split line.
func (z *zeekTSV) event(ev *Event) error {
	*ev = Event{}
	t, err := parseEpoch(z.field(z.cols.ts))
	if err != nil {
		return err
	}
	ev.Time = t
	if ev.LocalIP, err = z.addr(z.field(z.cols.origH)); err != nil {
		return fmt.Errorf("id.orig_h: %w", err)
	}
	if ev.RemoteIP, err = z.addr(z.field(z.cols.respH)); err != nil {
		return fmt.Errorf("id.resp_h: %w", err)
	}
	if ev.LocalPort, err = port(z.field(z.cols.origP)); err != nil {
		return err
	}
	if ev.RemotePort, err = port(z.field(z.cols.respP)); err != nil {
		return err
	}
	ev.Protocol = intern(z.field(z.cols.proto))
	if ev.SentBytes, err = count(z.field(z.cols.origBytes)); err != nil {
		return err
	}
	if ev.ReceivedBytes, err = count(z.field(z.cols.respBytes)); err != nil {
		return err
	}
	ev.ActionType = zeekAction(string(z.field(z.cols.state)))
	return nil
}

func port(b []byte) (uint16, error) {
	if b == nil {
		return 0, nil
	}
	n, err := strconv.ParseUint(string(b), 10, 16)
	if err != nil {
		return 0, fmt.Errorf("port %q: %w", b, err)
	}
	return uint16(n), nil
}

func count(b []byte) (int64, error) {
	if b == nil {
		return 0, nil
	}
	if n, ok := jsonInt(b); ok && n >= 0 {
		return n, nil
	}
	return 0, fmt.Errorf("count %q: invalid", b)
}

// zeekAction maps conn_state: an established connection (data may have
// flowed) is a success, a rejection a failure, anything unanswered an
// attempt.
func zeekAction(state string) string {
	switch state {
	case "SF", "S1", "S2", "S3", "RSTO", "RSTR", "OTH":
		return ActionConnectionSuccess
	case "REJ":
		return ActionConnectionFailed
	}
	return ActionConnectionAttempt
}

// zeekJSON is one conn.log record written by Zeek's JSON writer. Numbers
// are json.Number so that any spelling of a number reads (see number.go).
type zeekJSON struct {
	TS        json.RawMessage `json:"ts"`
	OrigH     string          `json:"id.orig_h"`
	OrigP     json.Number     `json:"id.orig_p"`
	RespH     string          `json:"id.resp_h"`
	RespP     json.Number     `json:"id.resp_p"`
	Proto     string          `json:"proto"`
	OrigBytes json.Number     `json:"orig_bytes"`
	RespBytes json.Number     `json:"resp_bytes"`
	ConnState string          `json:"conn_state"`
}

func zeekJSONEvent(line []byte, ev *Event) error {
	var z zeekJSON
	if err := json.Unmarshal(line, &z); err != nil {
		return err
	}
	*ev = Event{Protocol: z.Proto, ActionType: zeekAction(z.ConnState)}
	var n [4]int64
	for i, f := range []struct {
		v    json.Number
		name string
		max  int64
	}{{z.OrigP, "id.orig_p", 65535}, {z.RespP, "id.resp_p", 65535}, {z.OrigBytes, "orig_bytes", math.MaxInt64}, {z.RespBytes, "resp_bytes", math.MaxInt64}} {
		v, err := numberInt(f.v, f.name, 0, f.max)
		if err != nil {
			return err
		}
		n[i] = v
	}
	ev.LocalPort, ev.RemotePort, ev.SentBytes, ev.ReceivedBytes = uint16(n[0]), uint16(n[1]), n[2], n[3]
	var err error
	var s string
	switch {
	case len(z.TS) > 0 && z.TS[0] == '"':
		if err = json.Unmarshal(z.TS, &s); err == nil {
			ev.Time, err = ParseTime(s)
		}
	default:
		ev.Time, err = parseEpoch(z.TS)
	}
	if err != nil {
		return err
	}
	if ev.LocalIP, err = netip.ParseAddr(z.OrigH); err != nil {
		return err
	}
	ev.RemoteIP, err = netip.ParseAddr(z.RespH)
	return err
}
