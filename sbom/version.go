package sbom

import (
	"strconv"
	"strings"
	"unicode"

	"github.com/Masterminds/semver/v3"
	pep440 "github.com/aquasecurity/go-pep440-version"
	rpmutils "github.com/sassoftware/go-rpmutils"
	gosemver "golang.org/x/mod/semver"
)

// Version schemes, chosen by purl type.
const (
	SchemeGo      = "go"      // golang: Go module versions, pseudo-versions included
	SchemeSemver  = "semver"  // npm, cargo, composer, hex, pub, swift, cocoapods, conan
	SchemeDebian  = "debian"  // deb: dpkg's epoch:upstream-revision ordering
	SchemeRPM     = "rpm"     // rpm: epoch, then rpmvercmp on version and release
	SchemePEP440  = "pep440"  // pypi
	SchemeMaven   = "maven"   // maven: ComparableVersion's qualifier order
	SchemeGeneric = "generic" // anything else, and versions a scheme cannot parse
)

var schemeByPurlType = map[string]string{
	"golang": SchemeGo,
	"npm":    SchemeSemver, "cargo": SchemeSemver, "composer": SchemeSemver, "hex": SchemeSemver,
	"pub": SchemeSemver, "swift": SchemeSemver, "cocoapods": SchemeSemver, "conan": SchemeSemver,
	"deb":   SchemeDebian,
	"rpm":   SchemeRPM,
	"pypi":  SchemePEP440,
	"maven": SchemeMaven,
}

// SchemeFor returns the version scheme for a purl type ("golang", "deb").
func SchemeFor(purlType string) string {
	if s, ok := schemeByPurlType[strings.ToLower(purlType)]; ok {
		return s
	}
	return SchemeGeneric
}

// CompareVersions compares two versions of a package of the given purl type
// and returns -1, 0 or +1. When a version does not parse under the
// ecosystem's scheme, both are compared with the generic rule: runs of
// digits compare as numbers, runs of letters as text, separators (. - _ +
// ~) only separate, and a version that continues with letters where the
// other has ended is a pre-release ("1.0rc1" < "1.0").
func CompareVersions(purlType, a, b string) int {
	if a == b {
		return 0
	}
	switch SchemeFor(purlType) {
	case SchemeGo:
		if gosemver.IsValid(a) && gosemver.IsValid(b) {
			return gosemver.Compare(a, b)
		}
	case SchemeSemver:
		va, errA := semver.NewVersion(a)
		vb, errB := semver.NewVersion(b)
		if errA == nil && errB == nil {
			return va.Compare(vb)
		}
	case SchemeDebian:
		return compareDebian(a, b)
	case SchemeRPM:
		return compareRPM(a, b)
	case SchemePEP440:
		va, errA := pep440.Parse(a)
		vb, errB := pep440.Parse(b)
		if errA == nil && errB == nil {
			return va.Compare(vb)
		}
	case SchemeMaven:
		return compareTokens(a, b, mavenQualifier)
	}
	return compareTokens(a, b, nil)
}

