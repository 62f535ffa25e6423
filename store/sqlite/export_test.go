package sqlite

// Fault injection for the tests of interrupted migrations and imports.

func SetFailMigration(f func(path string, version int) error) func() {
	failMigration = f
	return func() { failMigration = nil }
}

func SetFailImport(f func(dir string) error) func() {
	failImport = f
	return func() { failImport = nil }
}

// SetGroupCacheLimit sets how many groups the writer's cache holds, until
// restore is called.
func SetGroupCacheLimit(n int) (restore func()) {
	prev := groupCacheLimit
	groupCacheLimit = n
	return func() { groupCacheLimit = prev }
}

// WriterAutocheckpoint is wal_autocheckpoint on wardgate.db's writer
// connection.
func WriterAutocheckpoint(db *DB) (int, error) {
	var n int
	err := db.main.w.QueryRow(`PRAGMA wal_autocheckpoint`).Scan(&n)
	return n, err
}

// Checkpoints is how many checkpoints wardgate.db's checkpointer ran.
func Checkpoints(db *DB) int64 { return db.ckpt.runs.Load() }
