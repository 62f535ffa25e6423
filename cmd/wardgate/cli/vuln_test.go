package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

const osvTestdata = "../../../vuln/testdata/osv"

// osvExport copies the real OSV records of vuln/testdata into a directory,
// as an export made at built: every record's modified time is built (the
// same advisories, exported that day).
func osvExport(t *testing.T, built time.Time) string {
	t.Helper()
	dir := t.TempDir()
	ents, err := os.ReadDir(osvTestdata)
	if err != nil {
		t.Fatal(err)
	}
	modified := regexp.MustCompile(`"modified": "[^"]*"`)
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(osvTestdata, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		b = modified.ReplaceAll(b, []byte(`"modified": "`+built.UTC().Format(time.RFC3339)+`"`))
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// importDB imports an export into a fresh state directory.
func importDB(t *testing.T, export string) string {
	t.Helper()
	state := t.TempDir()
	if code, out, errOut := run(t, "vuln", "db", "import", export, "--state", state); code != 0 {
		t.Fatalf("import: exit %d\n%s%s", code, out, errOut)
	}
	return state
}

// vulnTrust is fixtures/trust.yaml (key paths made absolute) with a
// vulnerabilities section.
func vulnTrust(t *testing.T, section string) string {
	t.Helper()
	return fixtureTrust(t, func(s string) string { return s + "\nvulnerabilities:\n" + section })
}

// originSBOM is the pump 2.4.0 vendor SBOM with libssl3's source package
// named, as syft names it for a real Alpine image (upstream=openssl): the
// pump fixture's image leaves it out.
func originSBOM(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(fx + "/sbom/infusion-pump-2.4.0.cdx.json")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), `pkg:apk/alpine/libssl3@3.1.4-r6?arch=x86_64\u0026`, `pkg:apk/alpine/libssl3@3.1.4-r6?arch=x86_64\u0026upstream=openssl\u0026`)
	if s == string(b) {
		t.Fatal("the pump SBOM no longer has libssl3 3.1.4-r6")
	}
	p := filepath.Join(t.TempDir(), "pump-origin.cdx.json")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

type vulnAdmit struct {
	Allow    bool `json:"allow"`
	Decision struct {
		Violations []struct{ Code, Rule, Severity, Message string } `json:"violations"`
		Warnings   []struct{ Code, Rule, Severity, Message string } `json:"warnings"`
	} `json:"decision"`
	Evidence struct {
		Vulnerabilities *struct {
			Database struct {
				Digest     string `json:"digest"`
				BuiltAt    string `json:"builtAt"`
				AgeSeconds int64  `json:"ageSeconds"`
			} `json:"database"`
			Matches []struct {
				ID        string            `json:"id"`
				Severity  string            `json:"severity"`
				FixedIn   []string          `json:"fixedIn"`
				Component map[string]string `json:"component"`
			} `json:"matches"`
		} `json:"vulnerabilities"`
	} `json:"evidence"`
}

func admitVuln(t *testing.T, state string, args []string) (int, vulnAdmit, string) {
	t.Helper()
	code, out, errOut := run(t, append(args, "--state", state)...)
	var r vulnAdmit
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("exit %d, not JSON: %v\n%s%s", code, err, out, errOut)
	}
	return code, r, out
}

