package sbom

import (
	"maps"
	"slices"
)

// Drift reconciles a vendor's SBOM (claimed) with what was found in the
// artifact (observed): components observed but not claimed are Undeclared,
// claimed but not observed are Missing, both but at other versions are
// VersionMismatch, and at the same version with a different hash are
// HashMismatch.
//
// Components of type "file" are left out on both sides: syft lists every
// file it reads, and a vendor SBOM lists packages. A file a vendor does
// list is compared through the package it belongs to, if any.
func Drift(claimed, observed *Document) *Changes {
	skipFiles := func(c *Component) bool { return c.Type == "file" }
	cg, og := group(claimed, skipFiles), group(observed, skipFiles)
	var out []Change
	ids := slices.Sorted(maps.Keys(cg))
	for id := range og {
		if _, ok := cg[id]; !ok {
			ids = append(ids, id)
		}
	}
	for _, id := range ids {
		cs, os := cg[id], og[id]
		eco := ""
		if len(cs) > 0 {
			eco = cs[0].ecosystem()
		} else {
			eco = os[0].ecosystem()
		}
		pairs, rc, ro := pair(eco, cs, os)
		for _, p := range pairs {
			if from, to, ok := hashDiffers(p[0].Hashes, p[1].Hashes); ok {
				c := change(HashMismatch, p[1], from, to)
				c.Version = p[1].Version
				out = append(out, c)
			}
		}
		switch {
		case len(rc) > 0 && len(ro) > 0:
			// Pair leftovers in version order; any excess is missing or
			// undeclared.
			sortByVersion(eco, rc)
			sortByVersion(eco, ro)
			n := min(len(rc), len(ro))
			for k := range n {
				out = append(out, change(VersionMismatch, ro[k], rc[k].Version, ro[k].Version))
			}
			rc, ro = rc[n:], ro[n:]
		}
		for _, c := range rc {
			out = append(out, change(Missing, c, c.Version, ""))
		}
		for _, o := range ro {
			out = append(out, change(Undeclared, o, "", o.Version))
		}
	}
	return newChanges(DriftCodes, out)
}

func sortByVersion(eco string, cs []*Component) {
	slices.SortStableFunc(cs, func(a, b *Component) int { return CompareVersions(eco, a.Version, b.Version) })
}
