# METADATA
# title: files
# description: |
#   No executable (ELF or PE) of the firmware changed its bytes since the
#   previous admitted release while the package that owns it kept its
#   version: the 3CX and CCleaner pattern, a rebuilt or trojaned binary
#   shipped as the same release of its package. Warns unless the trust
#   configuration enforces it (rules: {executable-changed-same-version:
#   enforce}).
package wardgate.rules.files

deny contains {
	"code": "executable-changed-same-version",
	"severity": "high",
	"message": sprintf("executable %s of %s %s changed since %s although %s kept its version (sha256 %s, was %s); a rebuilt or trojaned binary, ask the vendor", [c.path, c.package, c.version, input.files.fromVersion, c.package, object.get(c, "to", ""), object.get(c, "from", "")]),
} if {
	some c in input.files.changes
	c.code == "executable-changed-same-version"
}
