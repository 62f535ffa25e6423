package sbom

import (
	"cmp"
	"slices"
	"strings"
)

// Code is the stable name of a kind of change. Codes never change meaning.
type Code string

// Diff codes.
const (
	Added             Code = "added"              // in new, not in old
	Removed           Code = "removed"            // in old, not in new
	Upgraded          Code = "upgraded"           // version went up
	Downgraded        Code = "downgraded"         // version went down
	HashChanged       Code = "hash-changed"       // same version, different hash: rebuilt or tampered
	LicenseChanged    Code = "license-changed"    // declared licenses differ
	SupplierChanged   Code = "supplier-changed"   // supplier differs
	DependencyAdded   Code = "dependency-added"   // new edge: From depends on To
	DependencyRemoved Code = "dependency-removed" // edge gone
)

// Drift codes.
const (
	Undeclared      Code = "undeclared"       // observed in the artifact, not in the vendor's SBOM
	Missing         Code = "missing"          // in the vendor's SBOM, not observed
	VersionMismatch Code = "version-mismatch" // both, with different versions
	HashMismatch    Code = "hash-mismatch"    // both, same version, different hash
)

// DiffCodes and DriftCodes list the codes in report order.
var (
	DiffCodes  = []Code{Added, Removed, Upgraded, Downgraded, HashChanged, LicenseChanged, SupplierChanged, DependencyAdded, DependencyRemoved}
	DriftCodes = []Code{Undeclared, Missing, VersionMismatch, HashMismatch}
)

// Change is one difference. From and To are versions for version changes,
// "ALG:hex" for hash changes, licenses joined with " AND " for license
// changes, supplier names for supplier changes, and the dependent's and the
// dependency's identities for dependency changes.
type Change struct {
	Code     Code   `json:"code"`
	Name     string `json:"name"`
	PURL     string `json:"purl"`
	From     string `json:"from"`
	To       string `json:"to"`
	Version  string `json:"version,omitempty"` // for attribute changes: the version both sides share
	Identity string `json:"identity"`
	// Ref is the component's bom-ref or SPDX id in its document (the new
	// one, or the old one for removals): two components of the same name
	// and version are told apart by it.
	Ref string `json:"ref,omitempty"`
}

// Changes is a diff or drift report: counts per code and the changes, in a
// stable order (by code, identity, from, to, then name, purl and version).
type Changes struct {
	Summary map[Code]int `json:"summary"`
	Changes []Change     `json:"changes"`
}

// Count returns how many changes have one of codes.
func (c *Changes) Count(codes ...Code) int {
	n := 0
	for _, code := range codes {
		n += c.Summary[code]
	}
	return n
}

func newChanges(codes []Code, list []Change) *Changes {
	order := make(map[Code]int, len(codes))
	sum := make(map[Code]int, len(codes))
	for i, c := range codes {
		order[c] = i
		sum[c] = 0
	}
	for _, c := range list {
		sum[c.Code]++
	}
	slices.SortFunc(list, func(a, b Change) int {
		return cmp.Or(cmp.Compare(order[a.Code], order[b.Code]), strings.Compare(a.Identity, b.Identity),
			strings.Compare(a.From, b.From), strings.Compare(a.To, b.To),
			strings.Compare(a.Name, b.Name), strings.Compare(a.PURL, b.PURL), strings.Compare(a.Version, b.Version),
			strings.Compare(a.Ref, b.Ref))
	})
	if list == nil {
		list = []Change{}
	}
	return &Changes{Summary: sum, Changes: list}
}

// group indexes a document's components by identity.
func group(d *Document, skip func(*Component) bool) map[string][]*Component {
	m := make(map[string][]*Component, len(d.Components))
	for i := range d.Components {
		c := &d.Components[i]
		if skip != nil && skip(c) {
			continue
		}
		id := c.Identity()
		m[id] = append(m[id], c)
	}
	return m
}

// pair matches the versions of one identity on two sides: equal versions
// first, then, if one version is left on each side, those two. It returns
// the pairs and the leftovers.
func pair(eco string, olds, news []*Component) (pairs [][2]*Component, restOld, restNew []*Component) {
	used := make([]bool, len(news))
	for _, o := range olds {
		found := false
		for j, n := range news {
			if !used[j] && (o.Version == n.Version || CompareVersions(eco, o.Version, n.Version) == 0) {
				used[j], found = true, true
				pairs = append(pairs, [2]*Component{o, n})
				break
			}
		}
		if !found {
			restOld = append(restOld, o)
		}
	}
	for j, n := range news {
		if !used[j] {
			restNew = append(restNew, n)
		}
	}
	return pairs, restOld, restNew
}

// hashDiffers says whether a and b disagree on a hash algorithm both give;
// it returns that algorithm's values. The strongest algorithm is reported
// (SHA-512 before SHA-384 before SHA-256 before the rest), then the first
// by name.
func hashDiffers(a, b map[string]string) (string, string, bool) {
	best, bestRank := "", -1
	for alg, av := range a {
		bv, ok := b[alg]
		if !ok || bv == av {
			continue
		}
		if r := hashRank(alg); r > bestRank || r == bestRank && alg < best {
			best, bestRank = alg, r
		}
	}
	if bestRank < 0 {
		return "", "", false
	}
	return best + ":" + a[best], best + ":" + b[best], true
}

