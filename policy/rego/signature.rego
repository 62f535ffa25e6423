# METADATA
# title: signatures
# description: |
#   The artifact must carry signatures, from signers the trust configuration
#   names for its product, at least as many distinct ones as the threshold,
#   over this very artifact.
package wardgate.rules.signature

import data.wardgate.lib

# unsigned: nothing signed the artifact at all.
deny contains {
	"code": "unsigned",
	"severity": "critical",
	"message": sprintf("%s carries no signature; get the signed release from %s, or pass its signature with --signature or --bundle", [input.artifact.name, input.artifact.vendor]),
} if {
	unsigned
}

unsigned if count(input.verification.signatures) == 0

unsigned if "no-signature" in input.verification.reasons

# untrusted-signer: the product is not in the trust configuration.
deny contains {
	"code": "untrusted-signer",
	"severity": "critical",
	"message": sprintf("%s is not in the trust configuration, so no signer is trusted for it; add the product and its authorities to the trust configuration if it is expected", [lib.product_name]),
} if {
	not lib.product
	not unsigned
}

# untrusted-signer: signatures exist, none from a configured authority.
deny contains {
	"code": "untrusted-signer",
	"severity": "critical",
	"message": sprintf("no signature on %s is from an authority trusted for %s (signed by: %s); check the release's origin before trusting a new key", [input.artifact.name, lib.product_name, found]),
} if {
	count(lib.trusted_authorities) == 0
	lib.product
	not unsigned
	not time_scoped
	found := signer_list
}

# time_scoped: a trusted signer failed only because of its validity window
# (key-revoked, or untimed below); those rules say so.
time_scoped if "key-revoked" in input.verification.reasons

time_scoped if "untimed" in input.verification.reasons

# key-revoked: a key or identity the trust configuration trusts only within
# a window (valid_from, valid_until) signed outside it, by the signature's
# trusted time.
deny contains {
	"code": "key-revoked",
	"severity": "critical",
	"message": sprintf("%s was signed outside the window in which the trust configuration trusts its signer (%s); a revoked key or identity, get a release signed by a current one", [input.artifact.name, sig.detail]),
} if {
	"key-revoked" in input.verification.reasons
	some sig in input.verification.signatures
	sig.reason == "key-revoked"
}

# metadata-untimed: a signer trusted only within a window signed, but the
# signature has no trusted time to place it in the window.
deny contains {
	"code": "metadata-untimed",
	"severity": "high",
	"message": sprintf("%s is signed by a signer the trust configuration trusts only within a time window, and the signature has no trusted time (%s); get the signature logged in the transparency log or timestamped", [input.artifact.name, sig.detail]),
} if {
	"untimed" in input.verification.reasons
	some sig in input.verification.signatures
	sig.reason == "untimed"
}

signer_list := "nobody who verified" if {
	count(lib.signers) == 0
} else := concat(", ", sort([lib.describe(s) | some s in lib.signers]))

# threshold-not-met: some, but too few, distinct trusted authorities signed.
deny contains {
	"code": "threshold-not-met",
	"severity": "critical",
	"message": sprintf("%s needs %d distinct trusted signers, %d signed (%s); get the missing signatures before release", [lib.product_name, threshold, n, concat(", ", names)]),
} if {
	n := count(lib.trusted_authorities)
	threshold := lib.product.authorities.threshold
	n < threshold
	n > 0
	names := sort([authority_name(a) | some a in lib.trusted_authorities])
}

# authority_name names a trusted authority ("key:<id>", "keyless:<index>")
# the way the trust configuration does.
authority_name(a) := sprintf("key %s", [substring(trim_prefix(a, "key:"), 0, 12)]) if {
	startswith(a, "key:")
} else := sprintf("keyless %s%s", [id.identity, id.identity_regexp]) if {
	id := lib.product.authorities.keyless[to_number(trim_prefix(a, "keyless:"))]
}

# digest-mismatch: a signature or the release metadata names another digest.
# (Two rules with the same message, not one on a helper rule: the first is
# excluded by OPA's rule index, a lookup, when the reasons do not name it.)
deny contains {
	"code": "digest-mismatch",
	"severity": "critical",
	"message": sprintf("a signature on %s was made over different content than %s; the file was altered or swapped after signing, do not install it", [input.artifact.name, input.artifact.digest]),
} if {
	"digest-mismatch" in input.verification.reasons
}

deny contains {
	"code": "digest-mismatch",
	"severity": "critical",
	"message": sprintf("a signature on %s was made over different content than %s; the file was altered or swapped after signing, do not install it", [input.artifact.name, input.artifact.digest]),
} if {
	some sig in input.verification.signatures
	sig.reason == "digest-mismatch"
}

deny contains {
	"code": "digest-mismatch",
	"severity": "critical",
	"message": sprintf("%s has digest %s but the release metadata names %s; the file was altered or swapped, do not install it", [input.artifact.name, input.artifact.digest, expected]),
} if {
	expected := input.artifact.expectedDigest
	expected != input.artifact.digest
	expected != ""
}
