package wardgate.rules.fleet_test

import data.wardgate.rules.fleet
import data.wardgate.testdata as td

test_quarantined if {
	[v.code | some v in fleet.deny] == ["quarantined"] with input as td.with_("/fleet", {"riskState": "quarantined"})
}

test_clean_and_no_telemetry_pass if {
	count(fleet.deny) == 0 with input as td.with_("/fleet", {"riskState": "clean"})
	count(fleet.deny) == 0 with input as td.input_ok
}
