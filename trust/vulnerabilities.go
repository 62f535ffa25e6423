package trust

import (
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// VulnerabilityPolicy is the vulnerabilities: section: which known
// vulnerabilities deny (reason code known-vulnerability), how old the
// vulnerability database may be, and the exceptions.
type VulnerabilityPolicy struct {
	// DenyAt is the lowest severity that denies: low, medium, high or
	// critical (default critical).
	DenyAt string
	// DenyUnknown makes a match the database rates nowhere deny too
	// (default true: an unrated vulnerability may be critical).
	DenyUnknown bool
	// MaxDBAge is how old the database may be (time since its newest
	// record); an older one cannot decide (default 30 days).
	MaxDBAge time.Duration
	// Exceptions are VEX-style "not affected" statements.
	Exceptions []VulnerabilityException
}

// VulnerabilityException says one vulnerability does not affect the
// release, until a date, and why.
type VulnerabilityException struct {
	// ID is the vulnerability's ID or one of its aliases (CVE-2024-5535
	// covers ALPINE-CVE-2024-5535).
	ID string
	// Component, when set, limits the exception to components with this
	// name or package URL (without version).
	Component string
	// Until is when the exception stops holding; UntilText is as written
	// (a date holds through that day, UTC).
	Until     time.Time
	UntilText string
	// Justification is an OpenVEX not_affected justification.
	Justification string
	// Statement says in words why the release is not affected.
	Statement string
}

// Vulnerability severities DenyAt accepts, least severe first.
var vulnerabilitySeverities = []string{"low", "medium", "high", "critical"}

// VEXJustifications are the OpenVEX justifications for not_affected.
var VEXJustifications = []string{
	"component_not_present",
	"vulnerable_code_not_present",
	"vulnerable_code_not_in_execute_path",
	"vulnerable_code_cannot_be_controlled_by_adversary",
	"inline_mitigations_already_exist",
}

// Defaults of the vulnerabilities: section.
const (
	DefaultVulnerabilityDenyAt = "critical"
	DefaultMaxDBAge            = 30 * 24 * time.Hour
)

func (d *decoder) vulnerabilities(n *yaml.Node, field string) *VulnerabilityPolicy {
	p := &VulnerabilityPolicy{DenyAt: DefaultVulnerabilityDenyAt, DenyUnknown: true, MaxDBAge: DefaultMaxDBAge}
	d.fields(n, field, map[string]func(*yaml.Node, string){
		"deny_at": func(n *yaml.Node, f string) {
			var s string
			d.str(n, f, &s)
			if s != "" && !slices.Contains(vulnerabilitySeverities, s) {
				d.errorf(n, f, "want one of %s, got %q", strings.Join(vulnerabilitySeverities, ", "), s)
				return
			}
			if s != "" {
				p.DenyAt = s
			}
		},
		"deny_unknown": func(n *yaml.Node, f string) { d.boolean(n, f, &p.DenyUnknown) },
		"max_db_age": func(n *yaml.Node, f string) {
			var age time.Duration = -1
			d.duration(n, f, &age)
			switch {
			case age == 0:
				d.errorf(n, f, "must be more than 0: a database of any age is not evidence")
			case age > 0:
				p.MaxDBAge = age
			}
		},
		"exceptions": func(n *yaml.Node, f string) {
			d.list(n, f, func(n *yaml.Node, f string) {
				e, ok := d.vulnerabilityException(n, f)
				if !ok {
					return
				}
				for _, o := range p.Exceptions {
					if o.ID == e.ID && o.Component == e.Component {
						d.errorf(n, f, "a second exception for %s%s", e.ID, map[bool]string{true: " in " + e.Component}[e.Component != ""])
						return
					}
				}
				p.Exceptions = append(p.Exceptions, e)
			})
		},
	})
	return p
}

func (d *decoder) vulnerabilityException(n *yaml.Node, f string) (VulnerabilityException, bool) {
	var e VulnerabilityException
	errs := len(d.errs)
	var untilNode *yaml.Node
	d.fields(n, f, map[string]func(*yaml.Node, string){
		"id":        func(n *yaml.Node, f string) { d.nonEmpty(n, f, &e.ID) },
		"component": func(n *yaml.Node, f string) { d.nonEmpty(n, f, &e.Component) },
		"until": func(n *yaml.Node, f string) {
			untilNode = n
			d.nonEmpty(n, f, &e.UntilText)
		},
		"justification": func(n *yaml.Node, f string) {
			d.nonEmpty(n, f, &e.Justification)
			if e.Justification != "" && !slices.Contains(VEXJustifications, e.Justification) {
				d.errorf(n, f, "want an OpenVEX justification (%s), got %q", strings.Join(VEXJustifications, ", "), e.Justification)
			}
		},
		"statement": func(n *yaml.Node, f string) { d.nonEmpty(n, f, &e.Statement) },
	})
	if n.Kind != yaml.MappingNode {
		return e, false
	}
	for _, req := range []struct{ name, v string }{{"id", e.ID}, {"until", e.UntilText}, {"justification", e.Justification}} {
		if req.v == "" {
			d.errorf(n, f+"."+req.name, "required; an exception names the vulnerability, when it ends and why the release is not affected")
		}
	}
	if e.Component != "" && strings.HasPrefix(e.Component, "pkg:") && strings.ContainsAny(e.Component, "@?#") {
		d.errorf(n, f+".component", "want a name or a package URL without version, qualifiers or subpath, got %q", e.Component)
	}
	if e.UntilText != "" {
		if t, err := time.Parse(time.DateOnly, e.UntilText); err == nil {
			e.Until = t.Add(24 * time.Hour) // through that day
		} else if t, err := time.Parse(time.RFC3339, e.UntilText); err == nil {
			e.Until = t.UTC()
		} else {
			d.errorf(untilNode, f+".until", "want a date (2027-06-30) or an RFC 3339 time, got %q", e.UntilText)
		}
	}
	return e, len(d.errs) == errs
}

// data is the section as OPA data (data.trust.vulnerabilities).
func (p *VulnerabilityPolicy) data() map[string]any {
	exc := make([]any, 0, len(p.Exceptions))
	for _, e := range p.Exceptions {
		exc = append(exc, map[string]any{
			"id": e.ID, "component": e.Component, "until": e.UntilText, "expires_ns": e.Until.UnixNano(),
			"justification": e.Justification, "statement": e.Statement,
		})
	}
	return map[string]any{
		"deny_at":       p.DenyAt,
		"deny_unknown":  p.DenyUnknown,
		"max_db_age":    formatDuration(p.MaxDBAge),
		"max_db_age_ns": p.MaxDBAge.Nanoseconds(),
		"exceptions":    exc,
	}
}
