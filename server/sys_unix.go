//go:build linux || darwin || freebsd || netbsd || openbsd

package server

import "syscall"

// freeBytes is the space an unprivileged process may still use on the
// filesystem holding dir.
func freeBytes(dir string) (uint64, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return uint64(st.Bavail) * uint64(st.Bsize), true
}

// openFileLimit is the process's soft limit on open files (Go raises it
// to the hard limit at start on Linux).
func openFileLimit() (int, bool) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil || r.Cur > 1<<30 {
		return 0, false
	}
	return int(r.Cur), true
}
