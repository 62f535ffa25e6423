package wardgate_test

import data.wardgate
import data.wardgate.testdata as td

at := time.parse_rfc3339_ns("2026-11-28T14:00:00Z")

decide(inp, trust) := d if {
	d := wardgate.decision with input as inp with data.trust as trust with time.now_ns as at
}

test_allow if {
	d := decide(td.input_ok, td.trust)
	d.allow
	d.violations == set()
	d.warnings == set()
}

test_deny_tags_rule if {
	d := decide(td.with_("/device/installedVersion", "9.0.0"), td.trust)
	not d.allow
	[[v.code, v.rule] | some v in d.violations] == [["rollback", "version"]]
}

test_warn_moves_to_warnings if {
	d := decide(td.with_("/device/installedVersion", "9.0.0"), object.union(td.trust, {"rules": {"rollback": "warn"}}))
	d.allow
	[v.code | some v in d.warnings] == ["rollback"]
}

test_off_drops if {
	d := decide(td.with_("/device/installedVersion", "9.0.0"), object.union(td.trust, {"rules": {"rollback": "off"}}))
	d.allow
	d.warnings == set()
}

test_empty_trust_denies_everything if {
	d := decide(td.input_ok, {})
	not d.allow
	"untrusted-signer" in {v.code | some v in d.violations}
}
