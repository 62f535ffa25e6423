package egress

import (
	"bufio"
	"errors"
	"io"
)

// lineReader yields lines without their terminator ("\n" or "\r\n") in
// constant memory: a line longer than max is consumed and reported as too
// long instead of being buffered.
type lineReader struct {
	r        *bufio.Reader
	max      int
	buf      []byte // accumulates a line that spans bufio's buffer
	n        int64  // line number of the last line returned
	bytes    int64
	maxBytes int64
}

func newLineReader(r io.Reader, max int, maxBytes int64) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 256<<10), max: max, maxBytes: maxBytes}
}

// next returns the next line. tooLong is true when the line exceeded the
// limit (line is then nil). err is io.EOF at the end.
func (l *lineReader) next() (line []byte, tooLong bool, err error) {
	l.buf = l.buf[:0]
	long := false
	for {
		frag, err := l.r.ReadSlice('\n')
		l.bytes += int64(len(frag))
		if l.maxBytes > 0 && l.bytes > l.maxBytes {
			return nil, false, ErrInputTooLarge
		}
		switch {
		case err == nil || (err == io.EOF && len(frag) > 0) || (err == io.EOF && (len(l.buf) > 0 || long)):
			l.n++
			if long || len(l.buf)+len(frag) > l.max+2 {
				return nil, true, nil
			}
			if len(l.buf) > 0 {
				l.buf = append(l.buf, frag...)
				frag = l.buf
			}
			return trimEOL(frag), false, nil
		case errors.Is(err, bufio.ErrBufferFull):
			if !long && len(l.buf)+len(frag) <= l.max+2 {
				l.buf = append(l.buf, frag...)
			} else {
				long = true
				l.buf = l.buf[:0]
			}
		default:
			return nil, false, err
		}
	}
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b
}
