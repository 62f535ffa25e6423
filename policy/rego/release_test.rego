package wardgate.rules.release_test

import data.wardgate.rules.release
import data.wardgate.testdata as td

codes(inp) := c if {
	c := {v.code | some v in release.deny} with input as inp with data.trust as td.trust
}

pinned := json.patch(td.trust, [{"op": "add", "path": "/vendors/acme/tuf", "value": {"root_digest": "sha256:cc", "repository": ""}}])

with_tuf(t) := json.patch(td.input_ok, [{"op": "add", "path": "/metadata/tuf", "value": t}])

failed(reason) := with_tuf(object.union(td.tuf_ok, {"verified": false, "reason": reason, "detail": "go-tuf says so"}))

test_no_tuf_no_pin_passes if {
	codes(td.input_ok) == set()
}

test_verified_passes if {
	codes(with_tuf(td.tuf_ok)) == set() with data.trust as pinned
}

test_pinned_without_metadata if {
	c := {v.code | some v in release.deny} with input as td.input_ok with data.trust as pinned
	c == {"metadata-missing"}
}

test_reasons if {
	codes(failed("metadata-missing")) == {"metadata-missing"}
	codes(failed("metadata-untrusted")) == {"metadata-untrusted"}
	codes(failed("metadata-rollback")) == {"metadata-rollback"}
	codes(failed("metadata-expired")) == {"metadata-expired"}
	codes(failed("unknown-target")) == {"unknown-target"}
	codes(failed("digest-mismatch")) == {"digest-mismatch"}
}

# An expired repository with an expiry in the evidence is the metadata
# rule's (it names the time); without one, this rule's.
test_expired_with_expires_is_left_to_the_metadata_rule if {
	inp := json.patch(failed("metadata-expired"), [{"op": "add", "path": "/metadata/expires", "value": "2026-11-01T00:00:00Z"}])
	codes(inp) == set()
}

# A target whose hash differs is reported once, by the expected digest rule.
test_digest_mismatch_left_to_expected_digest if {
	inp := json.patch(failed("digest-mismatch"), [{"op": "add", "path": "/artifact/expectedDigest", "value": "sha256:ff"}])
	codes(inp) == set()
}

test_version_claim_differs if {
	codes(with_tuf(object.union(td.tuf_ok, {"version": "2.3.0"}))) == {"metadata-mismatch"}
}

test_version_claim_same_version_written_otherwise if {
	codes(with_tuf(object.union(td.tuf_ok, {"version": "v2.4"}))) == set()
}

test_version_claim_not_comparable if {
	codes(with_tuf(object.union(td.tuf_ok, {"version": "next"}))) == {"metadata-mismatch"}
}

test_device_class_claim_differs if {
	codes(with_tuf(object.union(td.tuf_ok, {"deviceClasses": ["ventilator"]}))) == {"metadata-mismatch"}
	codes(with_tuf(object.union(td.tuf_ok, {"deviceClasses": ["pump", "ventilator"]}))) == set()
	codes(with_tuf(object.remove(td.tuf_ok, ["deviceClasses"]))) == set()
}
