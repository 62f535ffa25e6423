// Package sqlitestore implements egress.Store on SQLite (modernc.org/sqlite,
// pure Go) in WAL mode. Each ingested file is one transaction; a file's
// content digest makes ingestion incremental.
//
// Imports: egress, database/sql and the SQLite driver. Must not import
// cobra, net/http server types or wardgate/server.
package sqlitestore
