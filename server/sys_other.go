//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package server

// freeBytes is unknown here: the free-space check is off.
func freeBytes(string) (uint64, bool) { return 0, false }

// openFileLimit is unknown here: the default budget applies.
func openFileLimit() (int, bool) { return 0, false }
