package console

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/wardgate/wardgate/evidence"
	"github.com/wardgate/wardgate/policy"
)

// The console reads everything through the small interfaces below, one per
// page family, so the storage behind them can change without touching a
// page. console/adapter implements them over today's stores; a test or
// another backend can implement them over anything else. Every method is
// read-only but Audit.

// Data is everything the console reads.
type Data interface {
	Updates
	Findings
	Devices
	Log
	Auth
}

// Errors the data methods return; the console maps them to pages.
var (
	// ErrNotFound: no such update, device or log entry.
	ErrNotFound = errors.New("console: not found")
	// ErrUnauthenticated: the token is unknown or revoked.
	ErrUnauthenticated = errors.New("console: unknown or revoked token")
)

// Updates lists and shows evaluated (or installed) updates.
type Updates interface {
	// Updates returns one page of updates matching q, sorted as q says.
	Updates(ctx context.Context, q UpdateQuery) (UpdatePage, error)
	// Update returns everything the update page shows; ErrNotFound when
	// the update was never evaluated and no device installed it.
	Update(ctx context.Context, digest string) (UpdateDetail, error)
}

// Findings lists egress findings.
type Findings interface {
	Findings(ctx context.Context, q FindingQuery) (FindingPage, error)
}

// Devices lists and shows the fleet's devices.
type Devices interface {
	Devices(ctx context.Context, q DeviceQuery) (DevicePage, error)
	// Device returns one device by inventory name; ErrNotFound when the
	// inventory has no such device.
	Device(ctx context.Context, name string) (DeviceDetail, error)
}

// Log reads the verdict log: the signed checkpoint, entries with their
// inclusion proofs (the console checks them), and evidence packs.
type Log interface {
	// LogPage returns the latest checkpoint and one page of entries,
	// newest first, each with its inclusion proof against that checkpoint.
	LogPage(ctx context.Context, q LogQuery) (LogPage, error)
	// Export writes an evidence pack of the entries q selects.
	Export(ctx context.Context, q ExportQuery) (*Pack, error)
}

// Auth checks the API tokens people sign in with and records what they do.
type Auth interface {
	// Authenticate returns the token's principal, or ErrUnauthenticated.
	Authenticate(ctx context.Context, secret string) (Principal, error)
	// Audit records one state-changing console action durably.
	Audit(ctx context.Context, a AuditEvent) error
}

// Principal is who signed in: the token's name and role.
type Principal struct {
	Name string
	Role string
}

// AuditEvent is one console action for the audit table.
type AuditEvent struct {
	Time      time.Time
	RequestID string
	Principal Principal
	Action    string // e.g. "console sign-in"
	Target    string
	Outcome   string
}

// Page is a window on a sorted list.
type Page struct {
	Offset, Limit int
}

// Sort keys of the updates list.
const (
	SortEvaluated = "evaluated" // evaluation time, newest first by default
	SortVendor    = "vendor"
	SortProduct   = "product"
	SortState     = "state" // quarantined, suspicious, clean
	SortInstalled = "installed"
)

// UpdateQuery selects updates. Empty fields select everything.
type UpdateQuery struct {
	State        string // clean, suspicious, quarantined
	Vendor       string
	Class        string // device class the update targets or was installed on
	DigestPrefix string // "sha256:ab..." or the hex alone
	Sort         string // one of the Sort constants; default SortEvaluated
	// Desc sorts descending: newest, most severe (quarantined first), most
	// installed, or Z to A.
	Desc bool
	Page
}

// UpdateSummary is one row of the updates list.
type UpdateSummary struct {
	Digest  string
	Vendor  string // empty when never evaluated
	Product string
	Version string
	Classes []string
	// Evaluated is false for an update devices installed (recorded
	// installations) that the gate never evaluated.
	Evaluated   bool
	Allow       bool
	Codes       []string // reason codes of the decision
	EvaluatedAt time.Time
	// State is the fleet risk state: clean, suspicious or quarantined.
	State     string
	Installed int
	Affected  int
}

// UpdatePage is one page of the updates list, with the values the filters
// offer.
type UpdatePage struct {
	Updates []UpdateSummary
	Total   int // matching the query, over all pages
	Vendors []string
	Classes []string
}

// UpdateRecord is the kept evaluation of an update.
type UpdateRecord struct {
	Evidence   evidence.Evidence
	Decision   policy.Decision
	RecordedAt time.Time
	LogIndex   *uint64 // the verdict's log entry, when logged
}

