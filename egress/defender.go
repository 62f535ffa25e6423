package egress

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Defender DeviceNetworkEvents columns wardgate reads. Other columns are
// validated (JSON) or ignored (CSV).
const (
	dTimestamp = iota
	dDeviceID
	dDeviceName
	dActionType
	dRemoteIP
	dRemotePort
	dRemoteURL
	dRemoteIPType
	dLocalIP
	dLocalPort
	dProtocol
	dProcess
	dSentBytes
	dReceivedBytes
	nDefender
)

// DefenderColumns are the column names, indexed like defRaw.f.
var DefenderColumns = [nDefender]string{
	"Timestamp", "DeviceId", "DeviceName", "ActionType", "RemoteIP", "RemotePort",
	"RemoteUrl", "RemoteIPType", "LocalIP", "LocalPort", "Protocol",
	"InitiatingProcessFileName", "SentBytes", "ReceivedBytes",
}

func defenderField(k []byte) int {
	switch string(k) {
	case "Timestamp":
		return dTimestamp
	case "DeviceId":
		return dDeviceID
	case "DeviceName":
		return dDeviceName
	case "ActionType":
		return dActionType
	case "RemoteIP":
		return dRemoteIP
	case "RemotePort":
		return dRemotePort
	case "RemoteUrl":
		return dRemoteURL
	case "RemoteIPType":
		return dRemoteIPType
	case "LocalIP":
		return dLocalIP
	case "LocalPort":
		return dLocalPort
	case "Protocol":
		return dProtocol
	case "InitiatingProcessFileName":
		return dProcess
	case "SentBytes":
		return dSentBytes
	case "ReceivedBytes":
		return dReceivedBytes
	}
	return -1
}

// defRaw is one scanned Defender record: the span of every known field
// present, and which are (set: a bit per field, so that reusing a defRaw
// for a new line clears two bytes, not the whole array).
type defRaw struct {
	f   [nDefender]span
	set uint16
	// bad has a bit for each field whose value d.event would reject (the
	// wrong JSON type, an integer field that is not an integer, a port
	// out of range); iv is each integer field's value. Both are kept by
	// put as fields are scanned, so that checking a record and reading
	// its integers re-reads nothing.
	bad     uint16
	iv      [nDefender]int64
	scratch []byte // key unescaping
	// order is the field index of each key position of the last line
	// (-1: not a known field), the scanner's guess for the next line.
	order [24]int8
}

// scanDefenderJSON validates line as a JSON object and fills d.
func scanDefenderJSON(line []byte, d *defRaw) bool {
	d.set = 0
	return scanObject(line, &d.scratch, d)
}

// span returns field f's span; the zero span (absent) when the record
// does not have it.
func (d *defRaw) span(f int) span {
	if d.set&(1<<f) == 0 {
		return span{}
	}
	return d.f[f]
}

var _ [16 - nDefender]struct{} // set has a bit per field

// intFields has the bit of each integer field; portFields of the two
// ports, integers in [0, 65535].
const (
	intFields  = 1<<dRemotePort | 1<<dLocalPort | 1<<dSentBytes | 1<<dReceivedBytes
	portFields = 1<<dRemotePort | 1<<dLocalPort
)

// put sets field f.
func (d *defRaw) put(f int, v span) {
	switch v.kind {
	case kindString:
		d.putString(f, v.v, v.esc)
	case kindNumber:
		d.putNumber(f, v.v, 0, false)
	case kindNull:
		d.putNull(f)
	default:
		d.putOther(f)
	}
}

func (d *defRaw) putString(f int, v []byte, esc bool) {
	d.f[f] = span{kind: kindString, esc: esc, v: v}
	bit := uint16(1) << f
	d.set |= bit
	d.bad &^= bit
	if intFields&bit != 0 {
		d.putIntString(f)
	}
}

// putIntString reads an integer in a string, as Sentinel exports them:
// rare, read through integer.
func (d *defRaw) putIntString(f int) {
	n, err := d.integer(f)
	d.setInt(f, n, err == nil)
}

// putNumber sets f to the number literal lit; when fast is true, lit is
// plain decimal digits of value n.
func (d *defRaw) putNumber(f int, lit []byte, n int64, fast bool) {
	d.f[f] = span{kind: kindNumber, v: lit}
	bit := uint16(1) << f
	d.set |= bit
	if intFields&bit == 0 || !fast || (portFields&bit != 0 && n > 65535) {
		d.putNumberSlow(f, lit, n, fast)
		return
	}
	d.bad &^= bit
	d.iv[f] = n
}

func (d *defRaw) putNumberSlow(f int, lit []byte, n int64, fast bool) {
	if intFields&(1<<f) == 0 {
		d.bad |= 1 << f
		return
	}
	ok := true
	if !fast {
		n, ok = jsonInt(lit)
	}
	d.setInt(f, n, ok)
}

