package adapter

// GroupsRead is how many groups d has read from the store for the plots.
func GroupsRead(d *Data) int64 {
	d.groups.mu.RLock()
	defer d.groups.mu.RUnlock()
	return d.groups.read
}
