// Package bus consumes egress telemetry from NATS JetStream (docs/serve.md,
// "Telemetry bus"). Sensors publish one batch of telemetry per message on
// the subject of its format (Subject: wardgate.telemetry.defender-json,
// ...); a Consumer reads them through a durable pull consumer and hands
// each batch to an IngestFunc: in wardgate serve that is the server's
// IngestTelemetry, the path POST /v1/telemetry takes.
//
// A message is acknowledged only after its batch is committed; a batch is
// keyed by the sha256 of its body, so a redelivered message adds nothing.
// A message that is not telemetry (a subject naming no format, an empty or
// oversized body, content of no known format, no events) is copied to a
// dead-letter subject (DeadLetterSubject) with the reason in the
// ReasonHeader header, then terminated: it is never redelivered. A
// transient failure (the store, no fleet inventory yet) is negatively
// acknowledged with a growing delay and retried.
//
// bus imports egress and the NATS client; it must not import net/http
// server types, cobra, server/ or cmd/.
package bus
