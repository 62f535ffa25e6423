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

rel(v, d, at) := {"version": v, "digest": d, "admittedAt": at}

msgs(inp, trust) := m if {
	m := {[v.code, v.message] | some v in ledger.deny} with input as inp with data.trust as trust
}

accepted(inp, trust) := m if {
	m := {[v.code, v.message] | some v in ledger.accepted} with input as inp with data.trust as trust
}

admitted(rs) := td.with_("/ledger/admitted", rs)

test_newer_than_every_admitted_release_passes if {
	codes(admitted([rel("2.3.0", "sha256:cc", "2026-01-01T00:00:00Z"), rel("v2.3.1", "sha256:dd", "2026-02-01T00:00:00Z")])) == set()
}

test_same_version_again_passes if {
	codes(admitted([rel("2.4.0", "sha256:aa", "2026-01-01T00:00:00Z")])) == set()
}

test_older_than_highest_admitted if {
	inp := admitted([
		rel("2.3.0", "sha256:cc", "2026-01-01T00:00:00Z"),
		rel("2.10.0", "sha256:dd", "2026-03-01T00:00:00Z"),
		rel("2.5.0", "sha256:ee", "2026-02-01T00:00:00Z"),
		rel("2.10.0", "sha256:ff", "2026-04-01T00:00:00Z"),
	])
	msgs(inp, td.trust) == {["rollback", "version 2.4.0 is older than 2.10.0, the highest release of acme/pump admitted (on 2026-03-01T00:00:00Z); versions never go back: release a newer version, or allow this downgrade with a reason in vendors.acme.products.pump.allow_downgrade"]}
}

test_incomparable_admitted_version_fails_closed if {
	msgs(admitted([rel("nightly-7", "sha256:cc", "2026-01-01T00:00:00Z")]), td.trust) == {["rollback", "version 2.4.0 cannot be compared with nightly-7, admitted before as a release of acme/pump; wardgate compares semantic versions and dotted numbers, so it cannot tell that versions do not go back: allow this release with a reason in vendors.acme.products.pump.allow_downgrade if it is right"]}
}

trust_downgrade := json.patch(td.trust, [{"op": "add", "path": "/vendors/acme/products/pump/allow_downgrade", "value": [{"version": "2.4.0", "reason": "2.5.0 stops the occlusion alarm (advisory A-11)"}]}])

test_allowed_downgrade_is_accepted_with_its_reason if {
	inp := admitted([rel("2.5.0", "sha256:ee", "2026-02-01T00:00:00Z")])
	msgs(inp, trust_downgrade) == set()
	accepted(inp, trust_downgrade) == {["rollback", "version 2.4.0 is older than 2.5.0, the highest release of acme/pump admitted (on 2026-02-01T00:00:00Z); downgrade allowed by the trust configuration: 2.5.0 stops the occlusion alarm (advisory A-11)"]}
}

test_downgrade_allowance_is_for_its_version_only if {
	inp := json.patch(admitted([rel("2.5.0", "sha256:ee", "2026-02-01T00:00:00Z")]), [{"op": "add", "path": "/artifact/version", "value": "2.4.1"}])
	codes(inp) == {"rollback"} with data.trust as trust_downgrade
	accepted(inp, trust_downgrade) == set()
}

test_digest_admitted_under_another_version if {
	inp := admitted([rel("9.9.9", "sha256:aa", "2026-01-01T00:00:00Z")])
	msgs(inp, trust_downgrade) == {
		["version-conflict", "pump-2.4.0.bin (sha256:aa) was admitted on 2026-01-01T00:00:00Z as version 9.9.9 of acme/pump, and is now presented as version 2.4.0; one file is one release: a file relabelled with another version is a mix-up or an attack, admit it under 9.9.9 or ask the vendor"],
	}
}

test_no_admitted_section_passes if {
	codes(td.input_ok) == set()
}
