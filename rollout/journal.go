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
	"strings"
	"sync"
	"time"

	"github.com/wardgate/wardgate/attest"
)

// MediaType is the media type of a ring change kept as a log blob.
const MediaType = "application/vnd.wardgate.rollout.change+json"

// changeInput is the URI of the VSA input that points at the change.
const changeInput = "wardgate:rollout-change"

// LogJournal keeps ring changes as signed entries of the verdict log, so
// evidence packs verify offline as before: each change is a VSA statement
// about the update (resource urn:wardgate:rollout:CLASS, reason code
// rollout-ACTION, FAILED for a stop) signed with the service key, whose
// input wardgate:rollout-change is the digest of the change's JSON, kept
// as a content-addressed blob beside the entry.
type LogJournal struct{ Log *attest.Log }

// Append implements Journal.
func (j LogJournal) Append(ctx context.Context, c Change) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	blob := attest.Blob{MediaType: MediaType, Data: b}
	alg, hexd, ok := strings.Cut(c.Digest, ":")
	if !ok || alg != "sha256" {
		return fmt.Errorf("rollout change: digest %q is not sha256:<hex>", c.Digest)
	}
	st, err := attest.NewStatement(attest.Verdict{
		SubjectName: "rollout", SubjectDigest: map[string]string{"sha256": hexd},
		ResourceURI: "urn:wardgate:rollout:" + c.Class, Passed: c.Status != Halted, ReasonCodes: []string{"rollout-" + string(c.Action)},
		PolicyURI: "https://wardgate.dev/rollout", DeviceClass: c.Class, Time: c.At,
		Inputs: []attest.Input{{URI: changeInput, Digest: map[string]string{"sha256": strings.TrimPrefix(blob.Digest(), "sha256:")}}},
	}, "rollout")
	if err != nil {
		return err
	}
	env, err := j.Log.Signer().SignStatement(ctx, st)
	if err != nil {
		return err
	}
	// Notify: other replicas on the same store drop the update's ring
	// state they hold when the entry commits (store.ChangeLog).
	_, err = j.Log.Append(ctx, attest.Item{Envelope: env, Artifact: c.Digest, Time: c.At, Blobs: []attest.Blob{blob}, Notify: true})
	return err
}

// Changes implements Journal: every entry of the digest whose statement,
// verified with the log's key, records a ring change, with the change
// read from its blob (checked against the signed digest).
func (j LogJournal) Changes(ctx context.Context, digest string) ([]Change, error) {
	v := j.Log.Signer().Verifier()
	var refs []string
	err := j.Log.Entries(ctx, attest.Filter{Artifact: digest}, func(e attest.Entry) error {
		st, err := v.VerifyStatement(e.Envelope)
		if err != nil || !strings.HasPrefix(st.Predicate.ResourceURI, "urn:wardgate:rollout:") {
			return nil //nolint:nilerr // a verdict, not a ring change
		}
		for _, in := range st.Predicate.InputAttestations {
			if in.URI == changeInput && in.Digest["sha256"] != "" {
				refs = append(refs, "sha256:"+in.Digest["sha256"])
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]Change, 0, len(refs))
	for _, ref := range refs {
		b, err := j.Log.Blob(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("rollout change %s: %w", ref, err)
		}
		if b.Digest() != ref {
			return nil, fmt.Errorf("rollout change %s: blob does not match its digest", ref)
		}
		var c Change
		if err := json.Unmarshal(b.Data, &c); err != nil {
			return nil, fmt.Errorf("rollout change %s: %w", ref, err)
		}
		out = append(out, c)
	}
	return out, nil
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
