package evidence

import (
	"fmt"
	"time"
)

// Vulnerability severities, most severe first. SeverityUnknown is a match
// the database rates nowhere.
const (
	SeverityCritical = "critical"
	SeverityHigh     = "high"
	SeverityMedium   = "medium"
	SeverityLow      = "low"
	SeverityUnknown  = "unknown"
)

// Reasons a component was not matched against the database.
const (
	UncheckedNoEcosystem = "no-ecosystem" // no package URL naming an OSV ecosystem (pkg:generic, none)
	UncheckedNoVersion   = "no-version"   // an ecosystem but no version
	UncheckedBadVersion  = "bad-version"  // a version the ecosystem's ordering rejects
)

// Vulnerabilities is the SBOM's components matched against the
// vulnerability database imported with `wardgate vuln db import`.
type Vulnerabilities struct {
	// Database is the database matched against, with its age.
	Database VulnerabilityDatabase `json:"database"`
	// Components counts the SBOM components matched.
	Components int `json:"components"`
	// Ecosystems are the components' OSV ecosystems with the number of
	// records the database has for each: 0 means it cannot say anything
	// about those components.
	Ecosystems []VulnerabilityEcosystem `json:"ecosystems"`
	// Unchecked are the components that could not be matched, and why.
	Unchecked []UncheckedComponent `json:"unchecked"`
	// Matches are the known vulnerabilities of the components.
	Matches []VulnerabilityMatch `json:"matches"`
}

// VulnerabilityDatabase describes the database.
type VulnerabilityDatabase struct {
	// Format is "osv".
	Format string `json:"format"`
	// Digest is "sha256:<hex>" over the database's records.
	Digest string `json:"digest"`
	// Records counts the records.
	Records int `json:"records"`
	// BuiltAt is the newest record's modified time; the database is at
	// least as old as EvaluatedAt minus BuiltAt.
	BuiltAt time.Time `json:"builtAt"`
	// ImportedAt is when it was imported.
	ImportedAt time.Time `json:"importedAt"`
	// AgeSeconds is EvaluatedAt minus BuiltAt, in whole seconds.
	AgeSeconds int64 `json:"ageSeconds"`
}

// VulnerabilityEcosystem is one OSV ecosystem of the SBOM's components.
type VulnerabilityEcosystem struct {
	Name       string `json:"name"`
	Components int    `json:"components"`
	Records    int    `json:"records"`
}

// UncheckedComponent is a component that was not matched.
type UncheckedComponent struct {
	Component VulnerableComponent `json:"component"`
	// Reason is UncheckedNoEcosystem, UncheckedNoVersion or
	// UncheckedBadVersion.
	Reason string `json:"reason"`
}

// VulnerableComponent names an SBOM component in the vulnerabilities
// section.
type VulnerableComponent struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	PURL    string `json:"purl,omitempty"`
}

// VulnerabilityMatch is one database record that affects one component.
type VulnerabilityMatch struct {
	// ID is the record's ID; Aliases its aliases and upstream IDs.
	ID      string   `json:"id"`
	Aliases []string `json:"aliases"`
	// Summary is the record's summary or the start of its details.
	Summary string `json:"summary,omitempty"`
	// Severity is one of the Severity constants.
	Severity string `json:"severity"`
	// CVSS is the rating the severity came from, when it came from one.
	CVSS *CVSS `json:"cvss,omitempty"`
	// FixedIn are the versions the record names as fixed (may be empty).
	FixedIn []string `json:"fixedIn"`
	// Ecosystem and Package are what the record names (for an OS package
	// its source package: openssl for libssl3).
	Ecosystem string `json:"ecosystem"`
	Package   string `json:"package"`
	// Component is the affected SBOM component.
	Component VulnerableComponent `json:"component"`
}

// CVSS is a CVSS rating.
type CVSS struct {
	// Version is "2.0", "3.0", "3.1" or "4.0".
	Version string `json:"version"`
	// Vector is the vector string; Score its base score (0 to 10).
	Vector string  `json:"vector"`
	Score  float64 `json:"score"`
}

func (v *validator) vulnerabilities(vs *Vulnerabilities) {
	if vs == nil {
		return
	}
	d := vs.Database
	v.enum("vulnerabilities.database.format", d.Format, "osv")
	v.digest("vulnerabilities.database.digest", d.Digest, true)
	if d.Records < 0 {
		v.add("vulnerabilities.database.records", "must not be negative, got %d", d.Records)
	}
	if d.BuiltAt.IsZero() {
		v.add("vulnerabilities.database.builtAt", "required")
	}
	if d.ImportedAt.IsZero() {
		v.add("vulnerabilities.database.importedAt", "required")
	}
	if vs.Components < 0 {
		v.add("vulnerabilities.components", "must not be negative, got %d", vs.Components)
	}
	if vs.Ecosystems == nil {
		v.add("vulnerabilities.ecosystems", "required (may be empty)")
	}
	for i, e := range vs.Ecosystems {
		p := fmt.Sprintf("vulnerabilities.ecosystems[%d]", i)
		v.nonEmpty(p+".name", e.Name)
		if e.Components < 0 || e.Records < 0 {
			v.add(p, "counts must not be negative")
		}
	}
	if vs.Unchecked == nil {
		v.add("vulnerabilities.unchecked", "required (may be empty)")
	}
	for i, u := range vs.Unchecked {
		p := fmt.Sprintf("vulnerabilities.unchecked[%d]", i)
		v.nonEmpty(p+".component.name", u.Component.Name)
		v.enum(p+".reason", u.Reason, UncheckedNoEcosystem, UncheckedNoVersion, UncheckedBadVersion)
	}
	if vs.Matches == nil {
		v.add("vulnerabilities.matches", "required (may be empty)")
	}
	for i, m := range vs.Matches {
		p := fmt.Sprintf("vulnerabilities.matches[%d]", i)
		v.nonEmpty(p+".id", m.ID)
		if m.Aliases == nil {
			v.add(p+".aliases", "required (may be empty)")
		}
		v.enum(p+".severity", m.Severity, SeverityCritical, SeverityHigh, SeverityMedium, SeverityLow, SeverityUnknown)
		if c := m.CVSS; c != nil {
			v.enum(p+".cvss.version", c.Version, "2.0", "3.0", "3.1", "4.0")
			v.nonEmpty(p+".cvss.vector", c.Vector)
			if c.Score < 0 || c.Score > 10 {
				v.add(p+".cvss.score", "want 0 to 10, got %v", c.Score)
			}
		}
		if m.FixedIn == nil {
			v.add(p+".fixedIn", "required (may be empty)")
		}
		v.nonEmpty(p+".ecosystem", m.Ecosystem)
		v.nonEmpty(p+".package", m.Package)
		v.nonEmpty(p+".component.name", m.Component.Name)
	}
}
