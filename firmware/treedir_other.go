//go:build !linux

package firmware

// markTopDir is a Linux (ext2/3/4) placement hint; see TreeDir.
func markTopDir(string) {}
