package sqlite

// The state directory's database files and their migrations.
//
// wardgate.db holds everything but telemetry: the writes of one admission
// (its signed verdict, its installation intent, its audit record) are one
// transaction and one fsync with those of the admissions beside it, and
// the ledger, the kept evaluations and the tokens share its writer.
// Telemetry (egress.db) is apart: a large batch is a long transaction,
// which must not hold the admissions' writer, and it is kept with
// synchronous=NORMAL (a batch lost to a power cut is sent again). Earlier
// wardgates kept four files, one per concern; legacy.go moves them in.
var (
	mainSpec = spec{name: "wardgate.db", sync: syncFull, migrations: []migration{
		// Every table IF NOT EXISTS: an earlier wardgate's log.db, renamed
		// wardgate.db (legacy.go), already has the log's.
		`CREATE TABLE IF NOT EXISTS entries(
		idx INTEGER PRIMARY KEY,
		leaf BLOB NOT NULL,
		envelope BLOB NOT NULL,
		artifact TEXT NOT NULL,
		device TEXT NOT NULL DEFAULT '',
		time INTEGER NOT NULL,
		refs TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX IF NOT EXISTS entries_artifact ON entries(artifact);
	CREATE INDEX IF NOT EXISTS entries_device ON entries(device);
	CREATE INDEX IF NOT EXISTS entries_time ON entries(time);
	CREATE TABLE IF NOT EXISTS nodes(level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY(level, idx)) WITHOUT ROWID;
	CREATE TABLE IF NOT EXISTS checkpoint(id INTEGER PRIMARY KEY CHECK (id = 1), origin TEXT NOT NULL, size INTEGER NOT NULL, root BLOB NOT NULL, note BLOB NOT NULL);
	CREATE TABLE IF NOT EXISTS blobs(digest TEXT PRIMARY KEY, media_type TEXT NOT NULL, data BLOB NOT NULL);

	CREATE TABLE IF NOT EXISTS releases (
		id            INTEGER PRIMARY KEY,
		vendor        TEXT NOT NULL,
		product       TEXT NOT NULL,
		version       TEXT NOT NULL,
		digest        TEXT NOT NULL,
		allowed       INTEGER NOT NULL CHECK (allowed IN (0, 1)),
		codes         TEXT NOT NULL,
		sbom_digest   TEXT NOT NULL,
		policy_digest TEXT NOT NULL,
		trust_digest  TEXT NOT NULL,
		evaluated_at  TEXT NOT NULL
	);
	CREATE INDEX IF NOT EXISTS releases_product ON releases (vendor, product, evaluated_at);
	CREATE INDEX IF NOT EXISTS releases_version ON releases (vendor, product, version);

	CREATE TABLE IF NOT EXISTS evaluations (
		digest      TEXT PRIMARY KEY,
		vendor      TEXT NOT NULL,
		product     TEXT NOT NULL,
		version     TEXT NOT NULL,
		recorded_at INTEGER NOT NULL,
		record      BLOB NOT NULL
	);
	CREATE INDEX IF NOT EXISTS evaluations_release ON evaluations (vendor, product, version);

	CREATE TABLE IF NOT EXISTS installations (device TEXT NOT NULL, digest TEXT NOT NULL, product TEXT NOT NULL, version TEXT NOT NULL, ts INTEGER NOT NULL,
	  PRIMARY KEY (device, digest, ts));
	CREATE INDEX IF NOT EXISTS installations_device_ts ON installations(device, ts);

	CREATE TABLE IF NOT EXISTS tokens(hash TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, role TEXT NOT NULL, created INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0);
	CREATE TABLE IF NOT EXISTS audit(id INTEGER PRIMARY KEY, time INTEGER NOT NULL, request_id TEXT NOT NULL, token TEXT NOT NULL, role TEXT NOT NULL,
	  action TEXT NOT NULL, target TEXT NOT NULL, status INTEGER NOT NULL, outcome TEXT NOT NULL);
	CREATE INDEX IF NOT EXISTS audit_time ON audit(time);

	-- The earlier files whose rows were moved in (legacy.go).
	CREATE TABLE IF NOT EXISTS legacy_imports(file TEXT PRIMARY KEY, imported_at TEXT NOT NULL);`,
		// The installations numbered in the order they were recorded
		// (InstallationsSince): a column of its own, since VACUUM may
		// renumber an implicit rowid. A writer holds the file's lock from
		// its insert to its commit, so no reader sees a number before a
		// smaller one.
		`CREATE TABLE installations_v2 (id INTEGER PRIMARY KEY, device TEXT NOT NULL, digest TEXT NOT NULL, product TEXT NOT NULL, version TEXT NOT NULL,
	  ts INTEGER NOT NULL, UNIQUE (device, digest, ts));
	INSERT INTO installations_v2(device, digest, product, version, ts) SELECT device, digest, product, version, ts FROM installations ORDER BY rowid;
	DROP TABLE installations;
	ALTER TABLE installations_v2 RENAME TO installations;
	CREATE INDEX installations_device_ts ON installations(device, ts);`,
		// The log's tree nodes keyed by their last leaf, then level: the
		// nodes one append completes all end at its leaves, so they go in
		// together at the end of the table (one or two pages a commit)
		// instead of at the end of each level's run (a page per level:
		// four of the fifteen pages a Kubernetes review wrote). A node
		// (level, idx) ends at leaf ((idx + 1) << level) - 1.
		`CREATE TABLE nodes_v2(last INTEGER NOT NULL, level INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY(last, level)) WITHOUT ROWID;
	INSERT INTO nodes_v2(last, level, hash) SELECT ((idx + 1) << level) - 1, level, hash FROM nodes ORDER BY 1, 2;
	DROP TABLE nodes;
	ALTER TABLE nodes_v2 RENAME TO nodes;`,
	}}

	egressSpec = spec{name: "egress.db", sync: syncNormal, migrations: []migration{
		`CREATE TABLE IF NOT EXISTS sources (digest TEXT PRIMARY KEY, name TEXT NOT NULL, events INTEGER NOT NULL, ingested_at INTEGER NOT NULL);
	CREATE TABLE IF NOT EXISTS events (
	  ts INTEGER NOT NULL, device TEXT NOT NULL, device_id TEXT NOT NULL, action TEXT NOT NULL,
	  remote_ip TEXT NOT NULL, remote_port INTEGER NOT NULL, remote_url TEXT NOT NULL, remote_ip_type TEXT NOT NULL,
	  local_ip TEXT NOT NULL, local_port INTEGER NOT NULL, protocol TEXT NOT NULL, process TEXT NOT NULL,
	  sent INTEGER NOT NULL, received INTEGER NOT NULL);
	CREATE INDEX IF NOT EXISTS events_ts ON events(ts);`,
		// Installations live in wardgate.db; an earlier wardgate's were
		// moved there before this runs (legacy.go).
		`DROP TABLE IF EXISTS installations;`,
		// The events' groups (egress.Group), merged in each batch's
		// transaction; batch is the sources rowid of the last batch that
		// changed the group. A file with events from before this migration
		// has them grouped on open (group_backfill).
		`CREATE TABLE IF NOT EXISTS event_groups (
	  device TEXT NOT NULL, hour INTEGER NOT NULL, success INTEGER NOT NULL,
	  remote_url TEXT NOT NULL, remote_ip TEXT NOT NULL, remote_ip_type TEXT NOT NULL,
	  events INTEGER NOT NULL, sent INTEGER NOT NULL, first INTEGER NOT NULL, last INTEGER NOT NULL,
	  times BLOB NOT NULL, batch INTEGER NOT NULL,
	  PRIMARY KEY (device, hour, success, remote_url, remote_ip, remote_ip_type)) WITHOUT ROWID;
	CREATE INDEX IF NOT EXISTS event_groups_batch ON event_groups(batch);
	CREATE TABLE IF NOT EXISTS group_backfill (pending INTEGER NOT NULL);
	INSERT INTO group_backfill SELECT 1 WHERE EXISTS (SELECT 1 FROM events);`,
		// The raw events in blocks (internal/eventblock): one row per block
		// of up to eventblock.MaxEvents events of one batch (sources rowid;
		// 0 for the events converted from an earlier file), sorted by time;
		// first and last are its first and last times. Events reads them
		// in time order by merging the blocks in (first, id) order. The
		// step convertEvents moves the events of an earlier file into
		// blocks (in their ORDER BY ts, rowid order) and drops the table.
		`CREATE TABLE IF NOT EXISTS event_blocks (id INTEGER PRIMARY KEY, batch INTEGER NOT NULL, events INTEGER NOT NULL,
	  first INTEGER NOT NULL, last INTEGER NOT NULL, data BLOB NOT NULL);
	CREATE INDEX IF NOT EXISTS event_blocks_first ON event_blocks(first, id);`,
		// The groups by row id, so that the writer, which keeps a copy of
		// them (groupCache), writes a merged group back by its id; the key
		// stays unique.
		`CREATE TABLE event_groups_v5 (id INTEGER PRIMARY KEY,
	  device TEXT NOT NULL, hour INTEGER NOT NULL, success INTEGER NOT NULL,
	  remote_url TEXT NOT NULL, remote_ip TEXT NOT NULL, remote_ip_type TEXT NOT NULL,
	  events INTEGER NOT NULL, sent INTEGER NOT NULL, first INTEGER NOT NULL, last INTEGER NOT NULL,
	  times BLOB NOT NULL, batch INTEGER NOT NULL);
	INSERT INTO event_groups_v5(device, hour, success, remote_url, remote_ip, remote_ip_type, events, sent, first, last, times, batch)
	  SELECT device, hour, success, remote_url, remote_ip, remote_ip_type, events, sent, first, last, times, batch FROM event_groups
	  ORDER BY device, hour, success, remote_url, remote_ip, remote_ip_type;
	DROP TABLE event_groups;
	ALTER TABLE event_groups_v5 RENAME TO event_groups;
	CREATE UNIQUE INDEX event_groups_key ON event_groups(device, hour, success, remote_url, remote_ip, remote_ip_type);
	CREATE INDEX event_groups_batch ON event_groups(batch);`,
	}, steps: map[int]migrationStep{4: convertEvents}}
)
