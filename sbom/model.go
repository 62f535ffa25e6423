package sbom

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	packageurl "github.com/anchore/packageurl-go"
)

// Format names an SBOM serialisation.
type Format string

// Formats read by Decode and written by Generate.
const (
	FormatCycloneDXJSON Format = "cyclonedx-json"
	FormatCycloneDXXML  Format = "cyclonedx-xml"
	FormatSPDXJSON      Format = "spdx-json"
	FormatSPDXTagValue  Format = "spdx-tag-value"
	FormatSyftJSON      Format = "syft-json" // syft's own JSON (syft -o json)
)

// Sentinel errors wrapped by Decode. Callers use errors.Is to tell a
// malformed document from one Decode does not support.
var (
	ErrTooLarge           = errors.New("sbom: document too large")
	ErrUnknownFormat      = errors.New("sbom: unknown document format")
	ErrMalformed          = errors.New("sbom: malformed document")
	ErrUnsupportedVersion = errors.New("sbom: unsupported spec version")
	ErrMissingField       = errors.New("sbom: required field missing")
)

// Document is an SBOM in wardgate's normalised model.
type Document struct {
	Format      Format `json:"format"`
	SpecVersion string `json:"specVersion"`
	// Subject is what the SBOM describes (CycloneDX metadata.component, the
	// package an SPDX document DESCRIBES), if it says.
	Subject *Component `json:"subject,omitempty"`
	// Components are every component, nested ones flattened, the subject
	// excluded.
	Components []Component `json:"components"`
	// OperatingSystems are the distributions a scan detected (CycloneDX
	// components of type operating-system). They describe the platform, not
	// a package: SPDX has no place for them, and Diff and Drift leave them
	// out.
	OperatingSystems []Component `json:"operatingSystems,omitempty"`
	// Dependencies are "From depends on To" edges between component
	// identities (see Component.Identity), sorted and without duplicates.
	Dependencies []Dependency `json:"dependencies,omitempty"`
	// Warnings are problems a real tool would read past: duplicate
	// bom-refs, dependency cycles, components without a name.
	Warnings []string `json:"warnings,omitempty"`
}

// Component is one package, library, application or file of an SBOM.
type Component struct {
	ID      string `json:"id,omitempty"` // bom-ref or SPDXID, local to its document
	Name    string `json:"name"`
	Group   string `json:"group,omitempty"`
	Version string `json:"version,omitempty"`
	Type    string `json:"type,omitempty"`
	PURL    string `json:"purl,omitempty"`
	// Hashes maps a normalised algorithm name ("SHA-256") to lowercase hex.
	Hashes map[string]string `json:"hashes,omitempty"`
	// Licenses are SPDX identifiers, names or expressions; an expression
	// whose only operator is AND is split into its terms. Sorted.
	Licenses []string `json:"licenses,omitempty"`
	Supplier string   `json:"supplier,omitempty"`

	identity string // Identity, computed once when decoded
}

// Dependency is an edge "From depends on To" between component identities.
type Dependency struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// identityQualifiers are the purl qualifiers that make a different package,
// not a different description of the same one: the CPU architecture of a
// Debian or RPM package, a Maven classifier or packaging type. All others
// (distro, repository_url, download_url, vcs_url, checksum, file_name,
// upstream, epoch) describe where or how it was found and are dropped.
var identityQualifiers = map[string]bool{"arch": true, "classifier": true, "type": true}

// Identity returns the key that says two components are the same package in
// two SBOMs: the purl without version and with only identity qualifiers,
// else "type/group/name".
func (c Component) Identity() string {
	if c.identity != "" {
		return c.identity
	}
	if c.PURL != "" {
		if id, ok := fastPurlIdentity(c.PURL); ok {
			return id
		}
		if id, err := purlIdentity(c.PURL); err == nil {
			return id
		}
	}
	t := c.Type
	if t == "" {
		t = "library"
	}
	return "nopurl:" + strings.ToLower(t) + "/" + c.Group + "/" + c.Name
}

// ecosystem is the purl type, or "" when there is no valid purl.
func (c Component) ecosystem() string {
	if c.PURL == "" {
		return ""
	}
	t, _, ok := strings.Cut(strings.TrimPrefix(c.PURL, "pkg:"), "/")
	if !ok {
		return ""
	}
	return strings.ToLower(t)
}

func purlIdentity(s string) (string, error) {
	p, err := packageurl.FromString(s)
	if err != nil {
		return "", err
	}
	var keep packageurl.Qualifiers
	for _, q := range p.Qualifiers {
		if identityQualifiers[q.Key] && q.Value != "" {
			keep = append(keep, q)
		}
	}
	slices.SortFunc(keep, func(a, b packageurl.Qualifier) int { return strings.Compare(a.Key, b.Key) })
	id := packageurl.PackageURL{Type: strings.ToLower(p.Type), Namespace: p.Namespace, Name: p.Name, Qualifiers: keep, Subpath: p.Subpath}
	switch id.Type {
	case "npm", "pypi", "github", "bitbucket", "deb", "apk", "composer", "hex", "pub", "golang":
		// purl spec: these types' names are case-insensitive, except golang,
		// where only the host part is. Go module paths are case-sensitive,
		// so golang is left as written.
		if id.Type != "golang" {
			id.Namespace, id.Name = strings.ToLower(id.Namespace), strings.ToLower(id.Name)
		}
	}
	if id.Type == "pypi" {
		id.Name = strings.ReplaceAll(id.Name, "_", "-")
	}
	return id.ToString(), nil
}

