package wardgate.rules.metadata_test

import data.wardgate.rules.metadata
import data.wardgate.testdata as td

at := time.parse_rfc3339_ns("2026-11-28T14:00:00Z")

codes(inp) := c if {
	c := {v.code | some v in metadata.deny} with input as inp with data.trust as td.trust with time.now_ns as at
}

test_fresh_passes if {
	codes(td.input_ok) == set()
}

test_expired if {
	codes(td.with_("/metadata/expires", "2026-11-28T13:59:59Z")) == {"metadata-expired"}
	codes(td.with_("/metadata/expires", "2026-11-28T14:00:01Z")) == set()
}

test_too_old if {
	codes(td.with_("/metadata/signedAt", "2026-05-01T00:00:00Z")) == {"metadata-expired"}
}

test_future if {
	codes(td.with_("/metadata/signedAt", "2026-11-28T14:06:00Z")) == {"metadata-future"}
	codes(td.with_("/metadata/signedAt", "2026-11-28T14:04:00Z")) == set()
}

# A verified signature without a trusted time cannot show its age: denied
# when max_metadata_age is set, unless verified TUF metadata (with its own
# expiry) stands in for it.
test_no_signing_time_untimed if {
	codes(td.without("/metadata/signedAt")) == {"metadata-untimed"}
}

test_no_signing_time_with_tuf_passes if {
	inp := json.patch(td.input_ok, [
		{"op": "remove", "path": "/metadata/signedAt"},
		{"op": "add", "path": "/metadata/tuf", "value": td.tuf_ok},
		{"op": "add", "path": "/metadata/expires", "value": "2026-12-05T00:00:00Z"},
	])
	codes(inp) == set()
}

test_no_signing_time_with_failed_tuf_untimed if {
	inp := json.patch(td.input_ok, [
		{"op": "remove", "path": "/metadata/signedAt"},
		{"op": "add", "path": "/metadata/tuf", "value": object.union(td.tuf_ok, {"verified": false, "reason": "metadata-rollback"})},
	])
	codes(inp) == {"metadata-untimed"}
}

test_no_signing_time_without_max_age_passes if {
	c := {v.code | some v in metadata.deny} with input as td.without("/metadata/signedAt")
		with data.trust as object.union(td.trust, {"max_metadata_age_ns": 0})
		with time.now_ns as at
	c == set()
}

test_no_signing_time_unverified_is_for_the_signature_rules if {
	inp := json.patch(td.input_ok, [
		{"op": "remove", "path": "/metadata/signedAt"},
		{"op": "replace", "path": "/verification/verified", "value": false},
	])
	codes(inp) == set()
}