// The infusion pump's Alpine packages through wardgate admit, matched
// against a database made from real advisories.
func TestAdmitKnownVulnerabilities(t *testing.T) {
	now := time.Now().UTC()
	fresh := importDB(t, osvExport(t, now.Add(-48*time.Hour)))
	stale := importDB(t, osvExport(t, now.Add(-40*24*time.Hour)))
	nextYear := now.AddDate(1, 0, 0).Format(time.DateOnly)
	yesterday := now.AddDate(0, 0, -1).Format(time.DateOnly)
	exception := func(until string) string {
		return "  deny_at: critical\n  exceptions:\n    - id: CVE-2024-5535\n      component: pkg:apk/alpine/libssl3\n      until: " + until +
			"\n      justification: vulnerable_code_not_in_execute_path\n      statement: the pump's TLS client never calls SSL_select_next_proto\n"
	}
	busybox := []string{"ALPINE-CVE-2023-42363", "ALPINE-CVE-2023-42364", "ALPINE-CVE-2023-42365", "ALPINE-CVE-2023-42366"}
	cases := []struct {
		name    string
		state   string
		section string
		args    []string
		code    int
		want    []string // violation messages must contain these, in order
		warn    string   // the one warning must contain this
		matches []string
	}{
		{name: "medium busybox advisories deny at medium (artifact scanned for drift too)", state: fresh, section: "  deny_at: medium\n", args: pumpArgs("2.4.0"), code: 1,
			want: []string{"component busybox 1.36.1-r15 has known vulnerability ALPINE-CVE-2023-42363 (CVE-2023-42363) (medium, CVSS 3.1 5.5), fixed in 1.36.1-r17; the trust configuration denies medium and above",
				"ALPINE-CVE-2023-42364", "ALPINE-CVE-2023-42365", "ALPINE-CVE-2023-42366"},
			matches: busybox},
		{name: "below deny_at: allowed, matches in the evidence", state: fresh, section: "  deny_at: critical\n", args: pumpArgs("2.4.0", "--no-scan"), code: 0, matches: busybox},
		{name: "critical openssl advisory denies", state: fresh, section: "  deny_at: critical\n", args: replace(pumpArgs("2.4.0", "--no-scan"), "--sbom", originSBOM(t)), code: 1,
			want:    []string{"component libssl3 3.1.4-r6 has known vulnerability ALPINE-CVE-2024-5535 (CVE-2024-5535) (critical, CVSS 3.1 9.1), fixed in 3.1.7-r0; the trust configuration denies critical and above; ask acme-infusion for a release with the fix"},
			matches: append(slices.Clone(busybox), "ALPINE-CVE-2024-5535")},
		{name: "an exception allows, with its justification", state: fresh, section: exception(nextYear), args: replace(pumpArgs("2.4.0", "--no-scan"), "--sbom", originSBOM(t)), code: 0,
			warn:    "accepted as not affected until " + nextYear + ": vulnerable_code_not_in_execute_path (the pump's TLS client never calls SSL_select_next_proto)",
			matches: append(slices.Clone(busybox), "ALPINE-CVE-2024-5535")},
		{name: "an expired exception denies", state: fresh, section: exception(yesterday), args: replace(pumpArgs("2.4.0", "--no-scan"), "--sbom", originSBOM(t)), code: 1,
			want:    []string{"ALPINE-CVE-2024-5535 (CVE-2024-5535) (critical, CVSS 3.1 9.1), fixed in 3.1.7-r0; the trust configuration denies critical and above; its exception in the trust configuration expired at " + yesterday},
			matches: append(slices.Clone(busybox), "ALPINE-CVE-2024-5535")},
		{name: "a stale database cannot decide", state: stale, section: "  deny_at: critical\n  max_db_age: 30d\n", args: pumpArgs("2.4.0", "--no-scan"), code: 2,
			want: []string{"the vulnerability database is 40 days old"}, matches: busybox},
		{name: "no database cannot decide", state: "", section: "  deny_at: critical\n", args: pumpArgs("2.4.0", "--no-scan"), code: 2,
			want: []string{"the trust configuration checks known vulnerabilities but no vulnerability database is imported"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			state := tc.state
			if state == "" {
				state = t.TempDir()
			}
			code, r, out := admitVuln(t, state, replace(tc.args, "--config", vulnTrust(t, tc.section)))
			if code != tc.code || r.Allow != (tc.code == 0) {
				t.Fatalf("exit %d allow %v, want %d:\n%s", code, r.Allow, tc.code, out)
			}
			if len(r.Decision.Violations) != len(tc.want) {
				t.Fatalf("violations = %+v, want %d", r.Decision.Violations, len(tc.want))
			}
			for i, w := range tc.want {
				v := r.Decision.Violations[i]
				if (v.Code != "known-vulnerability" && v.Code != "could-not-evaluate") || v.Rule != "vulnerability" || !strings.Contains(v.Message, w) {
					t.Errorf("violation %d = %+v, want one containing %q", i, v, w)
				}
			}
			if tc.warn != "" && (len(r.Decision.Warnings) != 1 || r.Decision.Warnings[0].Code != "known-vulnerability" || !strings.Contains(r.Decision.Warnings[0].Message, tc.warn)) {
				t.Errorf("warnings = %+v, want one containing %q", r.Decision.Warnings, tc.warn)
			}
			v := r.Evidence.Vulnerabilities
			if tc.matches == nil {
				if v != nil {
					t.Fatalf("evidence has a vulnerabilities section without a database: %+v", v)
				}
				return
			}
			var ids []string
			for _, m := range v.Matches {
				ids = append(ids, m.ID)
			}
			slices.Sort(ids)
			if !slices.Equal(ids, tc.matches) {
				t.Errorf("matches = %v, want %v", ids, tc.matches)
			}
			if v.Database.AgeSeconds < 47*3600 || !strings.HasPrefix(v.Database.Digest, "sha256:") {
				t.Errorf("database = %+v", v.Database)
			}
		})
	}
}

// The text result shows the database's age.
func TestAdmitShowsDatabaseAge(t *testing.T) {
	state := importDB(t, osvExport(t, time.Now().Add(-72*time.Hour)))
	args := slices.DeleteFunc(replace(pumpArgs("2.4.0", "--no-scan"), "--config", vulnTrust(t, "  deny_at: critical\n")), func(s string) bool { return s == "-o" || s == "json" })
	code, out, errOut := run(t, append(args, "--state", state)...)
	if code != 0 || !regexp.MustCompile(`\n  known vulnerabilities: 4 medium in 5 components \(vulnerability database sha256:[0-9a-f]{64}, newest record \S+, 3 days old\)\n`).MatchString(out) {
		t.Fatalf("exit %d:\n%s%s", code, out, errOut)
	}
}

