package egress

import (
	"bytes"
	"errors"
	"io"
)

// Detect names the format of a telemetry file from its first bytes (a few
// KiB are enough): Zeek's '#' header, a CSV header with Defender columns,
// or a JSON object whose keys identify Defender, Zeek or OCSF.
func Detect(prefix []byte) (Format, error) {
	b := bytes.TrimPrefix(prefix, []byte("\ufeff"))
	for {
		line, rest, found := bytes.Cut(b, []byte{'\n'})
		t := bytes.TrimSpace(line)
		if len(t) == 0 && found {
			b = rest
			continue
		}
		switch {
		case len(t) == 0:
			return "", ErrUnknownFormat
		case t[0] == '#':
			return FormatZeekTSV, nil
		case t[0] == '{':
			switch {
			case bytes.Contains(t, []byte(`"class_uid"`)):
				return FormatOCSF, nil
			case bytes.Contains(t, []byte(`"id.orig_h"`)):
				return FormatZeekJSON, nil
			case bytes.Contains(t, []byte(`"ActionType"`)), bytes.Contains(t, []byte(`"DeviceName"`)), bytes.Contains(t, []byte(`"RemoteIP"`)), bytes.Contains(t, []byte(`"Timestamp"`)):
				return FormatDefenderJSON, nil
			}
			return "", ErrUnknownFormat
		case bytes.Contains(t, []byte("Timestamp")) && bytes.Contains(t, []byte(",")):
			return FormatDefenderCSV, nil
		}
		return "", ErrUnknownFormat
	}
}

// Scan reads telemetry from r line by line and calls fn for each event.
// The *Event is reused: copy it to keep it. Malformed lines are counted in
// the returned Stats and never stop the scan; an error from fn, a read
// error, ErrInputTooLarge or ErrUnknownFormat does. Memory is constant:
// one line (at most the line limit) and the read buffer.
func Scan(r io.Reader, fn func(*Event) error, opts ...ScanOption) (Stats, error) {
	c, err := newScanConfig(opts)
	if err != nil {
		return Stats{}, err
	}
	lr := newLineReader(r, c.maxLine, c.maxBytes)
	st := Stats{Format: c.format}
	if st.Format == FormatAuto {
		p, _ := lr.r.Peek(16 << 10)
		if len(p) == 0 {
			return st, nil // empty input: nothing to detect, nothing to report
		}
		if st.Format, err = Detect(p); err != nil {
			return st, err
		}
	}
	var (
		ev     Event
		d      defRaw
		zt     = newZeekTSV()
		cols   [nDefender]int
		header bool
		rec    []string
	)
	defer func() { st.Bytes = lr.bytes }()
	for {
		line, tooLong, err := lr.next()
		if errors.Is(err, io.EOF) {
			st.Lines = lr.n
			st.Bytes = lr.bytes
			return st, nil
		}
		if err != nil {
			st.Lines = lr.n
			return st, err
		}
		if tooLong {
			st.malformed(lr.n)
			continue
		}
		if len(bytes.TrimSpace(line)) == 0 {
			st.Skipped++
			continue
		}
		var perr error
		switch st.Format {
		case FormatDefenderJSON:
			if !scanDefenderJSON(line, &d) {
				perr = errMalformed
			} else {
				perr = d.event(&ev)
			}
		case FormatDefenderCSV:
			var ok bool
			if rec, ok = csvSplit(rec[:0], line); !ok {
				perr = errMalformed
			} else if !header {
				if cols, header = csvHeader(rec); !header {
					perr = errMalformed
				} else {
					st.Skipped++
					continue
				}
			} else if !csvRecord(&d, &cols, rec) {
				perr = errMalformed
			} else {
				perr = d.event(&ev)
			}
		case FormatZeekTSV:
			if line[0] == '#' {
				if !zt.header(line) {
					perr = errMalformed
				} else {
					st.Skipped++
					continue
				}
			} else if zt.names == nil || !zt.split(line) {
				perr = errMalformed
			} else {
				perr = zt.event(&ev)
			}
		case FormatZeekJSON:
			perr = zeekJSONEvent(line, &ev)
		case FormatOCSF:
			perr = ocsfToEvent(line, &ev)
			if errors.Is(perr, errOtherClass) {
				st.Skipped++
				continue
			}
		}
		if perr != nil {
			st.malformed(lr.n)
			continue
		}
		st.Events++
		if err := fn(&ev); err != nil {
			st.Lines = lr.n
			return st, err
		}
	}
}

var errMalformed = errors.New("malformed line")
