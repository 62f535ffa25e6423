package vuln

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/google/osv-scalibr/enricher/vulnmatch/osvlocal"
	"github.com/google/osv-scalibr/extractor"
	"github.com/google/osv-scalibr/inventory/osvecosystem"
	"github.com/google/osv-scalibr/semantic"
	osvpb "github.com/ossf/osv-schema/bindings/go/osvschema"
)

// Reasons a component was not checked.
const (
	// ReasonNoEcosystem: the component has no package URL naming an OSV
	// ecosystem (pkg:generic, or none); no OSV record can name it.
	ReasonNoEcosystem = "no-ecosystem"
	// ReasonNoVersion: the component names an ecosystem but no version.
	ReasonNoVersion = "no-version"
	// ReasonBadVersion: the version is not one of the ecosystem's (the
	// ecosystem's version ordering rejects it), so it cannot be compared.
	ReasonBadVersion = "bad-version"
)

// Match is one record that affects one component.
type Match struct {
	// ID is the record's ID (ALPINE-CVE-2024-5535, GHSA-..., CVE-...).
	ID string `json:"id"`
	// Aliases are the record's aliases and upstream IDs.
	Aliases []string `json:"aliases,omitempty"`
	// Summary is the record's summary, else the start of its details.
	Summary string `json:"summary,omitempty"`
	// Severity is critical, high, medium, low or unknown.
	Severity string `json:"severity"`
	// CVSS is the rating the severity came from; nil for a label or none.
	CVSS *CVSS `json:"cvss,omitempty"`
	// FixedIn are the versions the record names as fixed.
	FixedIn []string `json:"fixedIn,omitempty"`
	// Ecosystem and Package are the ecosystem and package name the record
	// names (for an OS package, the source package: openssl for libssl3).
	Ecosystem string `json:"ecosystem"`
	Package   string `json:"package"`
	// Component is the SBOM component affected.
	Component Component `json:"component"`
}

// Ecosystem is one ecosystem of the scanned components.
type Ecosystem struct {
	Name string `json:"name"`
	// Components counts the components in it.
	Components int `json:"components"`
	// Records counts the database's records for it: 0 means the database
	// cannot say anything about these components.
	Records int `json:"records"`
}

// Unchecked is a component the matcher could not check, and why.
type Unchecked struct {
	Component Component `json:"component"`
	// Reason is ReasonNoEcosystem, ReasonNoVersion or ReasonBadVersion.
	Reason string `json:"reason"`
}

// Result is the outcome of matching an SBOM's components.
type Result struct {
	// Database is the database matched against.
	Database Info `json:"database"`
	// Components counts the components matched.
	Components int `json:"components"`
	// Ecosystems are the components' ecosystems, by name.
	Ecosystems []Ecosystem `json:"ecosystems"`
	// Unchecked are the components not checked.
	Unchecked []Unchecked `json:"unchecked"`
	// Matches are sorted by component, then severity (most severe first),
	// then ID.
	Matches []Match `json:"matches"`
}

