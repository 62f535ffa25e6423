package gate

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// SBOMStore keeps SBOM documents by digest in a directory, so that the next
// release of a product can be diffed against this one.
type SBOMStore struct{ dir string }

// MaxSBOMBytes bounds a kept SBOM.
const MaxSBOMBytes = 256 << 20

// NewSBOMStore creates dir if needed.
func NewSBOMStore(dir string) (*SBOMStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sbom store: %w", err)
	}
	return &SBOMStore{dir: dir}, nil
}

func (s *SBOMStore) path(digest string) (string, error) {
	alg, hexd, ok := strings.Cut(digest, ":")
	if !ok || alg != "sha256" || len(hexd) != 64 || strings.Trim(hexd, "0123456789abcdef") != "" {
		return "", fmt.Errorf("sbom store: bad digest %q", digest)
	}
	return filepath.Join(s.dir, "sha256-"+hexd), nil
}

// Put stores data under digest (which the caller computed), atomically.
func (s *SBOMStore) Put(digest string, data []byte) error {
	p, err := s.path(digest)
	if err != nil {
		return err
	}
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	f, err := os.CreateTemp(s.dir, ".tmp-")
	if err != nil {
		return fmt.Errorf("sbom store: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("sbom store: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("sbom store: %w", err)
	}
	f.Close()
	if err := os.Rename(f.Name(), p); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("sbom store: %w", err)
	}
	return nil
}

// Get reads the SBOM stored under digest (os.ErrNotExist when absent).
func (s *SBOMStore) Get(digest string) ([]byte, error) {
	p, err := s.path(digest)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxSBOMBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxSBOMBytes {
		return nil, fmt.Errorf("sbom store: %s larger than %d bytes", digest, MaxSBOMBytes)
	}
	return b, nil
}
