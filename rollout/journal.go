package rollout

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/wardgate/wardgate/attest"
)

// PayloadType is the DSSE payload type of a ring change in the log.
const PayloadType = "application/vnd.wardgate.rollout.change+json"

// LogJournal keeps ring changes as signed entries of the verdict log: the
// change as JSON in a DSSE envelope signed with the service key, under
// the update's digest.
type LogJournal struct{ Log *attest.Log }

// Append implements Journal.
func (j LogJournal) Append(ctx context.Context, c Change) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	env, err := j.Log.Signer().SignPayload(ctx, PayloadType, b)
	if err != nil {
		return err
	}
	_, err = j.Log.Append(ctx, attest.Item{Envelope: env, Artifact: c.Digest, Time: c.At})
	return err
}

// Changes implements Journal: every entry of the digest whose envelope,
// verified with the log's key, holds a ring change.
func (j LogJournal) Changes(ctx context.Context, digest string) ([]Change, error) {
	v := j.Log.Signer().Verifier()
	var out []Change
	err := j.Log.Entries(ctx, attest.Filter{Artifact: digest}, func(e attest.Entry) error {
		pt, payload, err := v.OpenEnvelope(e.Envelope)
		if err != nil || pt != PayloadType {
			return nil //nolint:nilerr // a verdict, not a ring change (or a verdict of another key)
		}
		var c Change
		if err := json.Unmarshal(payload, &c); err != nil {
			return fmt.Errorf("log entry %d: %w", e.Index, err)
		}
		out = append(out, c)
		return nil
	})
	return out, err
}

// LastTime implements Journal.
func (j LogJournal) LastTime(ctx context.Context) (time.Time, error) {
	n := j.Log.Checkpoint().Size
	if n == 0 {
		return time.Time{}, nil
	}
	e, err := j.Log.Entry(ctx, n-1)
	if err != nil {
		return time.Time{}, err
	}
	return e.Time, nil
}

// KeyBytes is the size of the membership key.
const KeyBytes = 32

// LoadKey reads the membership key at path, creating a random one (mode
// 0600, written to a temporary file and renamed) when there is none.
func LoadKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil && len(b) == KeyBytes:
		return b, nil
	case err == nil:
		return nil, fmt.Errorf("rollout key %s: %d bytes, want %d", path, len(b), KeyBytes)
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("rollout key: %w", err)
	}
	key := make([]byte, KeyBytes)
	if _, err := io.ReadFull(rand.Reader, key); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-rollout-key-")
	if err != nil {
		return nil, fmt.Errorf("rollout key: %w", err)
	}
	_, err = f.Write(key)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(f.Name(), path) // never replaces a key another process made meanwhile
	}
	os.Remove(f.Name())
	if errors.Is(err, os.ErrExist) {
		return LoadKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("rollout key: %w", err)
	}
	return key, nil
}

// MemJournal keeps changes in memory (a run without a log; tests).
type MemJournal struct {
	mu sync.Mutex
	cs []Change
}

// Changes implements Journal.
func (m *MemJournal) Changes(_ context.Context, digest string) ([]Change, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Change
	for _, c := range m.cs {
		if c.Digest == digest {
			out = append(out, c)
		}
	}
	return out, nil
}

// Append implements Journal.
func (m *MemJournal) Append(_ context.Context, c Change) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cs = append(m.cs, c)
	return nil
}

// LastTime implements Journal.
func (m *MemJournal) LastTime(context.Context) (time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.cs) == 0 {
		return time.Time{}, nil
	}
	return m.cs[len(m.cs)-1].At, nil
}