// UpdateDetail is the update page's data.
type UpdateDetail struct {
	Summary UpdateSummary
	// Record is nil when the update was never evaluated.
	Record   *UpdateRecord
	Findings []Finding
	// Devices is the blast radius: every device that installed the
	// update, with its segment and whether a finding names it.
	Devices []Impact
	// Contacts are, for each installer and each destination a finding of
	// the update names, the device's traffic to it by hour (the plots'
	// data). Empty when the update has no finding.
	Contacts []Contact
	// Baseline is the device class's normal hourly traffic.
	Baseline Baseline
}

// Impact is one device that installed an update.
type Impact struct {
	Device    string
	Class     string
	Segment   string
	Installed time.Time
	Affected  bool // a finding of the update names the device
}

// Contact is one installer's traffic to one destination.
type Contact struct {
	Device      string
	Destination string
	Installed   time.Time // when the device installed the update
	First, Last time.Time
	Connections int64
	Bytes       int64 // sent by the device
	Hours       []Hour
}

// Hour is one hour of traffic (Start is the hour's start, UTC).
type Hour struct {
	Start       time.Time
	Connections int64
	Bytes       int64
}

// Baseline is a device class's hourly traffic in the baseline window: the
// 95th percentile of the bytes one device sent in an hour (every public
// destination together), over the device-hours with any traffic.
type Baseline struct {
	Class          string
	Start, End     time.Time
	DeviceHourP95  int64
	DeviceHours    int64 // how many device-hours it is computed from
	ClassDevices   int   // devices of the class in the inventory
	HasObservation bool  // false: no baseline traffic was seen
}

// Finding is one egress finding.
type Finding struct {
	Code         string
	Severity     string // suspicious or quarantined
	Update       string // digest; empty when no installed update explains it
	Product      string
	Version      string
	Class        string
	Devices      []string
	Destinations []string
	FirstSeen    time.Time
	LastSeen     time.Time
	Bytes        int64
	Connections  int64
	Explanation  string
}

// FindingQuery selects findings. Empty fields select everything.
type FindingQuery struct {
	Code     string
	Severity string
	Class    string
	Update   string // digest
	Device   string
	Page
}

// FindingPage is one page of findings, newest first, with the values the
// filters offer.
type FindingPage struct {
	Findings []Finding
	Total    int
	Codes    []string
	Classes  []string
	// Events is how many telemetry events the analysis read.
	Events int64
}

// DeviceQuery selects devices. Empty fields select everything.
type DeviceQuery struct {
	Search   string // case-insensitive substring of the name
	Class    string
	Segment  string
	Affected bool // only devices named by a finding
	Page
}

// Device is one inventory device.
type Device struct {
	Name      string
	Class     string
	Segment   string
	Addresses []string
	// Current is the last update the device installed (empty: none).
	Current  Install
	Findings int
}

// Install is one recorded installation.
type Install struct {
	Digest  string
	Product string
	Version string
	Time    time.Time
	State   string // the update's risk state now
}

// DevicePage is one page of devices, sorted by name.
type DevicePage struct {
	Devices  []Device
	Total    int
	Classes  []string
	Segments []string
}

// DeviceDetail is the device page's data.
type DeviceDetail struct {
	Device   Device
	Installs []Install // oldest first
	Findings []Finding
	// Entries are the device's latest admissions in the verdict log.
	Entries []Entry
}

// LogQuery selects a page of log entries, newest first.
type LogQuery struct {
	Artifact string
	Device   string
	Page
}

// Checkpoint is the log's signed tree head.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   []byte
	Note   []byte // the C2SP signed note
	// PublicKey is the log's public key (PEM); KeyID its SHA-256.
	PublicKey []byte
	KeyID     string
}

// Entry is one log entry with its inclusion proof against the checkpoint.
type Entry struct {
	Index    uint64
	Time     time.Time
	Artifact string
	Device   string
	LeafHash []byte
	Envelope []byte // the DSSE envelope as logged
	Proof    [][]byte
	TreeSize uint64 // the size the proof is for
}

// LogPage is the log page's data.
type LogPage struct {
	Checkpoint Checkpoint
	Entries    []Entry
	Total      int // entries matching the query
}

// ExportQuery selects the entries of an evidence pack.
type ExportQuery struct {
	Since, Until time.Time // zero: unbounded
	Artifact     string
	Device       string
}

// Pack is an exported evidence pack, read once and closed.
type Pack struct {
	io.ReadCloser
	Size     int64
	TreeSize uint64
	Entries  uint64
}
