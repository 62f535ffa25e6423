# METADATA
# title: metadata freshness
# description: |
#   Release metadata must be current: not past the vendor's expiry, not older
#   than max_metadata_age since signing, and not signed in the future (TUF's
#   freeze attack replays old, still-valid metadata). With max_metadata_age,
#   a signature without a trusted time is refused unless the vendor's TUF
#   metadata verified (its expiry is the freshness). The clock is the
#   evidence's evaluatedAt, pinned by the engine.
package wardgate.rules.metadata

now := time.now_ns()

# signed_at is the signing time in nanoseconds, parsed once for both rules
# that use it.
signed_at := time.parse_rfc3339_ns(input.metadata.signedAt)

deny contains {
	"code": "metadata-expired",
	"severity": "high",
	"message": sprintf("the release metadata of %s expired at %s; ask %s for current metadata", [input.artifact.name, input.metadata.expires, input.artifact.vendor]),
} if {
	time.parse_rfc3339_ns(input.metadata.expires) <= now
}

deny contains {
	"code": "metadata-expired",
	"severity": "high",
	"message": sprintf("%s was signed at %s, longer ago than the %s the trust configuration allows; ask %s for a freshly signed release", [input.artifact.name, input.metadata.signedAt, data.trust.max_metadata_age, input.artifact.vendor]),
} if {
	max_age := data.trust.max_metadata_age_ns
	max_age > 0
	now - signed_at > max_age
}

# metadata-untimed: a verified signature with no trusted signing time
# cannot show it is younger than max_metadata_age; only the vendor's TUF
# metadata, which carries its own expiry, stands in for it.
deny contains {
	"code": "metadata-untimed",
	"severity": "high",
	"message": sprintf("%s has no trusted signing time (a transparency log entry or an RFC 3161 timestamp), so its age cannot be checked against the %s the trust configuration allows; ask %s for a logged or timestamped signature, or for TUF metadata", [input.artifact.name, data.trust.max_metadata_age, input.artifact.vendor]),
} if {
	data.trust.max_metadata_age_ns > 0
	input.verification.verified
	not input.metadata.signedAt
	not input.metadata.tuf.verified
}

deny contains {
	"code": "metadata-future",
	"severity": "high",
	"message": sprintf("%s claims to be signed at %s, after the evaluation time %s; check the signing clock, future-dated metadata is refused", [input.artifact.name, input.metadata.signedAt, input.evaluatedAt]),
} if {
	skew := object.get(data.trust, "max_clock_skew_ns", 300000000000)
	signed_at > now + skew
}
