package wardgate.rules.version_test

import data.wardgate.rules.version
import data.wardgate.testdata as td

codes(inp) := c if {
	c := [v.code | some v in version.deny] with input as inp with data.trust as td.trust
}

test_newer_passes if {
	codes(td.input_ok) == []
}

test_older_than_installed if {
	codes(td.with_("/device/installedVersion", "2.5.0")) == ["rollback"]
}

test_same_as_installed_is_no_rollback if {
	codes(td.with_("/device/installedVersion", "2.4.0")) == []
}

test_below_minimum if {
	inp := json.patch(td.input_ok, [
		{"op": "add", "path": "/artifact/version", "value": "1.9.9"},
		{"op": "add", "path": "/device/installedVersion", "value": "1.0.0"},
	])
	codes(inp) == ["rollback"]
}

test_below_minimum_without_device if {
	inp := json.patch(td.without("/device"), [{"op": "add", "path": "/artifact/version", "value": "1.9.9"}])
	codes(inp) == ["rollback"]
}

test_incomparable_fails_closed if {
	codes(td.with_("/device/installedVersion", "nightly")) == ["rollback"]
}

test_no_installed_version if {
	codes(td.with_("/device/installedVersion", "")) == []
}