// normaliseHashAlg maps CycloneDX ("SHA-256") and SPDX ("SHA256") algorithm
// names to one spelling.
func normaliseHashAlg(alg string) string {
	a := strings.ToUpper(strings.TrimSpace(alg))
	switch a {
	case "SHA1", "SHA-1":
		return "SHA-1"
	case "SHA224", "SHA-224":
		return "SHA-224"
	case "SHA256", "SHA-256":
		return "SHA-256"
	case "SHA384", "SHA-384":
		return "SHA-384"
	case "SHA512", "SHA-512":
		return "SHA-512"
	case "SHA3_256", "SHA3-256":
		return "SHA3-256"
	case "SHA3_384", "SHA3-384":
		return "SHA3-384"
	case "SHA3_512", "SHA3-512":
		return "SHA3-512"
	}
	return a
}

// normaliseLicenses turns license ids, names and expressions into a sorted
// set. "MIT AND Apache-2.0" and the two entries MIT, Apache-2.0 are the same
// set; an expression with OR or WITH stays whole.
func normaliseLicenses(in []string) []string {
	var out []string
	for _, l := range in {
		l = strings.TrimSpace(l)
		switch strings.ToUpper(l) {
		case "", "NOASSERTION", "NONE":
			continue
		}
		if !strings.ContainsAny(l, "()") && !strings.Contains(l, " OR ") && !strings.Contains(l, " WITH ") {
			for _, t := range strings.Split(l, " AND ") {
				if t = strings.TrimSpace(t); t != "" {
					out = append(out, t)
				}
			}
			continue
		}
		out = append(out, l)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// finish resolves component IDs in raw edges to identities, drops edges to
// unknown refs, sorts, and warns about duplicate refs and cycles.
func (d *Document) finish(rawEdges []Dependency) {
	if d.Subject != nil {
		d.Subject.identity = d.Subject.Identity()
	}
	for i := range d.Components {
		d.Components[i].identity = d.Components[i].Identity()
	}
	byID := make(map[string]string, len(d.Components)+1)
	dup := map[string]bool{}
	add := func(c Component) {
		if c.ID == "" {
			return
		}
		if _, ok := byID[c.ID]; ok {
			if !dup[c.ID] {
				d.Warnings = append(d.Warnings, fmt.Sprintf("duplicate bom-ref %q: the first component with it is used for dependencies", c.ID))
				dup[c.ID] = true
			}
			return
		}
		byID[c.ID] = c.Identity()
	}
	if d.Subject != nil {
		add(*d.Subject)
	}
	for _, c := range d.Components {
		add(c)
	}
	for _, c := range d.OperatingSystems {
		add(c)
	}
	unknown := 0
	edges := make([]Dependency, 0, len(rawEdges))
	for _, e := range rawEdges {
		from, ok1 := byID[e.From]
		to, ok2 := byID[e.To]
		if !ok1 || !ok2 {
			unknown++
			continue
		}
		if from == to {
			continue
		}
		edges = append(edges, Dependency{From: from, To: to})
	}
	if unknown > 0 {
		d.Warnings = append(d.Warnings, fmt.Sprintf("%d dependency edges name a ref that is no component; ignored", unknown))
	}
	slices.SortFunc(edges, compareDep)
	d.Dependencies = slices.Compact(edges)
	if cyc := findCycle(d.Dependencies); cyc != nil {
		d.Warnings = append(d.Warnings, "dependency cycle: "+strings.Join(cyc, " -> "))
	}
}

func compareDep(a, b Dependency) int {
	if c := strings.Compare(a.From, b.From); c != 0 {
		return c
	}
	return strings.Compare(a.To, b.To)
}

// findCycle returns one cycle in the sorted edge list, or nil: the first
// found by a depth-first search from each edge's From in order, following
// edges in order. Iterative, so a long chain cannot overflow the stack;
// nodes are numbered so the search runs on slices, not maps.
func findCycle(edges []Dependency) []string {
	if len(edges) == 0 {
		return nil
	}
	num := make(map[string]int32, len(edges))
	var names []string
	node := func(s string) int32 {
		n, ok := num[s]
		if !ok {
			n = int32(len(names))
			num[s] = n
			names = append(names, s)
		}
		return n
	}
	from := make([]int32, len(edges))
	to := make([]int32, len(edges))
	for i, e := range edges {
		from[i], to[i] = node(e.From), node(e.To)
	}
	// Edges are sorted by From, so each node's out-edges are one run.
	first := make([]int32, len(names)+1)
	for i := range first {
		first[i] = -1
	}
	last := make([]int32, len(names))
	for i := len(edges) - 1; i >= 0; i-- {
		first[from[i]] = int32(i)
	}
	for i := range edges {
		last[from[i]] = int32(i) + 1
	}
	const (
		white = iota
		grey
		black
	)
	color := make([]uint8, len(names))
	type frame struct{ node, next int32 }
	var stack []frame
	for _, start := range from {
		if color[start] != white {
			continue
		}
		stack = append(stack[:0], frame{node: start, next: first[start]})
		color[start] = grey
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			if top.next < 0 || top.next >= last[top.node] {
				color[top.node] = black
				stack = stack[:len(stack)-1]
				continue
			}
			n := to[top.next]
			top.next++
			switch color[n] {
			case white:
				color[n] = grey
				stack = append(stack, frame{node: n, next: first[n]})
			case grey:
				var cyc []string
				for i := range stack {
					if stack[i].node == n || cyc != nil {
						cyc = append(cyc, names[stack[i].node])
					}
				}
				return append(cyc, names[n])
			}
		}
	}
	return nil
}