// Match matches components against the database. A component is checked
// when its package URL names an OSV ecosystem and it has a version the
// ecosystem's ordering accepts; the others are listed in Unchecked.
func (db *DB) Match(ctx context.Context, comps []Component) (*Result, error) {
	res := &Result{Database: db.info, Components: len(comps), Ecosystems: []Ecosystem{}, Unchecked: []Unchecked{}, Matches: []Match{}}
	ecos := map[string]*Ecosystem{}
	seen := map[[2]string]bool{}
	db.mu.Lock()
	defer db.mu.Unlock()
	for _, c := range comps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		pkg := toPackage(c)
		var eco osvecosystem.Parsed
		if pkg != nil {
			eco = pkg.Ecosystem()
		}
		if eco.IsEmpty() {
			res.Unchecked = append(res.Unchecked, Unchecked{Component: c, Reason: ReasonNoEcosystem})
			continue
		}
		e := ecos[eco.String()]
		if e == nil {
			e = &Ecosystem{Name: eco.String(), Records: db.records(eco)}
			ecos[e.Name] = e
		}
		e.Components++
		if pkg.Version == "" {
			res.Unchecked = append(res.Unchecked, Unchecked{Component: c, Reason: ReasonNoVersion})
			continue
		}
		if _, err := semantic.Parse(pkg.Version, string(eco.Ecosystem)); err != nil && !errors.Is(err, semantic.ErrUnsupportedEcosystem) {
			res.Unchecked = append(res.Unchecked, Unchecked{Component: c, Reason: ReasonBadVersion})
			continue
		}
		cands := db.byName[pkg.Name]
		if len(cands) == 0 {
			continue
		}
		vs, err := affecting(cands, pkg)
		if err != nil {
			return nil, fmt.Errorf("vuln: match %s %s: %w", c.Name, c.Version, err)
		}
		for _, v := range vs {
			key := [2]string{c.PURL + "\x00" + c.Name + "\x00" + c.Version, v.GetId()}
			if seen[key] {
				continue
			}
			seen[key] = true
			res.Matches = append(res.Matches, db.match(v, c, eco, pkg.Name))
		}
	}
	for _, e := range ecos {
		res.Ecosystems = append(res.Ecosystems, *e)
	}
	slices.SortFunc(res.Ecosystems, func(a, b Ecosystem) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortStableFunc(res.Matches, func(a, b Match) int {
		return cmp.Or(cmp.Compare(a.Component.Name, b.Component.Name), cmp.Compare(a.Component.Version, b.Component.Version),
			cmp.Compare(a.Component.PURL, b.Component.PURL), -cmp.Compare(Rank(a.Severity), Rank(b.Severity)), cmp.Compare(a.ID, b.ID))
	})
	return res, nil
}

// affecting asks osv-scalibr's matcher which candidate records affect pkg.
// The matcher panics on a version its ecosystem's ordering rejects;
// versions are checked before, and a panic left is an error, not a crash.
func affecting(cands []*osvpb.Vulnerability, pkg *extractor.Package) (vs []*osvpb.Vulnerability, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the OSV matcher failed: %v", r)
		}
	}()
	return osvlocal.VulnerabilitiesAffectingPackage(cands, pkg), nil
}

// records counts the records for an ecosystem, compared as the matcher
// compares them (a release suffix counts only when both sides have one).
func (db *DB) records(eco osvecosystem.Parsed) int {
	n := 0
	for name, count := range db.info.Ecosystems {
		if p, err := osvecosystem.Parse(name); err == nil && p.Equal(eco) {
			n += count
		}
	}
	return n
}

func (db *DB) match(v *osvpb.Vulnerability, c Component, eco osvecosystem.Parsed, name string) Match {
	m := Match{ID: v.GetId(), Summary: summary(v), Component: c, Ecosystem: eco.String()}
	for _, id := range append(append([]string{}, v.GetAliases()...), v.GetUpstream()...) {
		if id != m.ID && !slices.Contains(m.Aliases, id) {
			m.Aliases = append(m.Aliases, id)
		}
	}
	for _, a := range v.GetAffected() {
		p, err := osvecosystem.Parse(a.GetPackage().GetEcosystem())
		if err != nil || !p.Equal(eco) || a.GetPackage().GetName() != name {
			continue
		}
		m.Ecosystem, m.Package = a.GetPackage().GetEcosystem(), a.GetPackage().GetName()
		m.FixedIn = fixedVersions(v, m.Ecosystem, m.Package)
		break
	}
	r := db.rate(v)
	m.Severity, m.CVSS = r.severity, r.cvss
	return m
}

// summary is the record's summary, else the first line of its details,
// cut at 200 characters.
func summary(v *osvpb.Vulnerability) string {
	s := v.GetSummary()
	if s == "" {
		s = v.GetDetails()
		for i, r := range s {
			if r == '\n' {
				s = s[:i]
				break
			}
		}
	}
	if r := []rune(s); len(r) > 200 {
		s = string(r[:199]) + "…"
	}
	return s
}
