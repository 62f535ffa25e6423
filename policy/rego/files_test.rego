package wardgate.rules.files_test

import data.wardgate.rules.files
import data.wardgate.testdata as td

trojaned := {"fromVersion": "2.3.0", "summary": {"executable-changed-same-version": 1, "file-added": 1}, "changes": [
	{"code": "executable-changed-same-version", "path": "usr/lib/libvoip.so", "package": "voip", "version": "18.12", "from": "aa", "to": "bb"},
	{"code": "file-added", "path": "etc/new.conf", "to": "cc"},
]}

test_trojaned_executable if {
	[v.code | some v in files.deny] == ["executable-changed-same-version"] with input as td.with_("/files", trojaned) with data.trust as td.trust
}

test_no_file_diff if {
	count(files.deny) == 0 with input as td.input_ok with data.trust as td.trust
}

test_other_file_changes_pass if {
	count(files.deny) == 0 with input as td.with_("/files", {"fromVersion": "2.3.0", "summary": {"file-changed": 1}, "changes": [{"code": "file-changed", "path": "etc/motd"}]}) with data.trust as td.trust
}
