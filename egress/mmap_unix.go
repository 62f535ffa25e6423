//go:build linux || darwin || freebsd || netbsd || openbsd

package egress

import (
	"os"
	"syscall"
)

// mapFile maps size bytes of f read-only. The hunt reads a regular file
// through the mapping instead of copying it through read(2): the file is
// usually in the page cache, and the copy costs as much as a third of the
// scan. unmap releases the mapping.
func mapFile(f *os.File, size int64) (data []byte, unmap func() error, err error) {
	if size <= 0 || int64(int(size)) != size {
		return nil, nil, syscall.EINVAL
	}
	data, err = syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, err
	}
	_ = syscall.Madvise(data, syscall.MADV_SEQUENTIAL)
	return data, func() error { return syscall.Munmap(data) }, nil
}

// dropMapped tells the system the hunt is done with b, a page-aligned
// part of a mapping: its pages leave the process's resident set (they stay
// in the page cache), so that a hunt's memory is its aggregates, not the
// file.
func dropMapped(b []byte) { _ = syscall.Madvise(b, syscall.MADV_DONTNEED) }
