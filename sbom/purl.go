package sbom

import (
	"net/url"
	"slices"
	"strings"
)

// fastPurlIdentity computes purlIdentity for the purls real SBOMs carry
// (printable ASCII, no subpath, no type with special rules) without
// packageurl-go's url.Parse, regular expressions and re-encoding, which cost
// more than reading the JSON. It follows packageurl-go's FromString,
// Normalize and ToString step by step; ok is false for anything it does not
// handle, and the caller uses purlIdentity. FuzzPurlIdentity holds the two
// to the same result.
func fastPurlIdentity(s string) (id string, ok bool) {
	rest, ok := strings.CutPrefix(s, "pkg:")
	if !ok || rest == "" || rest[0] == '/' {
		return "", false
	}
	for i := range len(rest) {
		// No spaces (FromString trims), control bytes (url.Parse refuses),
		// non-ASCII, subpaths or ';' (parseQualifiers refuses).
		if c := rest[i]; c <= ' ' || c >= 0x7f || c == '#' || c == ';' {
			return "", false
		}
	}
	opaque, rawQuery, _ := strings.Cut(rest, "?")
	typ, path, ok := strings.Cut(opaque, "/")
	if !ok || !validPurlType(typ) {
		return "", false
	}
	typ = strings.ToLower(typ)
	switch typ {
	case "mlflow", "conan", "swift", "cran", "huggingface":
		return "", false // name rules or validation that depend on qualifiers or version
	}

	// Qualifiers: parseQualifiers, then Normalize (empty values dropped,
	// duplicate keys refused), keeping only identity qualifiers.
	var keep [3]struct{ k, v string }
	n := 0
	seen := map[string]bool(nil)
	for rawQuery != "" {
		var kv string
		kv, rawQuery, _ = strings.Cut(rawQuery, "&")
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		var err error
		if k, err = pathUnescape(k); err != nil || !validQualifierKey(k) {
			return "", false
		}
		if !validEscapes(v) {
			return "", false
		}
		if v == "" {
			continue
		}
		k = strings.ToLower(k)
		if seen == nil {
			seen = map[string]bool{}
		}
		if seen[k] {
			return "", false // duplicate: FromString fails
		}
		seen[k] = true
		if identityQualifiers[k] {
			keep[n].k, keep[n].v = k, v
			n++
		}
	}
	for i := range n {
		keep[i].v, _ = url.PathUnescape(keep[i].v) // validEscapes said it can
	}

	// separateNamespaceNameVersion: the version is dropped, but must unescape.
	var ns, name string
	name = path
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		ns, name = name[:i], name[i+1:]
	}
	if i := strings.LastIndexByte(name, '@'); i >= 0 {
		if !validEscapes(name[i+1:]) {
			return "", false
		}
		name = name[:i]
	}
	var err error
	if ns, err = pathUnescape(ns); err != nil {
		return "", false
	}
	if name, err = pathUnescape(name); err != nil || name == "" {
		return "", false
	}
	ns = strings.Trim(ns, "/")

	// Normalize's type rules, then purlIdentity's own.
	switch typ {
	case "alpm", "apk", "bitbucket", "composer", "deb", "github", "golang", "npm", "rpm", "qpkg":
		ns = strings.ToLower(ns)
	}
	switch typ {
	case "alpm", "apk", "bitbucket", "bitnami", "composer", "deb", "github", "golang", "npm":
		name = strings.ToLower(name)
	case "pypi":
		name = strings.ToLower(strings.ReplaceAll(name, "_", "-"))
	}
	switch typ {
	case "npm", "pypi", "github", "bitbucket", "deb", "apk", "composer", "hex", "pub":
		ns, name = strings.ToLower(ns), strings.ToLower(name)
	}
	if typ == "pypi" {
		name = strings.ReplaceAll(name, "_", "-")
	}

	// ToString.
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString("pkg:")
	b.WriteString(typ)
	for seg := range strings.SplitSeq(ns, "/") {
		if seg != "" {
			b.WriteByte('/')
			b.WriteString(purlEscape(seg))
		}
	}
	b.WriteByte('/')
	b.WriteString(purlEscape(name))
	q := keep[:n]
	slices.SortFunc(q, func(a, b struct{ k, v string }) int { return strings.Compare(a.k, b.k) })
	for i, kv := range q {
		if i == 0 {
			b.WriteByte('?')
		} else {
			b.WriteByte('&')
		}
		b.WriteString(purlEscape(kv.k))
		b.WriteByte('=')
		b.WriteString(purlEscape(kv.v))
	}
	return b.String(), true
}

func pathUnescape(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 {
		return s, nil
	}
	return url.PathUnescape(s)
}

// validEscapes says whether url.PathUnescape accepts s: every '%' starts a
// two-digit hex escape.
func validEscapes(s string) bool {
	for i := strings.IndexByte(s, '%'); i >= 0; {
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			return false
		}
		j := strings.IndexByte(s[i+3:], '%')
		if j < 0 {
			break
		}
		i += 3 + j
	}
	return true
}

// purlEscape is packageurl-go's escape: url.QueryEscape with %20 for space.
func purlEscape(s string) string {
	for i := range len(s) {
		if c := s[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~') {
			return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
		}
	}
	return s
}

// validPurlType is packageurl-go's TypePattern, ^[A-Za-z\.\-\+][0-9A-Za-z\.\-\+]*$.
func validPurlType(t string) bool {
	if t == "" {
		return false
	}
	for i := range len(t) {
		c := t[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '.' || c == '-' || c == '+' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// validQualifierKey is packageurl-go's QualifierKeyPattern,
// ^[A-Za-z\.\-_][0-9A-Za-z\.\-_]*$.
func validQualifierKey(k string) bool {
	if k == "" {
		return false
	}
	for i := range len(k) {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '.' || c == '-' || c == '_' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
