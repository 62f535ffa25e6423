# METADATA
# title: fleet telemetry
# description: An update that fleet telemetry has quarantined is not admitted.
package wardgate.rules.fleet

deny contains {
	"code": "quarantined",
	"severity": "critical",
	"message": sprintf("fleet telemetry has quarantined %s %s (%s); do not install it until the quarantine is lifted", [input.artifact.product, input.artifact.version, findings]),
} if {
	input.fleet.riskState == "quarantined"
	findings := finding_list
}

finding_list := "no findings recorded" if count(object.get(input.fleet, "findings", [])) == 0

finding_list := concat("; ", sort([sprintf("%s: %s", [f.code, f.message]) | some f in input.fleet.findings])) if {
	count(input.fleet.findings) > 0
}
