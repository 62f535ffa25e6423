package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// The migrations, in order: version i+1 is migrations[i]. Never edit one:
// append. Text columns that are sorted on are COLLATE "C", so that order
// is byte order, as in the SQLite backend, whatever the database's locale.
var migrations = []migration{
	// 1: the release ledger and the kept evaluations.
	`CREATE TABLE releases (
	id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	vendor        text NOT NULL,
	product       text NOT NULL,
	version       text NOT NULL,
	digest        text NOT NULL,
	allowed       boolean NOT NULL,
	codes         text[] NOT NULL,
	sbom_digest   text NOT NULL,
	policy_digest text NOT NULL,
	trust_digest  text NOT NULL,
	evaluated_at  bigint NOT NULL
);
CREATE INDEX releases_product ON releases (vendor, product, evaluated_at);
CREATE INDEX releases_version ON releases (vendor, product, version);
CREATE TABLE evaluations (
	digest      text COLLATE "C" PRIMARY KEY,
	vendor      text NOT NULL,
	product     text NOT NULL,
	version     text NOT NULL,
	recorded_at bigint NOT NULL,
	record      bytea NOT NULL
);
CREATE INDEX evaluations_release ON evaluations (vendor, product, version);`,

	// 2: the verdict log. log_checkpoint holds one row from the start,
	// its columns null until the first checkpoint: every append locks it
	// first (FOR UPDATE), which is the log's sequence across processes,
	// and the lock's read is the head to continue.
	`CREATE TABLE log_checkpoint (id integer PRIMARY KEY CHECK (id = 1), origin text, size bigint, root bytea, note bytea,
	CHECK ((origin IS NULL) = (note IS NULL)));
INSERT INTO log_checkpoint (id) VALUES (1);
CREATE TABLE log_entries (
	idx      bigint PRIMARY KEY,
	leaf     bytea NOT NULL,
	envelope bytea NOT NULL,
	artifact text NOT NULL,
	device   text NOT NULL,
	time     bigint NOT NULL,
	refs     text[] NOT NULL
);
CREATE INDEX log_entries_artifact ON log_entries (artifact);
CREATE INDEX log_entries_device ON log_entries (device);
CREATE INDEX log_entries_time ON log_entries (time);
CREATE TABLE log_nodes (level integer NOT NULL, idx bigint NOT NULL, hash bytea NOT NULL, PRIMARY KEY (level, idx));
CREATE TABLE blobs (digest text PRIMARY KEY, media_type text NOT NULL, data bytea NOT NULL);`,

	// 3: egress telemetry and installations.
	`CREATE TABLE telemetry_sources (digest text PRIMARY KEY, name text NOT NULL, events bigint NOT NULL, ingested_at bigint NOT NULL);
CREATE TABLE telemetry_events (
	id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	ts             bigint NOT NULL,
	device         text NOT NULL,
	device_id      text NOT NULL,
	action         text NOT NULL,
	remote_ip      text NOT NULL,
	remote_port    integer NOT NULL,
	remote_url     text NOT NULL,
	remote_ip_type text NOT NULL,
	local_ip       text NOT NULL,
	local_port     integer NOT NULL,
	protocol       text NOT NULL,
	process        text NOT NULL,
	sent           bigint NOT NULL,
	received       bigint NOT NULL
);
CREATE INDEX telemetry_events_ts ON telemetry_events (ts, id);
CREATE TABLE installations (
	device  text COLLATE "C" NOT NULL,
	digest  text COLLATE "C" NOT NULL,
	product text NOT NULL,
	version text NOT NULL,
	ts      bigint NOT NULL,
	PRIMARY KEY (device, digest, ts)
);
CREATE INDEX installations_device_ts ON installations (device, ts);`,

	// 4: API tokens and the audit trail.
	`CREATE TABLE tokens (hash text PRIMARY KEY, name text COLLATE "C" NOT NULL UNIQUE, role text NOT NULL, created bigint NOT NULL, revoked boolean NOT NULL DEFAULT false);
CREATE TABLE audit (
	id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	time       bigint NOT NULL,
	request_id text NOT NULL,
	token      text NOT NULL,
	role       text NOT NULL,
	action     text NOT NULL,
	target     text NOT NULL,
	status     integer NOT NULL,
	outcome    text NOT NULL
);
CREATE INDEX audit_time ON audit (time);`,

	// 5: the events' groups (egress.Group), merged in each batch's
	// transaction. A source's batch numbers it (0: ingested before groups
	// were kept); a group's batch is the last batch that changed it.
	// Events from before this migration are grouped on open
	// (telemetry_group_backfill).
	`ALTER TABLE telemetry_sources ADD COLUMN batch bigint NOT NULL DEFAULT 0;
CREATE TABLE telemetry_groups (
	device         text COLLATE "C" NOT NULL,
	hour           bigint NOT NULL,
	success        boolean NOT NULL,
	remote_url     text COLLATE "C" NOT NULL,
	remote_ip      text COLLATE "C" NOT NULL,
	remote_ip_type text COLLATE "C" NOT NULL,
	events         bigint NOT NULL,
	sent           bigint NOT NULL,
	first          bigint NOT NULL,
	last           bigint NOT NULL,
	times          bytea NOT NULL,
	batch          bigint NOT NULL,
	PRIMARY KEY (device, hour, success, remote_url, remote_ip, remote_ip_type)
);
CREATE INDEX telemetry_groups_batch ON telemetry_groups (batch);
CREATE TABLE telemetry_group_backfill (pending integer NOT NULL);
INSERT INTO telemetry_group_backfill SELECT 1 WHERE EXISTS (SELECT 1 FROM telemetry_events);`,

	// 6: the raw events in blocks (internal/eventblock): one row per block
	// of up to eventblock.MaxEvents events of one source (its digest; ''
	// for the events converted from telemetry_events), sorted by time;
	// first and last are its first and last times. Events reads them in
	// time order by merging the blocks in (first, id) order. The blocks
	// are compressed already: stored out of line, not compressed again.
	// The step convertEvents moves the events rows into blocks (in their
	// ORDER BY ts, id order) and drops telemetry_events.
	`CREATE TABLE telemetry_blocks (
	id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	source text NOT NULL,
	events integer NOT NULL,
	first  bigint NOT NULL,
	last   bigint NOT NULL,
	data   bytea NOT NULL
);
ALTER TABLE telemetry_blocks ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE INDEX telemetry_blocks_first ON telemetry_blocks (first, id);`,

	// 7: the installations numbered in the order they were recorded
	// (InstallationsSince). Writers number them under lockInstallations,
	// held until they commit, so no reader sees a number before a smaller
	// one.
	`ALTER TABLE installations ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY;
CREATE UNIQUE INDEX installations_id ON installations (id);`,
}

// migrationSteps are Go code run after the SQL of the migration of that
// version, in its transaction.
var migrationSteps = map[int]func(ctx context.Context, tx pgx.Tx) error{6: convertEvents}
