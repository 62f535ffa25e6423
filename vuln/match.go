package vuln

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"

	"github.com/google/osv-scalibr/enricher/vulnmatch/osvlocal"
	"github.com/google/osv-scalibr/extractor"
	"github.com/google/osv-scalibr/inventory/osvecosystem"
	"github.com/google/osv-scalibr/semantic"
	osvpb "github.com/ossf/osv-schema/bindings/go/osvschema"
	"google.golang.org/protobuf/proto"
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
//
// Components are matched on GOMAXPROCS workers (one for fewer than 256
// components), each component by the worker its package name hashes to.
// osv-scalibr's matcher sorts a record's range events in place, so each
// worker matches against its own copies of the records (made on first use
// and kept: the database never changes once loaded).
func (db *DB) Match(ctx context.Context, comps []Component) (*Result, error) {
	res := &Result{Database: db.info, Components: len(comps), Ecosystems: []Ecosystem{}, Unchecked: []Unchecked{}, Matches: []Match{}}
	outs := make([]componentResult, len(comps))
	// A component goes to the worker of its (source) package name, so a
	// worker's copies are of the same records from one call to the next.
	n := len(db.workers)
	if len(comps) < 256 {
		n = 1
	}
	pkgs := make([]*extractor.Package, len(comps))
	owner := make([]int, len(comps))
	for i, c := range comps {
		if pkgs[i] = toPackage(c); pkgs[i] != nil && n > 1 {
			h := fnv.New32a()
			h.Write([]byte(pkgs[i].Name))
			owner[i] = int(h.Sum32() % uint32(n))
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cache := db.workers[w]
			cache.mu.Lock()
			defer cache.mu.Unlock()
			for i, c := range comps {
				if owner[i] != w {
					continue
				}
				if err := ctx.Err(); err != nil {
					errs[w] = err
					return
				}
				if outs[i], errs[w] = db.matchOne(c, pkgs[i], cache); errs[w] != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	ecos := map[string]*Ecosystem{}
	seen := map[[2]string]bool{}
	for i, o := range outs {
		c := comps[i]
		if o.eco.IsEmpty() {
			res.Unchecked = append(res.Unchecked, Unchecked{Component: c, Reason: ReasonNoEcosystem})
			continue
		}
		e := ecos[o.eco.String()]
		if e == nil {
			e = &Ecosystem{Name: o.eco.String(), Records: db.records(o.eco)}
			ecos[e.Name] = e
		}
		e.Components++
		if o.reason != "" {
			res.Unchecked = append(res.Unchecked, Unchecked{Component: c, Reason: o.reason})
			continue
		}
		for _, m := range o.matches {
			key := [2]string{c.PURL + "\x00" + c.Name + "\x00" + c.Version, m.ID}
			if !seen[key] {
				seen[key] = true
				res.Matches = append(res.Matches, m)
			}
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

// componentResult is one component's outcome: its ecosystem (empty when
// it has none), why it was not checked, or its matches.
type componentResult struct {
	eco     osvecosystem.Parsed
	reason  string
	matches []Match
}

// workerCache holds one worker's copies of the records it matched against;
// mu keeps concurrent Match calls off the same copies.
type workerCache struct {
	mu     sync.Mutex
	copies map[*osvpb.Vulnerability]*osvpb.Vulnerability
}

func (c *workerCache) get(v *osvpb.Vulnerability) *osvpb.Vulnerability {
	if x, ok := c.copies[v]; ok {
		return x
	}
	x := proto.Clone(v).(*osvpb.Vulnerability)
	c.copies[v] = x
	return x
}

func (db *DB) matchOne(c Component, pkg *extractor.Package, cache *workerCache) (componentResult, error) {
	if pkg == nil {
		return componentResult{}, nil
	}
	out := componentResult{eco: pkg.Ecosystem()}
	switch {
	case out.eco.IsEmpty():
		return out, nil
	case pkg.Version == "":
		out.reason = ReasonNoVersion
		return out, nil
	}
	if _, err := semantic.Parse(pkg.Version, string(out.eco.Ecosystem)); err != nil && !errors.Is(err, semantic.ErrUnsupportedEcosystem) {
		out.reason = ReasonBadVersion
		return out, nil
	}
	orig := db.byName[pkg.Name]
	if len(orig) == 0 {
		return out, nil
	}
	cands := make([]*osvpb.Vulnerability, len(orig))
	for i, v := range orig {
		cands[i] = cache.get(v)
	}
	vs, err := affecting(cands, pkg)
	if err != nil {
		return out, fmt.Errorf("vuln: match %s %s: %w", c.Name, c.Version, err)
	}
	for _, v := range vs {
		out.matches = append(out.matches, db.match(v, c, out.eco, pkg.Name))
	}
	return out, nil
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
