// Package store defines the release ledger: every evaluated release
// (vendor, product, version, digest, decision, time, SBOM digest), kept so
// that separate `wardgate admit` runs can detect rollbacks and a version
// re-issued with another digest.
//
// Ledger is the interface; sqlite/ implements it on an embedded SQLite
// database and inmem/ in memory (for tests of the packages that use it). A
// later PostgreSQL implementation goes behind the same interface. storetest/
// holds the behaviour every implementation must show.
//
// Imports: the standard library and evidence. Must not import policy,
// verify, sbom, net/http server types, or cobra; implementations import
// their database driver only.
package store
