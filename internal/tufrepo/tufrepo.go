// Package tufrepo builds TUF repositories with go-tuf's metadata API, the
// way a vendor's release tooling would: for the tests of wardgate's TUF
// client and for the fixtures generator. It writes what a mirror holds
// (DIR/metadata/N.root.json, timestamp.json, N.snapshot.json,
// N.ROLE.json), and lets tests do what attackers and careless vendors do:
// expire metadata, roll it back, sign with a key the root does not list.
//
// Imports go-tuf's metadata package and sigstore's signature package.
// Production code other than the fixtures generator must not import it.
package tufrepo

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Custom is the custom field of a wardgate release target.
type Custom struct {
	Version       string   `json:"version"`
	DeviceClasses []string `json:"deviceClasses,omitempty"`
}

// Repo is a TUF repository in memory: the four top-level roles, delegated
// targets roles, and the private keys of each role.
type Repo struct {
	Root      *metadata.Metadata[metadata.RootType]
	Timestamp *metadata.Metadata[metadata.TimestampType]
	Snapshot  *metadata.Metadata[metadata.SnapshotType]
	// Targets holds "targets" and every delegated role, by name.
	Targets map[string]*metadata.Metadata[metadata.TargetsType]
	// Keys are each role's signing keys, by role name.
	Keys map[string][]ed25519.PrivateKey
	// roots are every root version signed so far, oldest first.
	roots [][]byte
	// dirty targets roles get a new version at the next Publish, unless
	// they are fresh (delegated since the last Publish).
	dirty, fresh map[string]bool
	// published is false until the first Publish.
	published bool
}

// New makes a repository with one ed25519 key per top-level role, the
// root valid for a year (or expires, if longer) and the other roles for
// expires after now.
func New(now time.Time, expires time.Duration) (*Repo, error) {
	r := &Repo{
		Root:      metadata.Root(now.Add(max(365*24*time.Hour, expires)).UTC()),
		Timestamp: metadata.Timestamp(now.Add(expires).UTC()),
		Snapshot:  metadata.Snapshot(now.Add(expires).UTC()),
		Targets:   map[string]*metadata.Metadata[metadata.TargetsType]{metadata.TARGETS: metadata.Targets(now.Add(expires).UTC())},
		Keys:      map[string][]ed25519.PrivateKey{},
		dirty:     map[string]bool{},
		fresh:     map[string]bool{},
	}
	for _, role := range []string{metadata.ROOT, metadata.TIMESTAMP, metadata.SNAPSHOT, metadata.TARGETS} {
		k, err := NewKey()
		if err != nil {
			return nil, err
		}
		if err := r.AddRootKey(role, k); err != nil {
			return nil, err
		}
	}
	if err := r.signRoot(); err != nil {
		return nil, err
	}
	return r, nil
}

// NewKey makes an ed25519 key.
func NewKey() (ed25519.PrivateKey, error) {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	return k, err
}

// PublicKey is the TUF form of k's public key.
func PublicKey(k ed25519.PrivateKey) *metadata.Key {
	key, err := metadata.KeyFromPublicKey(k.Public())
	if err != nil {
		panic(err) // an ed25519 key always converts
	}
	return key
}

// AddRootKey lists k in the root for a top-level role and keeps it for
// signing that role. Call SignRoot (or RotateRoot) to sign the change.
func (r *Repo) AddRootKey(role string, k ed25519.PrivateKey) error {
	if err := r.Root.Signed.AddKey(PublicKey(k), role); err != nil {
		return err
	}
	r.Keys[role] = append(r.Keys[role], k)
	return nil
}

func (r *Repo) signRoot() error {
	r.Root.ClearSignatures()
	if err := sign(r.Root, r.Keys[metadata.ROOT]); err != nil {
		return err
	}
	b, err := r.Root.ToBytes(true)
	if err != nil {
		return err
	}
	v := int(r.Root.Signed.Version)
	if len(r.roots) >= v {
		r.roots = r.roots[:v-1]
	}
	r.roots = append(r.roots, b)
	return nil
}

// RootJSON is the first root: the one a client pins.
func (r *Repo) RootJSON() []byte { return slices.Clone(r.roots[0]) }

// RotateRoot publishes root version N+1 with new keys for the given
// top-level roles (all four when none is named): the new root is signed by
// the old root keys and the new ones, as the TUF specification requires.
func (r *Repo) RotateRoot(roles ...string) error {
	if len(roles) == 0 {
		roles = []string{metadata.ROOT, metadata.TIMESTAMP, metadata.SNAPSHOT, metadata.TARGETS}
	}
	old := r.Keys[metadata.ROOT]
	for _, role := range roles {
		for _, k := range r.Keys[role] {
			if err := r.Root.Signed.RevokeKey(PublicKey(k).ID(), role); err != nil {
				return err
			}
		}
		r.Keys[role] = nil
		k, err := NewKey()
		if err != nil {
			return err
		}
		if err := r.AddRootKey(role, k); err != nil {
			return err
		}
	}
	r.Root.Signed.Version++
	r.Root.ClearSignatures()
	signers := slices.Clone(old)
	for _, k := range r.Keys[metadata.ROOT] {
		if !slices.ContainsFunc(signers, func(o ed25519.PrivateKey) bool { return o.Equal(k) }) {
			signers = append(signers, k)
		}
	}
	if err := sign(r.Root, signers); err != nil {
		return err
	}
	b, err := r.Root.ToBytes(true)
	if err != nil {
		return err
	}
	r.roots = append(r.roots, b)
	for role := range r.Targets {
		r.dirty[role] = true // re-signed with the new keys at the next Publish
	}
	return nil
}