func (d *defRaw) setInt(f int, n int64, ok bool) {
	bit := uint16(1) << f
	if !ok || (portFields&bit != 0 && (n < 0 || n > 65535)) {
		d.bad |= bit
		return
	}
	d.bad &^= bit
	d.iv[f] = n
}

func (d *defRaw) putNull(f int) {
	d.f[f] = span{kind: kindNull}
	bit := uint16(1) << f
	d.set |= bit
	d.bad &^= bit
	d.iv[f] = 0
}

func (d *defRaw) putOther(f int) {
	d.f[f] = span{kind: kindOther}
	bit := uint16(1) << f
	d.set |= bit
	d.bad |= bit
}

// valid reports whether d.event would accept every field's type and
// integer value (the Timestamp aside), without allocating.
func (d *defRaw) valid() bool { return d.bad&d.set == 0 }

// intValue is integer field f of a valid record: 0 when absent or null.
func (d *defRaw) intValue(f int) int64 {
	if d.set&(1<<f) == 0 {
		return 0
	}
	return d.iv[f]
}

// errFieldType: a known field has a value of the wrong JSON type.
var errFieldType = errors.New("field has the wrong type")

// str returns field f as a string (absent and null are ""). A number,
// boolean, object or array where a string is expected is an error.
func (d *defRaw) str(f int) (string, error) {
	s := d.span(f)
	switch s.kind {
	case kindAbsent, kindNull:
		return "", nil
	case kindString:
		if s.esc {
			return string(unquote(nil, s.v)), nil
		}
		return string(s.v), nil
	}
	return "", fmt.Errorf("%s: %w", DefenderColumns[f], errFieldType)
}

// strBytes is str without allocating when the field has no escapes; the
// result is valid until buf is reused.
func (d *defRaw) strBytes(f int, buf []byte) ([]byte, bool) {
	s := d.span(f)
	switch s.kind {
	case kindAbsent, kindNull:
		return nil, true
	case kindString:
		if s.esc {
			return unquote(buf[:0], s.v), true
		}
		return s.v, true
	}
	return nil, false
}

// integer returns an integer field: a JSON integer, a string holding one
// (Sentinel exports numbers as strings), "" / null / absent as 0.
func (d *defRaw) integer(f int) (int64, error) {
	s := d.span(f)
	switch s.kind {
	case kindAbsent, kindNull:
		return 0, nil
	case kindNumber:
		return parseInt(s.v, DefenderColumns[f])
	case kindString:
		v := s.v
		if s.esc {
			v = unquote(nil, v)
		}
		if len(v) == 0 {
			return 0, nil
		}
		return parseInt(v, DefenderColumns[f])
	}
	return 0, fmt.Errorf("%s: %w", DefenderColumns[f], errFieldType)
}

// parseInt parses an integer written as any JSON number ("1500",
// "1500.0", "1.5e3"; see jsonInt), without allocating on the fast path.
func parseInt(b []byte, name string) (int64, error) {
	if n, ok := jsonInt(b); ok {
		return n, nil
	}
	return 0, fmt.Errorf("%s %q: not an integer", name, b)
}

