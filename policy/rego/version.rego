# METADATA
# title: versions
# description: |
#   No rollback: a release may not be older than the version installed on
#   the device, nor than the minimum version the trust configuration sets
#   for the product and device class (TUF's rollback attack). Versions are
#   compared with lib.version_compare; versions that cannot be compared are
#   refused.
package wardgate.rules.version

import data.wardgate.lib

# Empty only when the vendor's TUF metadata, which says the version, failed
# (the release rules deny that): no version rule applies then.
version := input.artifact.version if input.artifact.version != ""

installed := input.device.installedVersion if input.device.installedVersion != ""

# installed_order is version_compare(version, installed), computed once for
# the two rules below; undefined without an installed version or when the
# two cannot be compared.
installed_order := lib.version_compare(version, installed)

deny contains {
	"code": "rollback",
	"severity": "high",
	"message": sprintf("version %s is older than %s installed on device %s; a rollback reinstates fixed vulnerabilities, install %s or newer", [version, installed, input.device.id, installed]),
} if {
	installed_order < 0
}

deny contains {
	"code": "rollback",
	"severity": "high",
	"message": sprintf("version %s cannot be compared with the installed version %s; wardgate compares semantic versions and dotted numbers, check the versions by hand", [version, installed]),
} if {
	installed
	not installed_order
}

# The device classes the minimum version is checked for: the device's, or
# every class the release targets when no device asks.
classes := {input.device.class} if {
	input.device
} else := {c | some c in input.artifact.deviceClasses} if {
	not input.device
}

minimum(class) := v if {
	v := lib.product.min_version[class]
} else := v if {
	v := lib.product.min_version["*"]
}

# minimum_order maps each device class with a minimum version to
# version_compare(version, minimum); a class whose minimum cannot be
# compared is missing.
minimum_order[class] := lib.version_compare(version, minimum(class)) if some class in classes

deny contains {
	"code": "rollback",
	"severity": "high",
	"message": sprintf("version %s is older than the minimum %s allowed for %s on device class %s; install %s or newer", [version, minv, lib.product_name, class, minv]),
} if {
	some class, order in minimum_order
	order < 0
	minv := minimum(class)
}

deny contains {
	"code": "rollback",
	"severity": "high",
	"message": sprintf("version %s cannot be compared with the minimum %s for device class %s; wardgate compares semantic versions and dotted numbers, fix min_version or the release version", [version, minv, class]),
} if {
	some class in classes
	not minimum_order[class]
	minv := minimum(class)
}
