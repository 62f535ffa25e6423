package tuf

// MemSource is metadata in memory by file name, for the fuzz target.
func MemSource(files map[string][]byte) Source { return memSource(files) }
