# METADATA
# title: SBOM
# description: |
#   The release comes with an SBOM (when the trust configuration requires
#   one), the vendor's SBOM agrees with what is inside the artifact within the
#   configured allowance, no component or license on the deny lists is in it,
#   and no component went backwards or changed content under the same
#   version since the previous admitted release.
package wardgate.rules.sbom

import data.wardgate.lib

deny contains {
	"code": "sbom-missing",
	"severity": "high",
	"message": sprintf("%s comes without an SBOM and the trust configuration requires one; ask %s for the SBOM and pass it with --sbom", [input.artifact.name, input.artifact.vendor]),
} if {
	not input.sbom
	object.get(data.trust, ["sbom", "required"], true)
}

# An SBOM wardgate generated that lists nothing (an opaque firmware image,
# and no vendor SBOM) is not an SBOM: a scan that found nothing is no
# evidence of what is inside.
deny contains {
	"code": "sbom-missing",
	"severity": "high",
	"message": sprintf("%s comes without a vendor SBOM, and scanning it found no components: an empty scan says nothing of what is inside, and the trust configuration requires an SBOM; ask %s for the SBOM and pass it with --sbom", [input.artifact.name, input.artifact.vendor]),
} if {
	input.sbom.source == "generated"
	count(input.sbom.components) == 0
	object.get(data.trust, ["sbom", "required"], true)
}

drift_names := {
	"undeclared": "undeclared components (found in the artifact, not in the vendor SBOM)",
	"missing": "missing components (in the vendor SBOM, not found in the artifact)",
	"version-mismatch": "components whose version differs from the vendor SBOM",
	"hash-mismatch": "components whose hash differs from the vendor SBOM",
}

deny contains {
	"code": "sbom-drift",
	"severity": "high",
	"message": sprintf("%d %s, %d allowed: %s; the vendor SBOM does not describe this artifact, ask %s for a correct SBOM", [n, drift_names[code], allowed, concat(", ", names), input.artifact.vendor]),
} if {
	some code, n in input.drift.summary
	allowed := object.get(data.trust, ["sbom", "drift_allowance", code], 0)
	n > allowed
	names := sort({c.name | some c in input.drift.changes; c.code == code})
}

# The deny lists, indexed once per evaluation: components are matched by
# lookup, not by comparing every component with every entry.
denied_licenses := {l | some l in object.get(data.trust, ["deny", "licenses"], [])}

denied_by_purl := {p: ds |
	some d in object.get(data.trust, ["deny", "components"], [])
	p := d.purl
	p != ""
	ds := [e | some e in data.trust.deny.components; e.purl == p]
}

denied_by_name := {n: ds |
	some d in object.get(data.trust, ["deny", "components"], [])
	n := d.name
	n != ""
	ds := [e | some e in data.trust.deny.components; e.name == n]
}

# Each rule below first asks a cheap question about all components at once
# (the *_suspect rules), and only when the answer is yes looks at the
# components one by one to say which are denied. A suspect rule is true
# whenever its deny rule could fire, so the answer is never wrong, only
# sometimes slower; most releases contain nothing denied, and for them the
# per-component work is skipped.

# licenses_used are the distinct licenses (or expressions) of the components.
# Only strings: anything else is never denied, and one would make concat
# below fail, hiding the others.
licenses_used := {l | l := lib.components[_].licenses[_]; is_string(l)}

# license_suspect: a license in use is on the deny list as it is, or is an
# expression (only those are split into terms by denied_license).
license_suspect if {
	some l in object.get(data.trust, ["deny", "licenses"], [])
	licenses_used[l]
}

license_suspect if contains(concat("\n", licenses_used), " ")

# denied_license(l) is true when license (or expression) l names a license
# on the deny list. An expression is denied when any of its terms is, even
# after OR: wardgate cannot know which branch the vendor used.
denied_license(l) if {
	denied_licenses[l]
} else if {
	contains(l, " ")
	some term in split(replace(replace(l, "(", " "), ")", " "), " ")
	denied_licenses[term]
}

deny contains {
	"code": "denied-license",
	"severity": "high",
	"message": sprintf("component %s %s is licensed %s, which the trust configuration denies; ask the vendor to remove or relicense it", [c.name, object.get(c, "version", ""), l]),
} if {
	license_suspect
	some c in lib.components
	some l in c.licenses
	denied_license(l)
}

# purl_suspect: some component's package URL starts with a denied one (the
# exact match, without version, is checked per component in by_purl).
purl_suspect if {
	prefixes := {p | p := object.get(data.trust, ["deny", "components"], [])[_].purl; p != ""}
	count(prefixes) > 0
	# Only strings: one that is not would make the match fail, hiding the others.
	strings.any_prefix_match([p | p := lib.components[_].purl; is_string(p)], prefixes)
}

# name_suspect: some component has a denied name.
name_suspect if {
	some d in object.get(data.trust, ["deny", "components"], [])
	d.name != ""
	lib.components[_].name == d.name
}

# denied_hits are the [component, deny entry] pairs where the component's
# package URL (without version) or name is on the deny list.
# Arrays, not sets: putting whole component objects in a set hashes them.
denied_hits := array.concat(by_purl, by_name)

by_purl := [[c, d] |
	purl_suspect
	some c in lib.components
	# lib.purl_identity, inlined: a function call per component costs more.
	some d in denied_by_purl[split(split(split(c.purl, "#")[0], "?")[0], "@")[0]]
]

by_name := [[c, d] |
	name_suspect
	some c in lib.components
	some d in denied_by_name[c.name]
]

deny contains {
	"code": "denied-component",
	"severity": "critical",
	"message": sprintf("component %s %s is denied by the trust configuration (%s); the release must not contain it", [c.name, object.get(c, "version", ""), d.reason]),
} if {
	some [c, d] in denied_hits
	d.below == ""
}

deny contains {
	"code": "denied-component",
	"severity": "critical",
	"message": sprintf("component %s %s is older than %s, which the trust configuration requires (%s); the release must carry %s %s or newer", [c.name, c.version, d.below, d.reason, c.name, d.below]),
} if {
	some [c, d] in denied_hits
	d.below != ""
	lib.version_compare(object.get(c, "version", ""), d.below) < 0
}

deny contains {
	"code": "denied-component",
	"severity": "critical",
	"message": sprintf("component %s version %q cannot be compared with %s, below which it is denied (%s); check the component by hand", [c.name, v, d.below, d.reason]),
} if {
	some [c, d] in denied_hits
	d.below != ""
	v := object.get(c, "version", "")
	not lib.comparable(v, d.below)
}

# diff_codes are the distinct change codes of the SBOM diff.
diff_codes := {c | c := lib.diff_changes[_].code}

deny contains {
	"code": "downgraded-component",
	"severity": "medium",
	"message": sprintf("component %s went back from %s to %s since %s; ask the vendor why, a downgrade can reintroduce fixed vulnerabilities", [c.name, c.from, c.to, input.sbom.diff.fromVersion]),
} if {
	diff_codes.downgraded
	some c in lib.diff_changes
	c.code == "downgraded"
}

deny contains {
	"code": "component-hash-changed",
	"severity": "high",
	"message": sprintf("component %s %s has a different hash than in %s under the same version (%s, was %s); a rebuilt or tampered component, ask the vendor", [c.name, object.get(c, "version", ""), input.sbom.diff.fromVersion, object.get(c, "to", ""), object.get(c, "from", "")]),
} if {
	diff_codes["hash-changed"]
	some c in lib.diff_changes
	c.code == "hash-changed"
}
