# METADATA
# title: device classes
# description: |
#   A release goes only to the device classes the trust configuration allows
#   for its product and the release itself targets (no mix-and-match).
package wardgate.rules.device

import data.wardgate.lib

allowed := lib.product.device_classes

deny contains {
	"code": "wrong-device-class",
	"severity": "high",
	"message": sprintf("device %s is of class %s, but %s may only go to %s; do not install it on this device", [input.device.id, input.device.class, lib.product_name, concat(", ", allowed)]),
} if {
	class := input.device.class
	allowed
	not class in allowed
}

deny contains {
	"code": "wrong-device-class",
	"severity": "high",
	"message": sprintf("%s targets %s, not device class %s of device %s; get the release built for %s", [input.artifact.name, concat(", ", input.artifact.deviceClasses), input.device.class, input.device.id, input.device.class]),
} if {
	class := input.device.class
	count(input.artifact.deviceClasses) > 0
	not class in input.artifact.deviceClasses
}

deny contains {
	"code": "wrong-device-class",
	"severity": "high",
	"message": sprintf("%s targets device class %s, which %s may not go to (allowed: %s); add the class to the trust configuration if this is intended", [input.artifact.name, class, lib.product_name, concat(", ", allowed)]),
} if {
	allowed
	some class in input.artifact.deviceClasses
	not class in allowed
}
