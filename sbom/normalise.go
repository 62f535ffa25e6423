package sbom

import (
	"regexp"
	"strings"
)

// The same scan written by syft as CycloneDX and as SPDX says the same
// things in different words. These functions bring both to one form, so
// that Diff and Drift see no change where there is none:
//
//   - parties: SPDX writes "Name (email)", CycloneDX "Name <email>";
//     CycloneDX puts a package's maintainer in publisher (or author) where
//     SPDX has the supplier.
//   - licences: a CycloneDX licence name that is no SPDX identifier is an
//     SPDX LicenseRef- with the name kept in the document's extracted
//     licensing info.
//   - files: CycloneDX lists files as components of type file, SPDX in its
//     files section; paths are absolute in one and relative in the other.
//   - operating systems: CycloneDX lists the distribution as a component of
//     type operating-system; SPDX has no such package. It is kept apart
//     (Document.OperatingSystems).

var partyWithParens = regexp.MustCompile(`^(.*?)\s*\(([^()\s]+@[^()\s]+)\)$`)

// normaliseParty writes a person or organisation as "Name <email>" (or the
// name alone), whitespace collapsed.
func normaliseParty(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if m := partyWithParens.FindStringSubmatch(s); m != nil {
		if m[1] == "" {
			return "<" + m[2] + ">"
		}
		return m[1] + " <" + m[2] + ">"
	}
	return s
}

// firstParty is the first non-empty of parties, normalised.
func firstParty(parties ...string) string {
	for _, p := range parties {
		if p = normaliseParty(p); p != "" {
			return p
		}
	}
	return ""
}

// normaliseFileName is a file component's path without a leading "/" or
// "./": the form SPDX file names take.
func normaliseFileName(s string) string {
	for {
		switch {
		case strings.HasPrefix(s, "./"):
			s = s[2:]
		case strings.HasPrefix(s, "/"):
			s = s[1:]
		default:
			return s
		}
	}
}

var licenseRef = regexp.MustCompile(`LicenseRef-[A-Za-z0-9.\-]+`)

// resolveLicenseRefs replaces LicenseRef- identifiers that the document's
// extracted licensing info names with those names.
func resolveLicenseRefs(ls []string, names map[string]string) []string {
	if len(names) == 0 {
		return ls
	}
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = licenseRef.ReplaceAllStringFunc(l, func(ref string) string {
			if n, ok := names[ref]; ok && n != "" {
				return n
			}
			return ref
		})
	}
	return out
}
