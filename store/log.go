package store

import (
	"context"
	"time"
)

// LogItem is one envelope to append to the verdict log, with what it is
// about (for export filters) and the blobs it refers to.
type LogItem struct {
	Envelope []byte
	Artifact string // sha256:<hex> of the subject
	Device   string // device ID, if the verdict was for one device
	// Time is zero in every append of wardgate itself: the log dates each
	// entry with its own clock when it appends it. Tools that build a log
	// (tests, benchmarks, bench/tools/mklog) may set it. Either way an
	// entry is never dated before the entry appended before it (by the
	// same process; replicas on one store rely on their clocks agreeing):
	// the log's times never go backwards, so export filters by time see
	// it in order.
	Time  time.Time
	Blobs []Blob // trust configuration, policies, SBOMs, diffs used
	// Notify announces the item on the store's change feed (ChangeLog,
	// Key Artifact) in the write that appends it, so that other processes
	// drop what they cache about the artifact (a rollout ring change).
	Notify bool
}

// LogEntry is an appended envelope.
type LogEntry struct {
	Index    uint64    `json:"index"`
	LeafHash []byte    `json:"leafHash"`
	Envelope []byte    `json:"envelope"`
	Artifact string    `json:"artifact"`
	Device   string    `json:"device,omitempty"`
	Time     time.Time `json:"time"`
	Refs     []string  `json:"refs,omitempty"`
}

// Checkpoint is a signed tree head. The zero Checkpoint is the head of a
// log never written.
type Checkpoint struct {
	Origin string `json:"origin"`
	Size   uint64 `json:"size"`
	Root   []byte `json:"root"`
	Note   []byte `json:"note"` // the C2SP signed note
}

// NodeID names a node of the log's Merkle tree: its level (0 for leaves)
// and its index within the level.
type NodeID struct {
	Level uint
	Index uint64
}

// LogNode is one tree node's hash.
type LogNode struct {
	ID   NodeID
	Hash []byte
}

// LogBatch is what a Sequencer asks the store to write: the entries that
// continue the log, the tree nodes they complete, the blobs they refer to
// and the new signed checkpoint.
type LogBatch struct {
	Entries    []LogEntry
	Nodes      []LogNode
	Blobs      []Blob
	Checkpoint Checkpoint
}

// NodeReader reads stored tree nodes, in the order of ids.
type NodeReader interface {
	LogNodes(ctx context.Context, ids []NodeID) ([][]byte, error)
}

// Sequencer turns items into log rows. The store calls Sequence inside the
// write that holds the log's sequence (no other append, from any process,
// can interleave), with the log's head as stored and a reader of the
// stored nodes in that same write. What it returns must continue the log:
// entries at head.Size, head.Size+1, ..., and a checkpoint of the new
// size; otherwise the store writes nothing and fails with ErrSequence.
// With no items, Sequence returns the head to keep, or the first
// checkpoint of a log never written.
type Sequencer interface {
	Sequence(ctx context.Context, head Checkpoint, nodes NodeReader, items []LogItem) (LogBatch, error)
}

// LogFilter selects entries for listing and export.
type LogFilter struct {
	Since, Until time.Time // zero: unbounded
	Artifact     string
	Device       string
	Limit        int // 0: no limit
}

// LogAppender appends to the verdict log.
type LogAppender interface {
	// AppendLog appends items (in order) with seq and returns their
	// entries and the checkpoint of the write that made them durable.
	// Concurrent appends are group-committed: one write, one Sequence call
	// and one checkpoint for all of them. With no items it writes the
	// log's first checkpoint if it has none.
	AppendLog(ctx context.Context, seq Sequencer, items []LogItem) ([]LogEntry, Checkpoint, error)
	// ExpectLog announces an AppendLog on its way (see
	// groupcommit.Writer.Expect).
	ExpectLog() (done func())
}

// LogReader reads the verdict log. Its methods never hold a connection
// while calling back, so a callback may call the store again.
type LogReader interface {
	NodeReader
	// LogHead returns the stored checkpoint, or ErrNotFound for a log
	// never written.
	LogHead(ctx context.Context) (Checkpoint, error)
	// LogEntry returns one entry, or ErrNotFound.
	LogEntry(ctx context.Context, index uint64) (LogEntry, error)
	// LogEntries calls fn with every entry f selects, in index order.
	LogEntries(ctx context.Context, f LogFilter, fn func(LogEntry) error) error
}

// LogStore keeps the verdict log's rows. The tree, its proofs and its
// checkpoints are attest's; the store keeps what attest computes.
type LogStore interface {
	LogAppender
	LogReader
	Blobs
}
