package adapter

import "time"

// GroupsRead is how many groups d has read from the store for the plots.
func GroupsRead(d *Data) int64 {
	d.groups.mu.RLock()
	defer d.groups.mu.RUnlock()
	return d.groups.read
}

// SetInstallationsBudget sets how long a page waits for the new
// installations, for a test.
func SetInstallationsBudget(d time.Duration) (restore func()) {
	old := installationsBudget
	installationsBudget = d
	return func() { installationsBudget = old }
}
