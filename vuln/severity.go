package vuln

import (
	"strings"

	osvpb "github.com/ossf/osv-schema/bindings/go/osvschema"
	gocvss20 "github.com/pandatix/go-cvss/20"
	gocvss30 "github.com/pandatix/go-cvss/30"
	gocvss31 "github.com/pandatix/go-cvss/31"
	gocvss40 "github.com/pandatix/go-cvss/40"
)

// Severities, most severe first. SeverityUnknown is a match whose records
// rate it nowhere.
const (
	SeverityCritical = "critical"
	SeverityHigh     = "high"
	SeverityMedium   = "medium"
	SeverityLow      = "low"
	SeverityUnknown  = "unknown"
)

// Severities lists the severities, most severe first.
var Severities = []string{SeverityCritical, SeverityHigh, SeverityMedium, SeverityLow, SeverityUnknown}

// Rank orders severities: critical 4, high 3, medium 2, low 1, unknown and
// anything else 0.
func Rank(s string) int {
	switch s {
	case SeverityCritical:
		return 4
	case SeverityHigh:
		return 3
	case SeverityMedium:
		return 2
	case SeverityLow:
		return 1
	}
	return 0
}

// CVSS is the CVSS rating a severity came from.
type CVSS struct {
	// Version is "2.0", "3.0", "3.1" or "4.0".
	Version string `json:"version"`
	// Vector is the vector string as the record gives it.
	Vector string `json:"vector"`
	// Score is the base score go-cvss computes from Vector.
	Score float64 `json:"score"`
}

// rating is a severity and the CVSS it came from (nil for a label).
type rating struct {
	severity string
	cvss     *CVSS
}

// ownRating rates a record from its own fields: the highest CVSS base
// score among its severity entries (and its affected entries'), else a
// label in database_specific.severity (as GitHub's advisories carry).
func ownRating(v *osvpb.Vulnerability) (rating, bool) {
	sevs := v.GetSeverity()
	for _, a := range v.GetAffected() {
		sevs = append(sevs, a.GetSeverity()...)
	}
	var best *CVSS
	for _, s := range sevs {
		c := score(s)
		if c != nil && (best == nil || c.Score > best.Score) {
			best = c
		}
	}
	if best != nil {
		return rating{severity: fromScore(best.Score), cvss: best}, true
	}
	if ds := v.GetDatabaseSpecific(); ds != nil {
		if f, ok := ds.GetFields()["severity"]; ok {
			switch strings.ToLower(f.GetStringValue()) {
			case "critical":
				return rating{severity: SeverityCritical}, true
			case "high":
				return rating{severity: SeverityHigh}, true
			case "moderate", "medium":
				return rating{severity: SeverityMedium}, true
			case "low":
				return rating{severity: SeverityLow}, true
			}
		}
	}
	return rating{}, false
}

// score computes the base score of one severity entry with go-cvss; nil
// for a type it does not know or a vector it cannot parse.
func score(s *osvpb.Severity) *CVSS {
	vec := s.GetScore()
	switch s.GetType() {
	case osvpb.Severity_CVSS_V2:
		if v, err := gocvss20.ParseVector(vec); err == nil {
			return &CVSS{Version: "2.0", Vector: vec, Score: v.BaseScore()}
		}
	case osvpb.Severity_CVSS_V3:
		switch {
		case strings.HasPrefix(vec, "CVSS:3.1/"):
			if v, err := gocvss31.ParseVector(vec); err == nil {
				return &CVSS{Version: "3.1", Vector: vec, Score: v.BaseScore()}
			}
		case strings.HasPrefix(vec, "CVSS:3.0/"):
			if v, err := gocvss30.ParseVector(vec); err == nil {
				return &CVSS{Version: "3.0", Vector: vec, Score: v.BaseScore()}
			}
		}
	case osvpb.Severity_CVSS_V4:
		if v, err := gocvss40.ParseVector(vec); err == nil {
			return &CVSS{Version: "4.0", Vector: vec, Score: v.Score()}
		}
	}
	return nil
}

// fromScore is the CVSS qualitative rating of a base score (the same
// bands in CVSS 3.x and 4.0; 2.0 scores are rated with them too). A score
// of 0.0 (none) counts as low.
func fromScore(s float64) string {
	rate, err := gocvss31.Rating(s)
	if err != nil {
		return SeverityUnknown
	}
	if rate == "NONE" {
		return SeverityLow
	}
	return strings.ToLower(rate)
}

// rate is a record's rating: its own, else the highest of the records it
// names as aliases or upstream (a distribution's record often leaves the
// rating to the CVE record it derives from), else unknown.
func (db *DB) rate(v *osvpb.Vulnerability) rating {
	if r, ok := ownRating(v); ok {
		return r
	}
	best := rating{severity: SeverityUnknown}
	for _, id := range append(append([]string{}, v.GetAliases()...), v.GetUpstream()...) {
		for _, o := range db.byID[id] {
			if o.GetId() == v.GetId() {
				continue // itself (v may be a worker's copy)
			}
			r, ok := ownRating(o)
			if ok && (Rank(r.severity) > Rank(best.severity) || (Rank(r.severity) == Rank(best.severity) && better(r.cvss, best.cvss))) {
				best = r
			}
		}
	}
	return best
}

func better(a, b *CVSS) bool {
	return a != nil && (b == nil || a.Score > b.Score)
}
