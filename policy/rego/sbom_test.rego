package wardgate.rules.sbom_test

import data.wardgate.rules.sbom
import data.wardgate.testdata as td

codes(inp) := c if {
	c := [v.code | some v in sbom.deny] with input as inp with data.trust as td.trust
}

test_clean_sbom_passes if {
	codes(td.input_ok) == []
}

test_missing_sbom if {
	codes(td.without("/sbom")) == ["sbom-missing"]
}

test_missing_sbom_not_required if {
	count(sbom.deny) == 0 with input as td.without("/sbom") with data.trust as object.union(td.trust, {"sbom": {"required": false}})
}

test_drift_within_allowance if {
	codes(td.with_("/drift", {"summary": {"missing": 1}, "changes": [{"code": "missing", "name": "a"}]})) == []
}

test_drift_beyond_allowance if {
	codes(td.with_("/drift", {"summary": {"undeclared": 1}, "changes": [{"code": "undeclared", "name": "a"}]})) == ["sbom-drift"]
}

test_denied_license_in_expression if {
	codes(td.with_("/sbom/components", [{"name": "x", "licenses": ["(MIT OR AGPL-3.0-only)"]}])) == ["denied-license"]
}

test_denied_component_below if {
	codes(td.with_("/sbom/components", [{"name": "xz", "version": "5.6.1", "purl": "pkg:generic/xz-utils@5.6.1"}])) == ["denied-component"]
	codes(td.with_("/sbom/components", [{"name": "xz", "version": "5.6.2", "purl": "pkg:generic/xz-utils@5.6.2"}])) == []
}

test_denied_component_incomparable_version if {
	codes(td.with_("/sbom/components", [{"name": "xz", "version": "git-abc", "purl": "pkg:generic/xz-utils@git-abc"}])) == ["denied-component"]
}

test_downgraded_and_hash_changed if {
	diff := {"fromVersion": "2.3.0", "summary": {}, "changes": [
		{"code": "downgraded", "name": "z", "from": "2", "to": "1"},
		{"code": "hash-changed", "name": "y", "version": "1", "from": "sha256:1", "to": "sha256:2"},
		{"code": "upgraded", "name": "w", "from": "1", "to": "2"},
	]}
	sort(codes(td.with_("/sbom/diff", diff))) == ["component-hash-changed", "downgraded-component"]
}

# The *_suspect guards only skip work; a suspect component that is not denied
# is not reported.
test_purl_prefix_is_not_a_match if {
	codes(td.with_("/sbom/components", [{"name": "xz-extra", "version": "1.0.0", "purl": "pkg:generic/xz-utils-extra@1.0.0"}])) == []
}

test_license_in_parentheses_without_space_is_not_split if {
	codes(td.with_("/sbom/components", [{"name": "x", "licenses": ["(AGPL-3.0-only)"]}])) == []
}

test_license_expression_without_denied_term if {
	codes(td.with_("/sbom/components", [{"name": "x", "licenses": ["MIT OR Apache-2.0"]}])) == []
}

test_denied_component_by_name if {
	[v.code | some v in sbom.deny] == ["denied-component"] with input as td.with_("/sbom/components", [{"name": "event-stream", "version": "3.3.6"}])
		with data.trust as object.union(td.trust, {"deny": {"components": [{"purl": "", "name": "event-stream", "below": "", "reason": "compromised"}]}})
}

# A malformed component does not hide a denied one.
test_malformed_component_does_not_hide_others if {
	codes(td.with_("/sbom/components", [{"name": "a", "purl": 5}, {"name": "xz", "version": "5.6.1", "purl": "pkg:generic/xz-utils@5.6.1"}])) == ["denied-component"]
	codes(td.with_("/sbom/components", [{"name": "a", "licenses": [5]}, {"name": "x", "licenses": ["(MIT OR AGPL-3.0-only)"]}])) == ["denied-license"]
}
