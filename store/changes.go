package store

import (
	"context"
	"fmt"
	"strings"
)

// ChangeKind names what changed in a Change.
type ChangeKind string

// Change kinds. The first five are announced by the store itself, inside
// the write that makes them (delivered only if it commits); Risk and Trust
// are announced by the gate with ChangeFeed.Publish; Reset and Sync are
// the feed's own.
const (
	// ChangeTelemetry: a telemetry batch was ingested (Key: the batch's
	// source digest).
	ChangeTelemetry ChangeKind = "telemetry"
	// ChangeEvaluation: an update's kept evaluation was written (Key: its
	// artifact digest).
	ChangeEvaluation ChangeKind = "evaluation"
	// ChangeToken: a token was created or revoked (Key: its name).
	ChangeToken ChangeKind = "token"
	// ChangeLog: a log item appended with LogItem.Notify (a rollout ring
	// change) was committed (Key: the item's artifact digest).
	ChangeLog ChangeKind = "log"
	// ChangeInstallation: installations of an update were recorded (Key:
	// its digest; one per digest of each committed write).
	ChangeInstallation ChangeKind = "installation"
	// ChangeRisk: an analysis found an update's fleet risk state changed
	// (Key: its digest, Value: the new state, e.g. quarantined).
	ChangeRisk ChangeKind = "risk"
	// ChangeTrust: a process reloaded its trust configuration (Key: the
	// new configuration's digest).
	ChangeTrust ChangeKind = "trust"
	// ChangeReset: changes may have been missed (the feed (re)connected,
	// or a subscriber fell behind): drop everything cached.
	ChangeReset ChangeKind = "reset"
	// ChangeSync: every change another process committed before Value (a
	// time, RFC 3339 with nanoseconds, on this process's clock) has been
	// delivered before this one.
	ChangeSync ChangeKind = "sync"
)

// Change is one change another process made to the store.
type Change struct {
	Kind  ChangeKind
	Key   string
	Value string
}

// MaxChangeBytes bounds a change's key and value together (PostgreSQL
// refuses a notification payload of 8000 bytes or more).
const MaxChangeBytes = 4096

// Validate checks that c can be announced: a known kind that a process
// may publish, and a key and value without tabs or newlines, within
// MaxChangeBytes.
func (c Change) Validate() error {
	switch c.Kind {
	case ChangeTelemetry, ChangeEvaluation, ChangeToken, ChangeLog, ChangeInstallation, ChangeRisk, ChangeTrust:
	default:
		return fmt.Errorf("store: change kind %q cannot be announced", c.Kind)
	}
	if len(c.Key)+len(c.Value) > MaxChangeBytes {
		return fmt.Errorf("store: change of %d bytes is over the %d byte limit", len(c.Key)+len(c.Value), MaxChangeBytes)
	}
	if strings.ContainsAny(c.Key, "\t\n\r\x00") || strings.ContainsAny(c.Value, "\t\n\r\x00") {
		return fmt.Errorf("store: change %s %q: key and value must not hold tabs, newlines or NULs", c.Kind, c.Key)
	}
	return nil
}

// ChangeFeed tells a process what other processes on the same store
// changed, so that it can drop what it caches (replicas on one PostgreSQL;
// docs/postgres.md). A backend whose store only one process writes has
// none: caches there are kept up to date by the process itself.
type ChangeFeed interface {
	// Subscribe delivers, until ctx ends (the channel is then closed), the
	// changes other processes commit, in commit order. Changes this
	// process made are not delivered (it knows them). Each (re)connection
	// of the feed starts with a ChangeReset, as does a subscriber that
	// fell behind; a ChangeSync follows now and then (the backend's heartbeat,
	// while connected) to say how far the delivery has come.
	Subscribe(ctx context.Context) <-chan Change
	// Publish announces a change that is not a write of the store (a risk
	// state, a trust reload) to the other processes.
	Publish(ctx context.Context, c Change) error
}
