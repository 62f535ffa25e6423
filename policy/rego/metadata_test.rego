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

test_no_signing_time_passes if {
	codes(td.without("/metadata/signedAt")) == set()
}
