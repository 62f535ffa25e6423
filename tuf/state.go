package tuf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"sync"
)

// Files are a vendor's trusted metadata by file name, as go-tuf keeps them
// on disk: root.json, timestamp.json, snapshot.json, targets.json and
// ROLE.json for delegated roles.
type Files map[string][]byte

// State keeps the trusted metadata of each vendor across lookups and runs:
// what makes a rolled-back or frozen repository visible. It is small so that
// the metadata can move into wardgate's store later.
type State interface {
	// Update runs fn with the vendor's trusted metadata (empty the first
	// time) and keeps the files fn returns. Updates of the same vendor do
	// not overlap, within the process and, for DirState, across processes.
	Update(ctx context.Context, vendor string, fn func(Files) (Files, error)) error
}

// MemState keeps trusted metadata in memory, for the life of the process.
type MemState struct {
	mu      sync.Mutex
	vendors map[string]Files
}

// NewMemState returns an empty in-memory state.
func NewMemState() *MemState { return &MemState{vendors: map[string]Files{}} }

// Update implements State.
func (m *MemState) Update(_ context.Context, vendor string, fn func(Files) (Files, error)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	out, err := fn(maps.Clone(m.vendors[vendor]))
	if err != nil {
		return err
	}
	next := maps.Clone(m.vendors[vendor])
	if next == nil {
		next = Files{}
	}
	maps.Copy(next, out)
	m.vendors[vendor] = next
	return nil
}

// DirState keeps each vendor's trusted metadata in its own directory under
// dir (DIR/VENDOR/, the vendor name path-escaped), one file per role,
// each replaced atomically. A lock file serialises Updates of one vendor
// across processes (an admit next to a running serve).
type DirState struct {
	dir   string
	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

// NewDirState keeps state under dir (created on first use, mode 0700).
func NewDirState(dir string) *DirState {
	return &DirState{dir: dir, locks: map[string]*sync.Mutex{}}
}

func (d *DirState) vendorLock(vendor string) *sync.Mutex {
	d.mu.Lock()
	defer d.mu.Unlock()
	l, ok := d.locks[vendor]
	if !ok {
		l = &sync.Mutex{}
		d.locks[vendor] = l
	}
	return l
}

// VendorDir is the directory holding a vendor's trusted metadata.
func (d *DirState) VendorDir(vendor string) (string, error) {
	name := url.PathEscape(vendor)
	if name == "" || name == "." || name == ".." {
		return "", fmt.Errorf("tuf state: vendor name %q cannot name a directory", vendor)
	}
	return filepath.Join(d.dir, name), nil
}

// Update implements State. Only files whose content changed are written.
func (d *DirState) Update(ctx context.Context, vendor string, fn func(Files) (Files, error)) error {
	dir, err := d.VendorDir(vendor)
	if err != nil {
		return err
	}
	l := d.vendorLock(vendor)
	l.Lock()
	defer l.Unlock()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("tuf state: %w", err)
	}
	unlock, err := lockFile(filepath.Join(dir, ".lock"))
	if err != nil {
		return fmt.Errorf("tuf state: %w", err)
	}
	defer unlock()
	have, err := readFiles(dir)
	if err != nil {
		return fmt.Errorf("tuf state %s: %w", dir, err)
	}
	out, err := fn(maps.Clone(have))
	if err != nil {
		return err
	}
	changed := false
	for name, b := range out {
		if old, ok := have[name]; ok && bytes.Equal(old, b) {
			continue
		}
		if !validName(name) {
			return fmt.Errorf("tuf state: %q is not a metadata file name", name)
		}
		if err := writeAtomic(filepath.Join(dir, name), b); err != nil {
			return fmt.Errorf("tuf state: %w", err)
		}
		changed = true
	}
	if changed {
		return syncDir(dir)
	}
	return ctx.Err()
}

func readFiles(dir string) (Files, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := Files{}
	for _, e := range ents {
		if !e.Type().IsRegular() || !validName(e.Name()) {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
		f.Close()
		if err != nil {
			return nil, err
		}
		if len(b) > MaxFileBytes {
			return nil, fmt.Errorf("%s: larger than %d bytes", e.Name(), MaxFileBytes)
		}
		out[e.Name()] = b
	}
	return out, nil
}

func writeAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o600)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("tuf state: sync %s: %w", dir, err)
	}
	return nil
}

var (
	_ State = (*MemState)(nil)
	_ State = (*DirState)(nil)
)
