# METADATA
# title: signed release metadata (TUF)
# description: |
#   A vendor that pins a TUF root in the trust configuration says, in its
#   signed TUF metadata, which file is which version of which product, for
#   which device classes, until when. wardgate's TUF client (go-tuf's
#   updater) checks the metadata (signature thresholds, expiry, rollback
#   against the versions seen before, snapshot consistency, delegations)
#   and the artifact against its target; these rules turn the outcome,
#   input.metadata.tuf, into reason codes, and refuse a release whose caller
#   claims a version or device classes the vendor did not sign.
package wardgate.rules.release

import data.wardgate.lib

# tuf is the release metadata section, for messages. Each rule's first
# condition reads input directly, so OPA's rule index skips the rule by a
# lookup when it cannot fire.
tuf := input.metadata.tuf

deny contains {
	"code": "metadata-missing",
	"severity": "critical",
	"message": sprintf("%s pins a TUF root in the trust configuration, and %s came without its TUF metadata; pass the vendor's repository (--tuf-repo, or a mirror in vendors.%s.tuf.repository)", [input.artifact.vendor, input.artifact.name, input.artifact.vendor]),
} if {
	data.trust.vendors[input.artifact.vendor].tuf
	not input.metadata.tuf
}

deny contains {
	"code": "metadata-missing",
	"severity": "critical",
	"message": sprintf("the TUF metadata of %s for %s is missing: %s; pass the vendor's whole repository (--tuf-repo, or a mirror in vendors.%s.tuf.repository)", [input.artifact.vendor, tuf.target, tuf.detail, input.artifact.vendor]),
} if {
	input.metadata.tuf.reason == "metadata-missing"
}

deny contains {
	"code": "metadata-untrusted",
	"severity": "critical",
	"message": sprintf("the TUF metadata of %s for %s cannot be trusted: %s; do not install it, and ask %s which keys sign its metadata", [input.artifact.vendor, tuf.target, tuf.detail, input.artifact.vendor]),
} if {
	input.metadata.tuf.reason == "metadata-untrusted"
}

deny contains {
	"code": "metadata-rollback",
	"severity": "critical",
	"message": sprintf("the TUF metadata of %s for %s is older than metadata wardgate already trusts (%s): the repository was rolled back, or mixes old and new metadata; do not install it", [input.artifact.vendor, tuf.target, tuf.detail]),
} if {
	input.metadata.tuf.reason == "metadata-rollback"
}

# metadata-expired: the metadata.expires rule reports it with the expiry
# when the evidence has one; this one when it has none.
deny contains {
	"code": "metadata-expired",
	"severity": "high",
	"message": sprintf("the TUF metadata of %s for %s expired (%s): the repository is frozen or stale; ask %s for current metadata", [input.artifact.vendor, tuf.target, tuf.detail, input.artifact.vendor]),
} if {
	input.metadata.tuf.reason == "metadata-expired"
	not input.metadata.expires
}

deny contains {
	"code": "unknown-target",
	"severity": "critical",
	"message": sprintf("the TUF metadata of %s does not list %s (%s): the vendor did not release this file as %s; do not install it", [input.artifact.vendor, tuf.target, tuf.detail, lib.product_name]),
} if {
	input.metadata.tuf.reason == "unknown-target"
}

# digest-mismatch from the target when the expected digest does not show it
# already (a length mismatch, or a target with other hashes than sha256).
deny contains {
	"code": "digest-mismatch",
	"severity": "critical",
	"message": sprintf("%s is not the file the TUF metadata of %s names as %s: %s; the file was altered or swapped, do not install it", [input.artifact.name, input.artifact.vendor, tuf.target, tuf.detail]),
} if {
	input.metadata.tuf.reason == "digest-mismatch"
	not expected_digest_differs
}

expected_digest_differs if {
	e := input.artifact.expectedDigest
	e != ""
	e != input.artifact.digest
}

# metadata-mismatch: what the caller says of the release is not what the
# vendor signed.
deny contains {
	"code": "metadata-mismatch",
	"severity": "critical",
	"message": sprintf("%s is version %s by the TUF metadata of %s, not %s as claimed; admit it as %s, or find out who labelled it %s", [tuf.target, tuf.version, input.artifact.vendor, input.artifact.version, tuf.version, input.artifact.version]),
} if {
	input.metadata.tuf.verified == true
	not same_version
}

# same_version: the claimed and the signed version are the same version
# (possibly written differently, 2.4 and 2.4.0). A helper rule, so that
# versions that cannot be compared count as different: OPA would hoist a
# function call out of a negated comparison, and an undefined call would
# then hide the mismatch.
same_version if lib.version_compare(input.artifact.version, tuf.version) == 0

deny contains {
	"code": "metadata-mismatch",
	"severity": "critical",
	"message": sprintf("%s is for device classes %s by the TUF metadata of %s, not %s as claimed", [tuf.target, concat(", ", tuf.deviceClasses), input.artifact.vendor, class]),
} if {
	input.metadata.tuf.verified == true
	count(tuf.deviceClasses) > 0
	some class in input.artifact.deviceClasses
	not class in tuf.deviceClasses
}
