package adapter

import "time"

// GroupsRead is how many groups d has read from the store for the plots.
func GroupsRead(d *Data) int64 {
	d.groups.mu.RLock()
	defer d.groups.mu.RUnlock()
	return d.groups.read
}

// SetInstallationsTTL sets how long installations are used before they
// are read again, for a test.
func SetInstallationsTTL(d time.Duration) (restore func()) {
	old := installationsTTL
	installationsTTL = d
	return func() { installationsTTL = old }
}

// WaitRefresh waits for d's background read of the installations.
func WaitRefresh(d *Data) { d.refreshing.Wait() }
