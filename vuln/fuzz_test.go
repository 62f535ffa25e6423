package vuln

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	osvpb "github.com/ossf/osv-schema/bindings/go/osvschema"
)

// FuzzCheckRecord: checkRecord never panics, refuses with ErrInvalid, and
// what it accepts is compact JSON that parses to the same record and is
// accepted again.
func FuzzCheckRecord(f *testing.F) {
	files, err := filepath.Glob("testdata/osv/*.json")
	if err != nil || len(files) == 0 {
		f.Fatalf("no seeds: %v", err)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"id":"X","modified":"2026-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Debian:12","name":"a"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1:2"}]}]}]}`))
	now := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		v, compact, err := checkRecord(data, now)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		again := &osvpb.Vulnerability{}
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(compact, again); err != nil || again.GetId() != v.GetId() {
			t.Fatalf("compact form does not parse to the same record: %v", err)
		}
		if _, _, err := checkRecord(compact, now); err != nil {
			t.Fatalf("accepted record refused in compact form: %v", err)
		}
	})
}

// FuzzMatch: any component, against the real testdata records, matches
// without panicking, and is either checked (in an ecosystem) or listed as
// unchecked, never both and never lost.
func FuzzMatch(f *testing.F) {
	dir := f.TempDir()
	if _, err := Import(f.Context(), dir, []string{"testdata/osv"}, WithImportClock(func() time.Time { return time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC) })); err != nil {
		f.Fatal(err)
	}
	db, err := Open(dir)
	if err != nil {
		f.Fatal(err)
	}
	f.Add("busybox", "1.36.1-r15", "pkg:apk/alpine/busybox@1.36.1-r15?arch=x86_64&distro=alpine-3.19.1")
	f.Add("libssl3", "3.1.4-r6", "pkg:apk/alpine/libssl3@3.1.4-r6?upstream=openssl&distro=alpine-3.19.1")
	f.Add("openssl", "a:1", "pkg:deb/debian/openssl@a:1?distro=debian-12")
	f.Add("x", "", "pkg:npm/x")
	f.Fuzz(func(t *testing.T, name, version, purl string) {
		res, err := db.Match(t.Context(), []Component{{Name: name, Version: version, PURL: purl}})
		if err != nil {
			return // a matcher failure is an error, not a crash
		}
		in := 0
		for _, e := range res.Ecosystems {
			in += e.Components
		}
		unchecked := len(res.Unchecked)
		if in+unchecked < 1 || (unchecked == 1 && res.Unchecked[0].Reason == ReasonNoEcosystem && in != 0) {
			t.Fatalf("component lost or counted twice: %+v", res)
		}
		for _, m := range res.Matches {
			if m.ID == "" || m.Package == "" || Rank(m.Severity) == 0 && m.Severity != SeverityUnknown {
				t.Fatalf("bad match %+v", m)
			}
		}
	})
}
