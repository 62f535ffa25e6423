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
