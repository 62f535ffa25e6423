# METADATA
# title: decision
# description: |
#   Collects every violation of every rule set under data.wardgate.rules
#   (default and user), applies the trust configuration's enforcement (enforce,
#   warn, off) by reason code, and decides. The engine queries
#   data.wardgate.decision.
package wardgate

# All violations, each tagged with the rule set (package) that produced it.
reported contains object.union(v, {"rule": name}) if {
	some name
	some v in data.wardgate.rules[name].deny
}

# default_enforcement is how a rule is enforced when the trust
# configuration does not name it: every rule enforces, except these, which
# only warn until the configuration asks for more.
default_enforcement := {"executable-changed-same-version": "warn"}

enforcement(code) := e if {
	e := data.trust.rules[code]
} else := e if {
	e := default_enforcement[code]
} else := "enforce"

violations contains v if {
	some v in reported
	enforcement(v.code) == "enforce"
}

warnings contains v if {
	some v in reported
	enforcement(v.code) == "warn"
}

# Findings a rule set accepts through an exception in the trust
# configuration (data.wardgate.rules[name].accepted, such as a known
# vulnerability the vendor's release is not affected by): warnings that
# carry the exception's justification; they never deny.
warnings contains object.union(v, {"rule": name}) if {
	some name
	some v in data.wardgate.rules[name].accepted
	enforcement(v.code) != "off"
}

decision := {
	"allow": count(violations) == 0,
	"violations": violations,
	"warnings": warnings,
}
