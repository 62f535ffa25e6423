//go:build !unix

package tuf

import (
	"io"
	"os"
)

// lockFile is a no-op where advisory file locks are not available: Updates
// are serialised within the process only.
func lockFile(string) (func(), error) { return func() {}, nil }

// mapFile reads the file whole where mmap is not available.
func mapFile(f *os.File, size int64) ([]byte, func(), error) {
	b := make([]byte, size)
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, nil, err
	}
	return b, func() {}, nil
}
