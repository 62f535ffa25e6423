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