// splitEpoch splits "E:rest" into E and rest; no epoch is 0.
func splitEpoch(v string) (int, string) {
	if e, rest, ok := strings.Cut(v, ":"); ok {
		if n, err := strconv.Atoi(e); err == nil {
			return n, rest
		}
	}
	return 0, v
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compareRPM compares epoch numerically, then version and release with
// rpmvercmp (go-rpmutils).
func compareRPM(a, b string) int {
	ea, ra := splitEpoch(a)
	eb, rb := splitEpoch(b)
	if c := cmpInt(ea, eb); c != 0 {
		return c
	}
	va, rela, _ := cutLast(ra, "-")
	vb, relb, _ := cutLast(rb, "-")
	if c := rpmutils.Vercmp(va, vb); c != 0 {
		return c
	}
	return rpmutils.Vercmp(rela, relb)
}

func cutLast(s, sep string) (string, string, bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// compareDebian implements dpkg's version comparison (deb-version(7)):
// epoch, then upstream version, then Debian revision, each with verrevcmp.
func compareDebian(a, b string) int {
	ea, ra := splitEpoch(a)
	eb, rb := splitEpoch(b)
	if c := cmpInt(ea, eb); c != 0 {
		return c
	}
	ua, reva, _ := cutLast(ra, "-")
	ub, revb, _ := cutLast(rb, "-")
	if c := verrevcmp(ua, ub); c != 0 {
		return c
	}
	return verrevcmp(reva, revb)
}

// debOrder is dpkg's order of a character in a non-digit run: '~' before
// the end of the string, the end before letters, letters before the rest.
func debOrder(s string, i int) int {
	if i >= len(s) {
		return 0
	}
	c := s[i]
	switch {
	case c >= '0' && c <= '9':
		return 0
	case unicode.IsLetter(rune(c)):
		return int(c)
	case c == '~':
		return -1
	}
	return int(c) + 256
}

func verrevcmp(a, b string) int {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		for (i < len(a) && !isDigit(a[i])) || (j < len(b) && !isDigit(b[j])) {
			ac, bc := debOrder(a, i), debOrder(b, j)
			if ac != bc {
				return cmpInt(ac, bc)
			}
			i++
			j++
		}
		for i < len(a) && a[i] == '0' {
			i++
		}
		for j < len(b) && b[j] == '0' {
			j++
		}
		first := 0
		for i < len(a) && isDigit(a[i]) && j < len(b) && isDigit(b[j]) {
			if first == 0 {
				first = cmpInt(int(a[i]), int(b[j]))
			}
			i++
			j++
		}
		if i < len(a) && isDigit(a[i]) {
			return 1
		}
		if j < len(b) && isDigit(b[j]) {
			return -1
		}
		if first != 0 {
			return first
		}
	}
	return 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// mavenQualifier ranks Maven's well-known qualifiers (ComparableVersion):
// alpha < beta < milestone < rc = cr < snapshot < release < sp. Unknown
// qualifiers rank after sp and compare as text.
func mavenQualifier(q string) (int, bool) {
	switch strings.ToLower(q) {
	case "alpha", "a":
		return 1, true
	case "beta", "b":
		return 2, true
	case "milestone", "m":
		return 3, true
	case "rc", "cr":
		return 4, true
	case "snapshot":
		return 5, true
	case "", "ga", "final", "release":
		return 6, true
	case "sp":
		return 7, true
	}
	return 0, false
}

type token struct {
	num   bool
	text  string
	value string // digits without leading zeros
}

func tokens(v string) []token {
	var out []token
	for i := 0; i < len(v); {
		c := v[i]
		j := i
		switch {
		case isDigit(c):
			for j < len(v) && isDigit(v[j]) {
				j++
			}
			d := strings.TrimLeft(v[i:j], "0")
			out = append(out, token{num: true, text: v[i:j], value: d})
		case unicode.IsLetter(rune(c)):
			for j < len(v) && unicode.IsLetter(rune(v[j])) {
				j++
			}
			out = append(out, token{text: v[i:j]})
		default:
			j++
		}
		i = j
	}
	return out
}

// compareTokens is the generic comparison; rank, if not nil, orders known
// qualifiers (Maven) with the end of the version as the empty qualifier.
func compareTokens(a, b string, rank func(string) (int, bool)) int {
	ta, tb := tokens(strings.TrimPrefix(a, "v")), tokens(strings.TrimPrefix(b, "v"))
	for i := 0; i < len(ta) || i < len(tb); i++ {
		switch {
		case i >= len(ta):
			if s := -tailSign(tb[i], rank); s != 0 {
				return s
			}
			continue
		case i >= len(tb):
			if s := tailSign(ta[i], rank); s != 0 {
				return s
			}
			continue
		}
		x, y := ta[i], tb[i]
		switch {
		case x.num && y.num:
			if c := cmpInt(len(x.value), len(y.value)); c != 0 {
				return c
			}
			if c := strings.Compare(x.value, y.value); c != 0 {
				return c
			}
		case x.num != y.num:
			// "1.0.1" > "1.0rc": a number outranks a qualifier.
			if x.num {
				return 1
			}
			return -1
		default:
			if rank != nil {
				rx, okx := rank(x.text)
				ry, oky := rank(y.text)
				if okx && oky {
					if c := cmpInt(rx, ry); c != 0 {
						return c
					}
					continue
				}
			}
			if c := strings.Compare(strings.ToLower(x.text), strings.ToLower(y.text)); c != 0 {
				return c
			}
		}
	}
	return 0
}

// tailSign says whether a version that goes on with t, where the other has
// ended, is greater (+1) or smaller (-1): more numbers are greater, a
// qualifier is a pre-release unless rank puts it after the release.
func tailSign(t token, rank func(string) (int, bool)) int {
	if t.num {
		if t.value == "" { // "1.0" == "1.0.0"
			return 0
		}
		return 1
	}
	if rank != nil {
		if r, ok := rank(t.text); ok {
			rel, _ := rank("")
			return cmpInt(r, rel)
		}
		return 1
	}
	return -1
}
