# METADATA
# title: release ledger
# description: |
#   One version, one digest: a version admitted before may not come back with
#   other content.
package wardgate.rules.ledger

deny contains {
	"code": "same-version-different-digest",
	"severity": "critical",
	"message": sprintf("version %s was admitted on %s with digest %s, but this artifact is %s; a re-issued release under the same version is a tampering signal, ask the vendor for a new version", [input.artifact.version, e.recordedAt, e.digest, input.artifact.digest]),
} if {
	some e in input.ledger.entries
	e.allowed
	e.digest != input.artifact.digest
}

deny contains {
	"code": "same-version-different-digest",
	"severity": "critical",
	"message": sprintf("version %s was admitted on %s with digest %s, but this artifact is %s; a re-issued release under the same version is a tampering signal, ask the vendor for a new version", [input.artifact.version, input.previous.admittedAt, input.previous.digest, input.artifact.digest]),
} if {
	input.previous.version == input.artifact.version
	input.previous.digest != input.artifact.digest
	not ledger_has(input.previous.digest)
}

ledger_has(d) if {
	some e in input.ledger.entries
	e.allowed
	e.digest == d
}