func fastUint(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// event converts a scanned record. A record without a usable Timestamp or
// with a field of the wrong type is malformed.
func (d *defRaw) event(ev *Event) error {
	*ev = Event{}
	ts, err := d.str(dTimestamp)
	if err != nil {
		return err
	}
	if ev.Time, err = ParseTime(ts); err != nil {
		return err
	}
	for _, p := range []struct {
		f   int
		dst *string
	}{{dDeviceID, &ev.DeviceID}, {dDeviceName, &ev.DeviceName}, {dActionType, &ev.ActionType},
		{dRemoteURL, &ev.RemoteURL}, {dRemoteIPType, &ev.RemoteIPType}, {dProtocol, &ev.Protocol}, {dProcess, &ev.Process}} {
		if *p.dst, err = d.str(p.f); err != nil {
			return err
		}
	}
	for _, p := range []struct {
		f   int
		dst *netip.Addr
	}{{dRemoteIP, &ev.RemoteIP}, {dLocalIP, &ev.LocalIP}} {
		s, err := d.str(p.f)
		if err != nil {
			return err
		}
		if s != "" {
			// An address Defender could not resolve stays unset rather
			// than failing the record.
			*p.dst, _ = netip.ParseAddr(s)
		}
	}
	var n int64
	for _, p := range []struct {
		f   int
		dst *uint16
	}{{dRemotePort, &ev.RemotePort}, {dLocalPort, &ev.LocalPort}} {
		if n, err = d.integer(p.f); err != nil {
			return err
		}
		if n < 0 || n > 65535 {
			return fmt.Errorf("%s %d out of range", DefenderColumns[p.f], n)
		}
		*p.dst = uint16(n)
	}
	if ev.SentBytes, err = d.integer(dSentBytes); err != nil {
		return err
	}
	ev.ReceivedBytes, err = d.integer(dReceivedBytes)
	return err
}

// ParseTime parses the timestamp forms Defender, Sentinel and OCSF
// exports use: RFC 3339 with up to nine fractional digits (fast path for
// UTC "Z"), "2006-01-02 15:04:05[.fff]" as UTC, and the US form
// "1/2/2006, 3:04:05.000 PM" of the portal's CSV export, as UTC.
func ParseTime(s string) (time.Time, error) {
	if sec, nsec, ok := fastRFC3339Z([]byte(s)); ok {
		return time.Unix(sec, nsec).UTC(), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", "1/2/2006, 3:04:05.999999999 PM"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("timestamp %q: not RFC 3339", s)
}

// restRFC3339Z checks the part after the hour of
// "YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z" without computing it.
func restRFC3339Z(b []byte) bool {
	if b[13] != ':' || b[16] != ':' || b[14] < '0' || b[14] > '5' || b[15] < '0' || b[15] > '9' ||
		b[17] < '0' || b[17] > '5' || b[18] < '0' || b[18] > '9' {
		return false
	}
	i := 19
	if b[i] == '.' {
		i++
		s := i
		for i < len(b) && i-s < 9 && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == s {
			return false
		}
	}
	return i == len(b)-1 && (b[i] == 'Z' || b[i] == 'z')
}

// fastRFC3339Z parses "YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z".
func fastRFC3339Z(b []byte) (sec, nsec int64, ok bool) {
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != 't') || b[13] != ':' || b[16] != ':' {
		return 0, 0, false
	}
	d := func(i, n int) (int, bool) {
		v := 0
		for _, c := range b[i : i+n] {
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	y, ok1 := d(0, 4)
	mo, ok2 := d(5, 2)
	da, ok3 := d(8, 2)
	h, ok4 := d(11, 2)
	mi, ok5 := d(14, 2)
	se, ok6 := d(17, 2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || mo < 1 || mo > 12 || da < 1 || da > daysIn(y, mo) || h > 23 || mi > 59 || se > 59 {
		return 0, 0, false
	}
	i := 19
	if b[i] == '.' {
		i++
		s := i
		for i < len(b) && i-s < 9 && b[i] >= '0' && b[i] <= '9' {
			nsec = nsec*10 + int64(b[i]-'0')
			i++
		}
		if i == s {
			return 0, 0, false
		}
		for k := i - s; k < 9; k++ {
			nsec *= 10
		}
	}
	if i != len(b)-1 || (b[i] != 'Z' && b[i] != 'z') {
		return 0, 0, false
	}
	return daysFromCivil(y, mo, da)*86400 + int64(h*3600+mi*60+se), nsec, true
}

func daysIn(y, m int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil is days since 1970-01-01 (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

// --- CSV ---

// csvSplit splits one CSV line (RFC 4180 quoting, "" inside quotes) into
// fields appended to dst. A quote left open is an error: Defender's
// columns never span lines.
func csvSplit(dst []string, line []byte) ([]string, bool) {
	for {
		if len(line) > 0 && line[0] == '"' {
			var f []byte
			i := 1
			for {
				j := bytes.IndexByte(line[i:], '"')
				if j < 0 {
					return dst, false
				}
				f = append(f, line[i:i+j]...)
				i += j + 1
				if i < len(line) && line[i] == '"' {
					f = append(f, '"')
					i++
					continue
				}
				break
			}
			dst = append(dst, string(f))
			if i == len(line) {
				return dst, true
			}
			if line[i] != ',' {
				return dst, false
			}
			line = line[i+1:]
			continue
		}
		j := bytes.IndexByte(line, ',')
		if j < 0 {
			if bytes.IndexByte(line, '"') >= 0 {
				return dst, false
			}
			return append(dst, string(line)), true
		}
		if bytes.IndexByte(line[:j], '"') >= 0 {
			return dst, false
		}
		dst = append(dst, string(line[:j]))
		line = line[j+1:]
	}
}

// csvHeader maps Defender column positions; ok is false if the line has no
// Timestamp column.
func csvHeader(fields []string) (cols [nDefender]int, ok bool) {
	for i := range cols {
		cols[i] = -1
	}
	for i, f := range fields {
		f = string(bytes.TrimPrefix([]byte(f), []byte("\ufeff")))
		if k := defenderField([]byte(f)); k >= 0 {
			cols[k] = i
		}
	}
	return cols, cols[dTimestamp] >= 0
}

// csvRecord fills d from a CSV record as string spans, so conversion is
// shared with JSON. Empty cells are null.
func csvRecord(d *defRaw, cols *[nDefender]int, rec []string) bool {
	d.set = 0
	for k, c := range cols {
		if c < 0 {
			continue
		}
		if c >= len(rec) {
			return false
		}
		if rec[c] == "" {
			d.put(k, span{kind: kindNull})
			continue
		}
		d.put(k, span{kind: kindString, v: []byte(rec[c])})
	}
	return true
}