func TestVulnDBImport(t *testing.T) {
	state := t.TempDir()
	code, out, errOut := run(t, "vuln", "db", "import", osvTestdata, "--state", state, "-o", "json")
	var info struct {
		Records    int            `json:"records"`
		Ecosystems map[string]int `json:"ecosystems"`
		BuiltAt    time.Time      `json:"builtAt"`
		AgeSeconds int64          `json:"ageSeconds"`
		Digest     string         `json:"digest"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &info) != nil {
		t.Fatalf("exit %d:\n%s%s", code, out, errOut)
	}
	built := time.Date(2026, 8, 27, 22, 18, 1, 0, time.UTC)
	if info.Records != 7 || info.Ecosystems["Alpine:v3.19"] != 6 || !info.BuiltAt.Equal(built) || info.AgeSeconds < int64(time.Since(built)/time.Second)-5 {
		t.Fatalf("info = %+v", info)
	}
	code, out, _ = run(t, "vuln", "db", "status", "--state", state)
	if code != 0 || !strings.HasPrefix(out, "database vulnerability database: 7 osv records from osv, newest record 2026-08-27T22:18:01Z (") ||
		!strings.Contains(out, info.Digest) || !strings.Contains(out, "  Alpine:v3.19             6 records\n") {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
	// A bad record: exit 2, the record named, the old database kept.
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "broken.json"), []byte(`{"id": "X-1"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = run(t, "vuln", "db", "import", bad, "--state", state)
	if code != 2 || !strings.Contains(errOut, "broken.json: vuln: invalid database: X-1: no modified time") {
		t.Fatalf("bad import: exit %d\n%s", code, errOut)
	}
	if code, out, _ := run(t, "vuln", "db", "status", "--state", state, "-o", "json"); code != 0 || !strings.Contains(out, info.Digest) {
		t.Fatalf("the database changed after a failed import: %s", out)
	}
	if code, _, errOut := run(t, "vuln", "db", "status", "--state", t.TempDir()); code != 2 || !strings.Contains(errOut, "no vulnerability database is imported") {
		t.Fatalf("status without a database: exit %d %s", code, errOut)
	}
}

func TestVulnScan(t *testing.T) {
	state := importDB(t, osvTestdata)
	at := "2026-09-15T00:00:00Z"
	scan := func(args ...string) (int, string, string) {
		return run(t, append([]string{"vuln", "scan", "--state", state, "--evaluation-time", at, "--cache-dir", t.TempDir()}, args...)...)
	}
	code, out, errOut := scan(fx+"/sbom/infusion-pump-2.4.0.cdx.json", "--fail-on", "high")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	golden(t, "vuln-scan", out)

	// The firmware itself, scanned with syft: the same busybox advisories.
	code, out, errOut = scan(fx+"/firmware/infusion-pump-2.4.0.bin", "--fail-on", "medium", "-o", "json")
	var rep struct {
		AgeSeconds int64 `json:"ageSeconds"`
		Failed     bool  `json:"failed"`
		Matches    []struct {
			ID string `json:"id"`
		} `json:"matches"`
	}
	if code != 1 || json.Unmarshal([]byte(out), &rep) != nil || !rep.Failed || len(rep.Matches) != 4 || rep.Matches[0].ID != "ALPINE-CVE-2023-42363" || rep.AgeSeconds != 1561319 {
		t.Fatalf("firmware scan: exit %d %+v\n%s%s", code, rep, out, errOut)
	}
	// libssl3 with its source package named: the critical openssl advisory.
	if code, out, _ := scan(originSBOM(t), "--fail-on", "critical"); code != 1 || !strings.Contains(out, "libssl3    3.1.4-r6    ALPINE-CVE-2024-5535   critical  9.1   3.1.7-r0") ||
		!strings.Contains(out, "FAIL: a match at or above critical") {
		t.Fatalf("critical: exit %d\n%s", code, out)
	}
	// Fail closed: a stale database, no database, unreadable input, a bad flag.
	if code, out, _ := scan(fx+"/sbom/infusion-pump-2.4.0.cdx.json", "--fail-on", "critical", "--max-db-age", "7d"); code != 2 || !strings.Contains(out, "cannot decide: the database is 18 days old, older than --max-db-age 168h0m0s") {
		t.Fatalf("stale: exit %d\n%s", code, out)
	}
	if code, _, errOut := run(t, "vuln", "scan", fx+"/sbom/infusion-pump-2.4.0.cdx.json", "--state", t.TempDir()); code != 2 || !strings.Contains(errOut, "no vulnerability database is imported") {
		t.Fatalf("no database: exit %d %s", code, errOut)
	}
	if code, _, errOut := scan(filepath.Join(t.TempDir(), "nope.cdx.json")); code != 2 || !strings.Contains(errOut, "nope.cdx.json") {
		t.Fatalf("missing input: exit %d %s", code, errOut)
	}
	if code, _, errOut := scan(fx+"/sbom/infusion-pump-2.4.0.cdx.json", "--fail-on", "severe"); code != 2 || !strings.Contains(errOut, "--fail-on severe: want one of low, medium, high, critical") {
		t.Fatalf("bad flag: exit %d %s", code, errOut)
	}
}
