// Package store is everything wardgate keeps: the release ledger, the kept
// evaluations, content-addressed blobs (SBOMs, trust configurations), the
// verdict log's rows (entries, tree nodes, the signed checkpoint), egress
// telemetry and installations, API tokens and the audit trail.
//
// Each concern is a small interface (Ledger, Evaluations, Blobs, LogStore,
// Telemetry, Installations, Tokens, Audit); Store is all of them with Ping
// and Close. Open opens the store at a location: a state directory for the
// embedded SQLite backend (store/sqlite), or a postgres:// or
// postgresql:// DSN for the shared PostgreSQL one (store/postgres); a
// backend is registered by importing it. storetest holds the behaviour
// every backend must show.
//
// The rules every backend keeps:
//   - Every method takes a context and honours it in every wait.
//   - The writes on the admission path (log appends, installations, audit
//     records) are group-committed (internal/groupcommit.Writer): Submit
//     returns once the write is durable; Expect announces one on its way.
//   - The log is sequenced explicitly: AppendLog hands a Sequencer the
//     log's head inside the write that holds the log's sequence, so two
//     appenders (two processes, later two replicas) can never both append
//     at the same index.
//   - Readers never hold what a writer needs: exports and proofs read on
//     their own connections and never keep one across a callback.
//
// Imports: the standard library, evidence and egress (for the telemetry
// types it keeps). Must not import policy, verify, sbom, attest, gate,
// net/http server types, or cobra; backends import their database driver.
package store
