package wardgate.rules.signature_test

import data.wardgate.rules.signature
import data.wardgate.testdata as td

codes(inp) := c if {
	c := {v.code | some v in signature.deny} with input as inp with data.trust as td.trust
}

test_two_authorities_pass if {
	codes(td.input_ok) == set()
}

test_unsigned if {
	codes(td.with_("/verification/signatures", [])) == {"unsigned"}
}

test_threshold_not_met if {
	codes(td.with_("/verification/signatures", [td.key_sig])) == {"threshold-not-met"}
}

test_same_key_twice_is_one_authority if {
	codes(td.with_("/verification/signatures", [td.key_sig, td.key_sig])) == {"threshold-not-met"}
}

test_unverified_signature_is_untrusted if {
	sig := object.union(td.key_sig, {"verified": false, "reason": "untrusted-signer"})
	codes(td.with_("/verification/signatures", [sig])) == {"untrusted-signer"}
}

test_other_issuer_is_untrusted if {
	sig := object.union(td.keyless_sig, {"signer": {"identity": "rel@acme", "issuer": "https://evil"}})
	codes(td.with_("/verification/signatures", [sig])) == {"untrusted-signer"}
}

test_unknown_product_is_untrusted if {
	codes(td.with_("/artifact/product", "syringe")) == {"untrusted-signer"}
}

test_digest_mismatch_reason if {
	codes(td.with_("/verification/reasons", ["digest-mismatch"])) == {"digest-mismatch"}
}

test_digest_mismatch_expected_digest if {
	codes(td.with_("/artifact/expectedDigest", "sha256:cc")) == {"digest-mismatch"}
	codes(td.with_("/artifact/expectedDigest", "sha256:aa")) == set()
}

test_keyless_exact_issuer_mismatch_is_untrusted if {
	sig := object.union(td.keyless_sig, {"signer": {"identity": "rel@acme", "issuer": "https://iss.evil"}})
	codes(td.with_("/verification/signatures", [td.key_sig, sig])) == {"threshold-not-met"}
}

test_keyless_regexp_authority if {
	trust := json.patch(td.trust, [{"op": "replace", "path": "/vendors/acme/products/pump/authorities/keyless/0", "value": {"identity": "", "identity_regexp": ".*@acme", "issuer": "https://iss", "issuer_regexp": ""}}])
	{v.code | some v in signature.deny} == set() with input as td.input_ok with data.trust as trust
}

# A signer trusted only within a window: signed outside it (key-revoked) or
# without a trusted time (metadata-untimed), not reported as untrusted.
test_key_revoked if {
	sig := object.union(td.key_sig, {"verified": false, "reason": "key-revoked", "detail": "key k1: trusted only from any time until 2026-06-30T00:00:00Z, and the signature was made at 2026-11-20T00:00:00Z"})
	inp := json.patch(td.input_ok, [
		{"op": "replace", "path": "/verification/signatures", "value": [sig]},
		{"op": "replace", "path": "/verification/verified", "value": false},
		{"op": "replace", "path": "/verification/reasons", "value": ["key-revoked"]},
	])
	codes(inp) == {"key-revoked"}
	# With the other authority's signature, the threshold (2) is not met either.
	inp2 := json.patch(inp, [{"op": "replace", "path": "/verification/signatures", "value": [sig, td.keyless_sig]}])
	codes(inp2) == {"key-revoked", "threshold-not-met"}
}

test_untimed if {
	sig := object.union(td.key_sig, {"verified": false, "reason": "untimed", "detail": "key k1: no trusted time"})
	inp := json.patch(td.input_ok, [
		{"op": "replace", "path": "/verification/signatures", "value": [sig]},
		{"op": "replace", "path": "/verification/verified", "value": false},
		{"op": "replace", "path": "/verification/reasons", "value": ["untimed"]},
	])
	codes(inp) == {"metadata-untimed"}
}