func hashRank(alg string) int {
	switch alg {
	case "SHA-512", "SHA3-512":
		return 4
	case "SHA-384", "SHA3-384":
		return 3
	case "SHA-256", "SHA3-256":
		return 2
	}
	return 1
}

func change(code Code, c *Component, from, to string) Change {
	return Change{Code: code, Name: c.Name, PURL: c.PURL, From: from, To: to, Identity: c.Identity(), Ref: c.ID}
}

// sides are the components of one identity in the old and the new document.
type sides struct{ old, new []*Component }

// match groups both documents' components by identity, in document order:
// the old document's identities first, then those only in the new.
func match(old, new *Document) ([]sides, map[string]int) {
	index := make(map[string]int, len(old.Components)+len(new.Components)/4)
	slots := make([]sides, 0, len(old.Components)+len(new.Components)/4)
	for i := range old.Components {
		c := &old.Components[i]
		k, ok := index[c.Identity()]
		if !ok {
			k = len(slots)
			index[c.Identity()] = k
			slots = append(slots, sides{})
		}
		slots[k].old = append(slots[k].old, c)
	}
	for i := range new.Components {
		c := &new.Components[i]
		k, ok := index[c.Identity()]
		if !ok {
			k = len(slots)
			index[c.Identity()] = k
			slots = append(slots, sides{})
		}
		slots[k].new = append(slots[k].new, c)
	}
	return slots, index
}

// Diff compares two SBOMs of successive releases. Components are matched by
// identity; versions by the ecosystem's rules (CompareVersions). A hash is
// compared only between equal versions, on an algorithm both documents give.
func Diff(old, new *Document) *Changes {
	slots, index := match(old, new)
	var out []Change
	for i := range slots {
		olds, news := slots[i].old, slots[i].new
		if len(olds) == 1 && len(news) == 1 && olds[0].Version == news[0].Version {
			out = sameVersionChanges(out, olds[0], news[0]) // the common case
			continue
		}
		eco := ""
		if len(olds) > 0 {
			eco = olds[0].ecosystem()
		} else {
			eco = news[0].ecosystem()
		}
		pairs, ro, rn := pair(eco, olds, news)
		for _, p := range pairs {
			out = sameVersionChanges(out, p[0], p[1])
		}
		if len(ro) == 1 && len(rn) == 1 {
			o, n := ro[0], rn[0]
			code := Upgraded
			if CompareVersions(eco, o.Version, n.Version) > 0 {
				code = Downgraded
			}
			out = append(out, change(code, n, o.Version, n.Version))
			out = append(out, attributeChanges(o, n)...)
			continue
		}
		for _, o := range ro {
			out = append(out, change(Removed, o, o.Version, ""))
		}
		for _, n := range rn {
			out = append(out, change(Added, n, "", n.Version))
		}
	}
	out = append(out, dependencyChanges(old, new, slots, index)...)
	return newChanges(DiffCodes, out)
}

// sameVersionChanges appends the changes between two components matched on
// their version: hash, license, supplier.
func sameVersionChanges(out []Change, o, n *Component) []Change {
	if from, to, ok := hashDiffers(o.Hashes, n.Hashes); ok {
		c := change(HashChanged, n, from, to)
		c.Version = n.Version
		out = append(out, c)
	}
	return append(out, attributeChanges(o, n)...)
}

func attributeChanges(o, n *Component) []Change {
	var out []Change
	if !slices.Equal(o.Licenses, n.Licenses) {
		c := change(LicenseChanged, n, strings.Join(o.Licenses, " AND "), strings.Join(n.Licenses, " AND "))
		c.Version = n.Version
		out = append(out, c)
	}
	// A supplier one side does not name is unknown there, not changed:
	// syft's SPDX writes NOASSERTION for maintainers its pattern cannot
	// parse (an e-mail domain with two dots) that its CycloneDX names.
	if o.Supplier != n.Supplier && o.Supplier != "" && n.Supplier != "" {
		c := change(SupplierChanged, n, o.Supplier, n.Supplier)
		c.Version = n.Version
		out = append(out, c)
	}
	return out
}

// dependencyChanges walks the two sorted edge lists once. An edge is named
// after the component with the dependent's identity, preferring the new
// document, and within a document its last component, then its subject.
func dependencyChanges(old, new *Document, slots []sides, index map[string]int) []Change {
	named := func(id string) *Component {
		var s sides
		if k, ok := index[id]; ok {
			s = slots[k]
		}
		switch {
		case len(s.new) > 0:
			return s.new[len(s.new)-1]
		case new.Subject != nil && new.Subject.Identity() == id:
			return new.Subject
		case len(s.old) > 0:
			return s.old[len(s.old)-1]
		case old.Subject != nil && old.Subject.Identity() == id:
			return old.Subject
		}
		return nil
	}
	edge := func(code Code, e Dependency) Change {
		c := Change{Code: code, From: e.From, To: e.To, Identity: e.From}
		if comp := named(e.From); comp != nil {
			c.Name, c.PURL = comp.Name, comp.PURL
		}
		return c
	}
	var out []Change
	a, b := old.Dependencies, new.Dependencies
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j >= len(b) || (i < len(a) && compareDep(a[i], b[j]) < 0):
			out = append(out, edge(DependencyRemoved, a[i]))
			i++
		case i >= len(a) || compareDep(a[i], b[j]) > 0:
			out = append(out, edge(DependencyAdded, b[j]))
			j++
		default:
			i++
			j++
		}
	}
	return out
}
