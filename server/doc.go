// Package server is wardgate's HTTP API: update servers ask it whether a
// device may install an update (POST /v1/admissions), CI submits updates
// for evaluation (POST /v1/updates), sensors push egress telemetry (POST
// /v1/telemetry), and auditors read decisions, findings, the verdict log
// and evidence packs. docs/openapi.yaml describes every route and
// docs/serve.md how to run it.
//
// Handlers decode the request, call the gate and map errors to statuses in
// one place (writeError). Every route but /healthz, /readyz and /metrics
// needs a bearer token whose role allows it; tokens are kept hashed in the
// store (Tokens, over store.Tokens), next to the audit trail where every
// state-changing call is recorded before it is answered.
//
// The admission path fails closed: whatever goes wrong after the request
// was understood, the answer is 200 with a deny whose reason is
// could-not-evaluate.
//
// Imports: gate, attest, egress, evidence, policy, verify, sbom (limits).
// Must not import: cobra, cmd/.
package server
