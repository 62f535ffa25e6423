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
	not unsigned
	not lib.product
}

# untrusted-signer: signatures exist, none from a configured authority.
deny contains {
	"code": "untrusted-signer",
	"severity": "critical",
	"message": sprintf("no signature on %s is from an authority trusted for %s (signed by: %s); check the release's origin before trusting a new key", [input.artifact.name, lib.product_name, found]),
} if {
	not unsigned
	lib.product
	count(lib.trusted_authorities) == 0
	found := signer_list
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
	threshold := lib.product.authorities.threshold
	n := count(lib.trusted_authorities)
	n > 0
	n < threshold
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
deny contains {
	"code": "digest-mismatch",
	"severity": "critical",
	"message": sprintf("a signature on %s was made over different content than %s; the file was altered or swapped after signing, do not install it", [input.artifact.name, input.artifact.digest]),
} if {
	signature_digest_mismatch
}

signature_digest_mismatch if "digest-mismatch" in input.verification.reasons

signature_digest_mismatch if {
	some sig in input.verification.signatures
	sig.reason == "digest-mismatch"
}

deny contains {
	"code": "digest-mismatch",
	"severity": "critical",
	"message": sprintf("%s has digest %s but the release metadata names %s; the file was altered or swapped, do not install it", [input.artifact.name, input.artifact.digest, expected]),
} if {
	expected := object.get(input.artifact, "expectedDigest", "")
	expected != ""
	expected != input.artifact.digest
}
