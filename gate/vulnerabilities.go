package gate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wardgate/wardgate/evidence"
	"github.com/wardgate/wardgate/vuln"
)

// VulnerabilityMatcher matches SBOM components against a vulnerability
// database (*vuln.DB).
type VulnerabilityMatcher interface {
	Match(ctx context.Context, comps []vuln.Component) (*vuln.Result, error)
}

var _ VulnerabilityMatcher = (*vuln.DB)(nil)

// WithVulnerabilities matches every evaluated SBOM against m and puts the
// matches, and the database's age, into the evidence (section
// vulnerabilities). Without it the section stays empty, and a trust
// configuration that checks known vulnerabilities denies.
func WithVulnerabilities(m VulnerabilityMatcher) Option {
	return func(g *Gate) error {
		if m == nil {
			return errors.New("gate: nil vulnerability matcher")
		}
		g.vulns = m
		return nil
	}
}

// vulnerabilityEvidence fills ev.Vulnerabilities from the SBOM; nothing
// without a matcher or an SBOM.
func (g *Gate) vulnerabilityEvidence(ctx context.Context, ev *evidence.Evidence, now time.Time) error {
	if g.vulns == nil || ev.SBOM == nil {
		return nil
	}
	comps := make([]vuln.Component, 0, len(ev.SBOM.Components))
	for _, c := range ev.SBOM.Components {
		comps = append(comps, vuln.Component{Name: c.Name, Version: c.Version, PURL: c.PURL})
	}
	res, err := g.vulns.Match(ctx, comps)
	if err != nil {
		return fmt.Errorf("vulnerabilities: %w", err)
	}
	ev.Vulnerabilities = VulnerabilityEvidence(res, now)
	return nil
}

// VulnerabilityEvidence converts a match result into the evidence section,
// with the database's age at now.
func VulnerabilityEvidence(res *vuln.Result, now time.Time) *evidence.Vulnerabilities {
	db := res.Database
	out := &evidence.Vulnerabilities{
		Database: evidence.VulnerabilityDatabase{Format: db.Format, Digest: db.Digest, Records: db.Records, BuiltAt: db.BuiltAt, ImportedAt: db.ImportedAt,
			AgeSeconds: int64(db.Age(now) / time.Second)},
		Components: res.Components,
		Ecosystems: make([]evidence.VulnerabilityEcosystem, 0, len(res.Ecosystems)),
		Unchecked:  make([]evidence.UncheckedComponent, 0, len(res.Unchecked)),
		Matches:    make([]evidence.VulnerabilityMatch, 0, len(res.Matches)),
	}
	for _, e := range res.Ecosystems {
		out.Ecosystems = append(out.Ecosystems, evidence.VulnerabilityEcosystem{Name: e.Name, Components: e.Components, Records: e.Records})
	}
	for _, u := range res.Unchecked {
		out.Unchecked = append(out.Unchecked, evidence.UncheckedComponent{Component: vulnerableComponent(u.Component), Reason: u.Reason})
	}
	for _, m := range res.Matches {
		em := evidence.VulnerabilityMatch{ID: m.ID, Aliases: m.Aliases, Summary: m.Summary, Severity: m.Severity, FixedIn: m.FixedIn,
			Ecosystem: m.Ecosystem, Package: m.Package, Component: vulnerableComponent(m.Component)}
		if em.Aliases == nil {
			em.Aliases = []string{}
		}
		if em.FixedIn == nil {
			em.FixedIn = []string{}
		}
		if c := m.CVSS; c != nil {
			em.CVSS = &evidence.CVSS{Version: c.Version, Vector: c.Vector, Score: c.Score}
		}
		out.Matches = append(out.Matches, em)
	}
	return out
}

func vulnerableComponent(c vuln.Component) evidence.VulnerableComponent {
	return evidence.VulnerableComponent{Name: c.Name, Version: c.Version, PURL: c.PURL}
}
