package wardgate.rules.device_test

import data.wardgate.rules.device
import data.wardgate.testdata as td

count_of(inp) := n if {
	n := count(device.deny) with input as inp with data.trust as td.trust
}

test_right_class_passes if {
	count_of(td.input_ok) == 0
}

test_no_device_passes if {
	count_of(td.without("/device")) == 0
}

test_wrong_device_class if {
	# not allowed for the product, and not targeted by the release
	count_of(td.with_("/device/class", "mri")) == 2
}

test_release_targets_foreign_class if {
	count_of(td.with_("/artifact/deviceClasses", ["pump", "mri"])) == 1
}
