package bus

import "github.com/nats-io/nats.go/jetstream"

// SetBeforeAck installs a hook run after a batch is committed and before
// it is acknowledged; false skips the acknowledgement (a crash).
func SetBeforeAck(c *Consumer, f func(jetstream.Msg) bool) { c.beforeAck = f }

// SubjectMatches is subjectMatches.
var SubjectMatches = subjectMatches
