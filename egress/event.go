package egress

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Event is one network connection seen from a device, in the vocabulary of
// Defender's DeviceNetworkEvents. Parsers of other formats map onto it.
type Event struct {
	// Time is when the connection was seen, UTC.
	Time time.Time
	// DeviceID and DeviceName identify the device as the sensor names it.
	// Zeek and some OCSF producers give only LocalIP; the inventory then
	// maps the address to a device (Inventory.Resolve).
	DeviceID   string
	DeviceName string
	// ActionType is Defender's action, e.g. "ConnectionSuccess".
	ActionType string
	// RemoteIP, RemotePort and RemoteURL are the far end. RemoteURL is a
	// host name when the sensor knew one.
	RemoteIP   netip.Addr
	RemotePort uint16
	RemoteURL  string
	// RemoteIPType is Defender's classification ("Public", "Private", ...)
	// when the source carries it.
	RemoteIPType string
	// LocalIP and LocalPort are the device's end.
	LocalIP   netip.Addr
	LocalPort uint16
	// Protocol is the transport, e.g. "Tcp" or "udp".
	Protocol string
	// Process is InitiatingProcessFileName.
	Process string
	// SentBytes and ReceivedBytes are payload bytes from and to the device;
	// 0 when the source does not carry them.
	SentBytes     int64
	ReceivedBytes int64
}

// ActionType values the parsers produce.
const (
	ActionConnectionSuccess = "ConnectionSuccess"
	ActionConnectionFailed  = "ConnectionFailed"
	ActionConnectionAttempt = "ConnectionAttempt"
)

// Format names a telemetry format.
type Format string

// Formats Scan reads. FormatAuto detects the format from the content.
const (
	FormatAuto         Format = "auto"
	FormatDefenderJSON Format = "defender-json"
	FormatDefenderCSV  Format = "defender-csv"
	FormatZeekTSV      Format = "zeek-tsv"
	FormatZeekJSON     Format = "zeek-json"
	FormatOCSF         Format = "ocsf-json"
)

// Formats lists every format name accepted by ParseFormat.
var Formats = []Format{FormatAuto, FormatDefenderJSON, FormatDefenderCSV, FormatZeekTSV, FormatZeekJSON, FormatOCSF}

// FormatNames lists Formats for messages and help: "auto, defender-json, ...".
func FormatNames() string {
	names := make([]string, len(Formats))
	for i, f := range Formats {
		names[i] = string(f)
	}
	return strings.Join(names, ", ")
}

// ParseFormat checks a format name given by a user.
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats {
		if string(f) == s {
			return f, nil
		}
	}
	return "", fmt.Errorf("%w: %q", ErrUnknownFormat, s)
}

// Errors returned by the parsers. Malformed lines are not errors: they are
// counted in Stats.
var (
	// ErrUnknownFormat: the content matches no supported format.
	ErrUnknownFormat = errors.New("egress: unknown telemetry format")
	// ErrInputTooLarge: the input exceeds the configured byte limit.
	ErrInputTooLarge = errors.New("egress: input exceeds size limit")
)

// MaxMalformedReported is how many malformed line numbers Stats keeps.
const MaxMalformedReported = 5

// Stats counts what a scan saw.
type Stats struct {
	// Format is the format read (detected or given).
	Format Format `json:"format"`
	// Lines is the number of lines read, headers and blanks included.
	Lines int64 `json:"lines"`
	// Events is the number of events produced.
	Events int64 `json:"events"`
	// Skipped counts well-formed records that are not connection events
	// (comments, headers, blank lines, OCSF events of another class).
	Skipped int64 `json:"skipped"`
	// Malformed counts lines that could not be parsed, including lines
	// longer than the line limit.
	Malformed int64 `json:"malformed"`
	// MalformedLines are the first MaxMalformedReported malformed line
	// numbers (1-based), ascending.
	MalformedLines []int64 `json:"malformedLines,omitempty"`
	// Bytes is the number of input bytes read.
	Bytes int64 `json:"bytes"`
}

func (s *Stats) malformed(line int64) {
	s.Malformed++
	if len(s.MalformedLines) < MaxMalformedReported {
		s.MalformedLines = append(s.MalformedLines, line)
	}
}

// Add merges o into s; o's line numbers are shifted by lineOffset.
func (s *Stats) Add(o Stats, lineOffset int64) {
	s.Lines += o.Lines
	s.Events += o.Events
	s.Skipped += o.Skipped
	s.Bytes += o.Bytes
	s.Malformed += o.Malformed
	for _, l := range o.MalformedLines {
		if len(s.MalformedLines) < MaxMalformedReported {
			s.MalformedLines = append(s.MalformedLines, l+lineOffset)
		}
	}
}

// String is a one-line summary for people.
func (s Stats) String() string {
	m := ""
	if s.Malformed > 0 {
		m = fmt.Sprintf(" (first at lines %v)", s.MalformedLines)
	}
	return fmt.Sprintf("%s: %d lines, %d events, %d skipped, %d malformed%s", s.Format, s.Lines, s.Events, s.Skipped, s.Malformed, m)
}

// Default limits.
const (
	DefaultMaxLineBytes = 1 << 20 // 1 MiB
)

type scanConfig struct {
	format   Format
	maxLine  int
	maxBytes int64
}

// ScanOption configures Scan and Hunt.
type ScanOption func(*scanConfig) error

// WithFormat reads f instead of detecting the format.
func WithFormat(f Format) ScanOption {
	return func(c *scanConfig) error {
		if _, err := ParseFormat(string(f)); err != nil {
			return err
		}
		c.format = f
		return nil
	}
}

// WithMaxLineBytes sets the longest line accepted; longer lines are counted
// as malformed and skipped. Default DefaultMaxLineBytes.
func WithMaxLineBytes(n int) ScanOption {
	return func(c *scanConfig) error {
		if n < 64 {
			return fmt.Errorf("egress: line limit %d below 64 bytes", n)
		}
		c.maxLine = n
		return nil
	}
}

// WithMaxInputBytes makes a scan fail with ErrInputTooLarge after n bytes.
// Default: no limit.
func WithMaxInputBytes(n int64) ScanOption {
	return func(c *scanConfig) error {
		if n <= 0 {
			return fmt.Errorf("egress: input limit %d not positive", n)
		}
		c.maxBytes = n
		return nil
	}
}

func newScanConfig(opts []ScanOption) (scanConfig, error) {
	c := scanConfig{format: FormatAuto, maxLine: DefaultMaxLineBytes}
	for _, o := range opts {
		if err := o(&c); err != nil {
			return c, err
		}
	}
	return c, nil
}
