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