// AddTarget lists data as target path in role (created as a delegation of
// "targets" if Delegate made it), with the wardgate custom field.
func (r *Repo) AddTarget(role, path string, data []byte, c Custom) error {
	t, ok := r.Targets[role]
	if !ok {
		return fmt.Errorf("tufrepo: no targets role %q", role)
	}
	tf, err := metadata.TargetFile().FromBytes(path, data, "sha256")
	if err != nil {
		return err
	}
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	raw := json.RawMessage(b)
	tf.Custom = &raw
	t.Signed.Targets[path] = tf
	r.dirty[role] = true
	return nil
}

// Delegate makes role a delegated targets role of parent for the path
// patterns, with one new key.
func (r *Repo) Delegate(parent, role string, paths []string, expires time.Time) error {
	p, ok := r.Targets[parent]
	if !ok {
		return fmt.Errorf("tufrepo: no targets role %q", parent)
	}
	k, err := NewKey()
	if err != nil {
		return err
	}
	if p.Signed.Delegations == nil {
		p.Signed.Delegations = &metadata.Delegations{Keys: map[string]*metadata.Key{}, Roles: []metadata.DelegatedRole{}}
	}
	key := PublicKey(k)
	p.Signed.Delegations.Keys[key.ID()] = key
	p.Signed.Delegations.Roles = append(p.Signed.Delegations.Roles, metadata.DelegatedRole{Name: role, KeyIDs: []string{key.ID()}, Threshold: 1, Paths: paths})
	r.Targets[role] = metadata.Targets(expires.UTC())
	r.Keys[role] = []ed25519.PrivateKey{k}
	r.dirty[parent], r.dirty[role], r.fresh[role] = true, true, true
	return nil
}

// Touch gives role a new version at the next Publish, re-signed.
func (r *Repo) Touch(role string) { r.dirty[role] = true }

// Publish signs what changed and writes the repository under dir/metadata:
// every root version, timestamp.json, and consistent-snapshot snapshot and
// targets files. Each Publish after the first is a new snapshot and
// timestamp version. Files of earlier versions already in dir are kept, as
// on a real mirror.
func (r *Repo) Publish(dir string) error {
	if r.published {
		for role := range r.dirty {
			if !r.fresh[role] {
				r.Targets[role].Signed.Version++
			}
		}
		r.Snapshot.Signed.Version++
		r.Timestamp.Signed.Version++
	}
	for role := range r.Targets {
		if !r.published || r.dirty[role] {
			t := r.Targets[role]
			t.ClearSignatures()
			if err := sign(t, r.Keys[role]); err != nil {
				return fmt.Errorf("sign %s: %w", role, err)
			}
		}
		r.Snapshot.Signed.Meta[role+".json"] = metadata.MetaFile(r.Targets[role].Signed.Version)
	}
	r.Snapshot.ClearSignatures()
	if err := sign(r.Snapshot, r.Keys[metadata.SNAPSHOT]); err != nil {
		return err
	}
	r.Timestamp.Signed.Meta["snapshot.json"] = metadata.MetaFile(r.Snapshot.Signed.Version)
	r.Timestamp.ClearSignatures()
	if err := sign(r.Timestamp, r.Keys[metadata.TIMESTAMP]); err != nil {
		return err
	}
	r.published = true
	clear(r.dirty)
	clear(r.fresh)
	return r.Write(dir)
}

// Write writes the signed metadata as it is, without signing anything
// (tests change a signed file and write it back to tamper).
func (r *Repo) Write(dir string) error {
	md := filepath.Join(dir, "metadata")
	if err := os.MkdirAll(md, 0o755); err != nil {
		return err
	}
	for i, b := range r.roots {
		if err := os.WriteFile(filepath.Join(md, fmt.Sprintf("%d.root.json", i+1)), b, 0o644); err != nil {
			return err
		}
	}
	for role, t := range r.Targets {
		if err := t.ToFile(filepath.Join(md, fmt.Sprintf("%d.%s.json", t.Signed.Version, role)), true); err != nil {
			return err
		}
	}
	if err := r.Snapshot.ToFile(filepath.Join(md, fmt.Sprintf("%d.snapshot.json", r.Snapshot.Signed.Version)), true); err != nil {
		return err
	}
	return r.Timestamp.ToFile(filepath.Join(md, "timestamp.json"), true)
}

// Signer is k as a sigstore signer (pure ed25519, as TUF signs).
func Signer(k ed25519.PrivateKey) (signature.Signer, error) {
	return signature.LoadSigner(k, crypto.Hash(0))
}

func sign[T metadata.Roles](m *metadata.Metadata[T], keys []ed25519.PrivateKey) error {
	if len(keys) == 0 {
		return errors.New("tufrepo: no key to sign with")
	}
	for _, k := range keys {
		s, err := Signer(k)
		if err != nil {
			return err
		}
		if _, err := m.Sign(s); err != nil {
			return err
		}
	}
	return nil
}

// SignWith replaces m's signatures by signatures of the given keys (a
// role signed by keys the root does not list).
func SignWith[T metadata.Roles](m *metadata.Metadata[T], keys ...ed25519.PrivateKey) error {
	m.ClearSignatures()
	return sign(m, keys)
}
