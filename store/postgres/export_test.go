package postgres

import "github.com/wardgate/wardgate/store"

// SetFailMigration (for a test that is not parallel: it changes every
// open of the package) makes the migration of a version fail inside its
// transaction (nil: none), as a crash in the middle of it would; it
// returns a func that restores the previous hook.
func SetFailMigration(f func(version int) error) (restore func()) {
	prev := failMigration
	failMigration = f
	return func() { failMigration = prev }
}

// Prefetched is what an append read with the log's lock, for the
// sequencer: the nodes of the compact range at the head (nil when nodes
// is not the append's reader).
func Prefetched(nodes store.NodeReader) map[store.NodeID][]byte {
	if p, ok := nodes.(prefetched); ok {
		return p.got
	}
	return nil
}
