package postgres

// SetFailMigration (for a test that is not parallel: it changes every
// open of the package) makes the migration of a version fail inside its
// transaction (nil: none), as a crash in the middle of it would; it
// returns a func that restores the previous hook.
func SetFailMigration(f func(version int) error) (restore func()) {
	prev := failMigration
	failMigration = f
	return func() { failMigration = prev }
}
