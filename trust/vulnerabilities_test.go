package trust_test

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/trust"
)

func TestVulnerabilities(t *testing.T) {
	c := load(t, writeConfig(t, `version: 1
vulnerabilities:
  deny_at: high
  max_db_age: 7d
  exceptions:
    - id: CVE-2024-5535
      component: pkg:apk/alpine/libssl3
      until: 2027-06-30
      justification: vulnerable_code_not_in_execute_path
      statement: the pump never negotiates ALPN or NPN
    - id: ALPINE-CVE-2023-42366
      until: 2027-01-01T08:00:00+01:00
      justification: vulnerable_code_not_present
`+goodProduct))
	want := &trust.VulnerabilityPolicy{DenyAt: "high", DenyUnknown: true, MaxDBAge: 7 * 24 * time.Hour, Exceptions: []trust.VulnerabilityException{
		{ID: "CVE-2024-5535", Component: "pkg:apk/alpine/libssl3", Until: time.Date(2027, 7, 1, 0, 0, 0, 0, time.UTC), UntilText: "2027-06-30",
			Justification: "vulnerable_code_not_in_execute_path", Statement: "the pump never negotiates ALPN or NPN"},
		{ID: "ALPINE-CVE-2023-42366", Until: time.Date(2027, 1, 1, 7, 0, 0, 0, time.UTC), UntilText: "2027-01-01T08:00:00+01:00",
			Justification: "vulnerable_code_not_present"},
	}}
	if !reflect.DeepEqual(c.Vulnerabilities, want) {
		t.Fatalf("vulnerabilities:\n got %+v\nwant %+v", c.Vulnerabilities, want)
	}
	d := c.Data()["vulnerabilities"].(map[string]any)
	e := d["exceptions"].([]any)[0].(map[string]any)
	if d["deny_at"] != "high" || d["max_db_age"] != "7d" || d["max_db_age_ns"] != int64(7*24*time.Hour) || d["deny_unknown"] != true ||
		e["expires_ns"] != time.Date(2027, 7, 1, 0, 0, 0, 0, time.UTC).UnixNano() || e["until"] != "2027-06-30" || e["component"] != "pkg:apk/alpine/libssl3" {
		t.Fatalf("data: %v", d)
	}
}

func TestVulnerabilitiesDefaults(t *testing.T) {
	c := load(t, writeConfig(t, "version: 1\nvulnerabilities: {}\n"+goodProduct))
	if want := (&trust.VulnerabilityPolicy{DenyAt: "critical", DenyUnknown: true, MaxDBAge: 30 * 24 * time.Hour}); !reflect.DeepEqual(c.Vulnerabilities, want) {
		t.Fatalf("defaults = %+v", c.Vulnerabilities)
	}
	// Without the section nothing changes: no data key, the same digest as before.
	without := load(t, writeConfig(t, "version: 1\n"+goodProduct))
	if without.Vulnerabilities != nil || without.Data()["vulnerabilities"] != nil || without.Digest() == c.Digest() {
		t.Fatalf("without the section: %+v", without.Vulnerabilities)
	}
}

func TestVulnerabilitiesErrors(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"deny_at", "vulnerabilities:\n  deny_at: severe\n",
			`trust.yaml:3: vulnerabilities.deny_at: want one of low, medium, high, critical, got "severe"`},
		{"zero age", "vulnerabilities:\n  max_db_age: 0d\n",
			`trust.yaml:3: vulnerabilities.max_db_age: must be more than 0: a database of any age is not evidence`},
		{"unknown field", "vulnerabilities:\n  fail_on: high\n",
			`trust.yaml:3: vulnerabilities.fail_on: unknown field; want one of deny_at, deny_unknown, exceptions, max_db_age`},
		{"justification", "vulnerabilities:\n  exceptions:\n    - id: CVE-1\n      until: 2027-01-01\n      justification: we checked\n",
			`trust.yaml:6: vulnerabilities.exceptions[0].justification: want an OpenVEX justification (component_not_present, vulnerable_code_not_present, vulnerable_code_not_in_execute_path, vulnerable_code_cannot_be_controlled_by_adversary, inline_mitigations_already_exist), got "we checked"`},
		{"no until", "vulnerabilities:\n  exceptions:\n    - id: CVE-1\n      justification: component_not_present\n",
			`trust.yaml:4: vulnerabilities.exceptions[0].until: required; an exception names the vulnerability, when it ends and why the release is not affected`},
		{"bad until", "vulnerabilities:\n  exceptions:\n    - id: CVE-1\n      until: next spring\n      justification: component_not_present\n",
			`trust.yaml:5: vulnerabilities.exceptions[0].until: want a date (2027-06-30) or an RFC 3339 time, got "next spring"`},
		{"versioned component", "vulnerabilities:\n  exceptions:\n    - id: CVE-1\n      component: pkg:apk/alpine/busybox@1.36.1-r15\n      until: 2027-01-01\n      justification: component_not_present\n",
			`trust.yaml:4: vulnerabilities.exceptions[0].component: want a name or a package URL without version, qualifiers or subpath, got "pkg:apk/alpine/busybox@1.36.1-r15"`},
		{"duplicate", "vulnerabilities:\n  exceptions:\n    - {id: CVE-1, until: 2027-01-01, justification: component_not_present}\n    - {id: CVE-1, until: 2028-01-01, justification: component_not_present}\n",
			`trust.yaml:5: vulnerabilities.exceptions[1]: a second exception for CVE-1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, "version: 1\n"+tc.body+strings.TrimPrefix(goodProduct, "\n"))
			_, err := trust.Load(path)
			if !errors.Is(err, trust.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if got := strings.ReplaceAll(err.Error(), filepath.Dir(path)+"/", ""); got != tc.want {
				t.Fatalf("err:\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}
