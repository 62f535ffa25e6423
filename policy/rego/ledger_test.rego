package wardgate.rules.ledger_test

import data.wardgate.rules.ledger
import data.wardgate.testdata as td

codes(inp) := c if {
	c := {v.code | some v in ledger.deny} with input as inp
}

test_empty_ledger_passes if {
	codes(td.input_ok) == set()
}

test_admitted_with_other_digest if {
	codes(td.with_("/ledger/entries", [{"digest": "sha256:zz", "allowed": true, "recordedAt": "2026-01-01T00:00:00Z"}])) == {"same-version-different-digest"}
}

test_denied_with_other_digest_passes if {
	codes(td.with_("/ledger/entries", [{"digest": "sha256:zz", "allowed": false, "recordedAt": "2026-01-01T00:00:00Z"}])) == set()
}

test_admitted_with_same_digest_passes if {
	codes(td.with_("/ledger/entries", [{"digest": "sha256:aa", "allowed": true, "recordedAt": "2026-01-01T00:00:00Z"}])) == set()
}

test_previous_same_version_other_digest if {
	codes(td.with_("/previous", {"version": "2.4.0", "digest": "sha256:zz", "admittedAt": "2026-01-01T00:00:00Z"})) == {"same-version-different-digest"}
}
