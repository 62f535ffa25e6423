# METADATA
# title: wardgate library
# description: |
#   Helpers shared by the default rules: the trust configuration entry of the
#   product being judged, semver-aware version comparison, identity matching.
package wardgate.lib

# The trust configuration entry for the artifact's vendor and product;
# undefined when the configuration does not name them.
product := data.trust.vendors[input.artifact.vendor].products[input.artifact.product]

# "vendor/product", for messages.
product_name := sprintf("%s/%s", [input.artifact.vendor, input.artifact.product])

# as_semver(v) is v as a valid semantic version: as written, without a
# leading "v", or with missing minor and patch parts filled in with zeros
# ("2.4" is "2.4.0", "7" is "7.0.0"). Undefined when v is none of these.
# (Functions here use else chains, not several definitions: OPA evaluates
# every definition of a function on every call, else stops at the first
# that succeeds. These run for every version and component.)
as_semver(v) := s if {
	s := trim_prefix(v, "v")
	semver.is_valid(s)
} else := s if {
	s := concat("", [trim_prefix(v, "v"), ".0"])
	semver.is_valid(s)
} else := s if {
	s := concat("", [trim_prefix(v, "v"), ".0.0"])
	semver.is_valid(s)
}

# numeric(v) is a dotted-number version ("1.2.3.4", "01.2") as an array of
# numbers; undefined for anything else.
numeric(v) := [to_number(p) | some p in split(trim_prefix(v, "v"), ".")] if {
	regex.match(`^v?[0-9]+(\.[0-9]+)*$`, v)
}

# padded(a, n) is the array a with zeros appended up to length n.
padded(a, n) := array.concat(a, [0 | some i in numbers.range(1, n); i > count(a)])

# version_compare(a, b) is -1, 0 or 1 as version a is older than, the same
# as, or newer than version b. Semantic versions (see as_semver) are
# compared by semver.compare; otherwise dotted-number versions are compared
# number by number. Undefined when the two cannot be compared: callers must
# treat that as a violation (fail closed), never as "not older".
#
# The first branch is the common case, two versions that are semantic
# versions as written: semver.is_valid and semver.compare trim a leading "v"
# themselves, so it gives what the as_semver branch would, without calling
# as_semver twice (a function call costs more than a built-in).
version_compare(a, b) := semver.compare(a, b) if {
	semver.is_valid(a)
	semver.is_valid(b)
} else := semver.compare(sa, sb) if {
	sa := as_semver(a)
	sb := as_semver(b)
} else := c if {
	pa := numeric(a)
	pb := numeric(b)
	n := max([count(pa), count(pb)])
	c := array_compare(padded(pa, n), padded(pb, n))
}

array_compare(a, b) := -1 if {
	a < b
} else := 0 if {
	a == b
} else := 1

# comparable(a, b) is true when version_compare(a, b) is defined.
comparable(a, b) if version_compare(a, b)

# matches(exact, re, value): value equals exact, or, when exact is empty,
# matches the RE2 expression re as a whole.
matches(exact, re, value) if {
	exact != ""
	value == exact
} else if {
	exact == ""
	re != ""
	regex.match(sprintf("^(?:%s)$", [re]), value)
}

# The distinct signers that signed the artifact and that verify trusted.
signers := {s | some sig in input.verification.signatures; sig.verified; s := sig.signer} | {s | some s in input.verification.trustedSigners}

# trusted_authorities are the authorities of the trust configuration (for
# this product) that signed: "key:<id>" or "keyless:<index>". Each counts
# once however many of its signatures there are.
trusted_authorities := keys_signed | keyless_signed

keys_signed := {sprintf("key:%s", [k.id]) |
	some s in signers
	some k in product.authorities.keys
	s.keyId == k.id
}

keyless_signed := {sprintf("keyless:%d", [i]) |
	some s in signers
	s.identity
	some i, id in product.authorities.keyless
	keyless_matches(id, s)
}

# keyless_matches(id, s): signer s has the identity and issuer of keyless
# authority id. The first branch is the usual configuration, both given
# exactly, in one call instead of two to matches; any other configuration,
# or a mismatch, goes to matches, which decides.
keyless_matches(id, s) if {
	id.identity != ""
	id.issuer != ""
	s.identity == id.identity
	s.issuer == id.issuer
} else if {
	matches(id.identity, id.identity_regexp, s.identity)
	matches(id.issuer, id.issuer_regexp, s.issuer)
}

# describe(s) names a signer for messages.
describe(s) := sprintf("key %s", [substring(s.keyId, 0, 12)]) if {
	s.keyId
} else := sprintf("%s (issuer %s)", [s.identity, s.issuer])

# components are the SBOM's components (empty without an SBOM).
components := object.get(input, ["sbom", "components"], [])

# diff_changes are the SBOM diff's changes (empty without a diff).
diff_changes := object.get(input, ["sbom", "diff", "changes"], [])

# purl_identity(p) is the package URL p without version, qualifiers and
# subpath. (String functions, not a regular expression: this runs for every
# component and regex.replace compiles its pattern on every call.) An "@"
# inside a purl's namespace or name is percent-encoded, so the first "@"
# starts the version.
purl_identity(p) := split(split(split(p, "#")[0], "?")[0], "@")[0]
