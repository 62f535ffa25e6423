# METADATA
# title: release ledger
# description: |
#   One version, one digest; one digest, one version; and versions never go
#   back. A version admitted before may not come back with other content; a
#   file admitted as one version may not be admitted as another; and a
#   release older than the highest release of the product admitted before
#   is refused (TUF's rollback attack, against wardgate's own ledger),
#   unless the trust configuration allows that downgrade, with a reason,
#   in vendors.<v>.products.<p>.allow_downgrade.
package wardgate.rules.ledger

import data.wardgate.lib

deny contains {
	"code": "same-version-different-digest",
	"severity": "critical",
	"message": sprintf("version %s was admitted on %s with digest %s, but this artifact is %s; a re-issued release under the same version is a tampering signal, ask the vendor for a new version", [input.artifact.version, e.recordedAt, e.digest, input.artifact.digest]),
} if {
	some e in input.ledger.entries
	e.allowed
	e.digest != input.artifact.digest
}

deny contains {
	"code": "same-version-different-digest",
	"severity": "critical",
	"message": sprintf("version %s was admitted on %s with digest %s, but this artifact is %s; a re-issued release under the same version is a tampering signal, ask the vendor for a new version", [input.artifact.version, input.previous.admittedAt, input.previous.digest, input.artifact.digest]),
} if {
	input.previous.version == input.artifact.version
	input.previous.digest != input.artifact.digest
	not ledger_has(input.previous.digest)
}

ledger_has(d) if {
	some e in input.ledger.entries
	e.allowed
	e.digest == d
}

# version-conflict: the same file was admitted under another version.
deny contains {
	"code": "version-conflict",
	"severity": "critical",
	"message": sprintf("%s (%s) was admitted on %s as version %s of %s, and is now presented as version %s; one file is one release: a file relabelled with another version is a mix-up or an attack, admit it under %s or ask the vendor", [input.artifact.name, input.artifact.digest, a.admittedAt, a.version, lib.product_name, input.artifact.version, a.version]),
} if {
	some a in input.ledger.admitted
	a.digest == input.artifact.digest
	a.version != input.artifact.version
	input.artifact.version != ""
}

# newer are the admitted versions this release is older than; incomparable
# the admitted versions it cannot be compared with (refused too: fail
# closed). Both are empty for a product with nothing admitted before.
newer contains a.version if {
	some a in input.ledger.admitted
	lib.version_compare(input.artifact.version, a.version) < 0
}

incomparable contains a.version if {
	some a in input.ledger.admitted
	input.artifact.version != ""
	not lib.comparable(input.artifact.version, a.version)
}

# highest is the highest of the newer versions (the first in sort order
# when two spellings compare equal, "v2.5.0" and "2.5.0"). It costs
# count(newer) squared comparisons, and runs only for a rollback.
highest := sort({v |
	some v in newer
	every w in newer {
		lib.version_compare(v, w) >= 0
	}
})[0]

first_admitted(v) := min({a.admittedAt | some a in input.ledger.admitted; a.version == v})

# allowance is the trust configuration's allow_downgrade entry for this
# very version; undefined when there is none.
allowance := a if {
	some a in lib.product.allow_downgrade
	a.version == input.artifact.version
}

deny contains {
	"code": "rollback",
	"severity": "high",
	"message": sprintf("version %s is older than %s, the highest release of %s admitted (on %s); versions never go back: release a newer version, or allow this downgrade with a reason in vendors.%s.products.%s.allow_downgrade", [input.artifact.version, highest, lib.product_name, first_admitted(highest), input.artifact.vendor, input.artifact.product]),
} if {
	input.ledger.admitted
	count(newer) > 0
	not allowance
}

deny contains {
	"code": "rollback",
	"severity": "high",
	"message": sprintf("version %s cannot be compared with %s, admitted before as a release of %s; wardgate compares semantic versions and dotted numbers, so it cannot tell that versions do not go back: allow this release with a reason in vendors.%s.products.%s.allow_downgrade if it is right", [input.artifact.version, v, lib.product_name, input.artifact.vendor, input.artifact.product]),
} if {
	input.ledger.admitted
	some v in incomparable
	not allowance
}

# accepted: a downgrade the trust configuration allows is reported as a
# warning carrying its reason (decision.rego), which the verdict records.
accepted contains {
	"code": "rollback",
	"severity": "high",
	"message": sprintf("version %s is older than %s, the highest release of %s admitted (on %s); downgrade allowed by the trust configuration: %s", [input.artifact.version, highest, lib.product_name, first_admitted(highest), allowance.reason]),
} if {
	input.ledger.admitted
	count(newer) > 0
	allowance
}

accepted contains {
	"code": "rollback",
	"severity": "high",
	"message": sprintf("version %s cannot be compared with %s, admitted before as a release of %s; allowed by the trust configuration: %s", [input.artifact.version, v, lib.product_name, allowance.reason]),
} if {
	input.ledger.admitted
	some v in incomparable
	allowance
}
