package sbom

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const sharedSBOMs = "../../shared/data/sbom"

// sharedDoc decodes a document from ../shared/data/sbom, skipping the test
// when the shared data is not there.
func sharedDoc(t testing.TB, name string) *Document {
	t.Helper()
	p := filepath.Join(sharedSBOMs, name)
	f, err := os.Open(p)
	if os.IsNotExist(err) {
		t.Skipf("../shared/data/sbom absent: %s not found (the shared data set is mounted beside the repository)", p)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := Decode(f)
	if err != nil {
		t.Fatalf("decode %s: %v", p, err)
	}
	return d
}

func TestDiffProtonBridgeExact(t *testing.T) {
	old := sharedDoc(t, "proton-bridge-v1.6.3.bom.json")
	new := sharedDoc(t, "proton-bridge-v1.8.0.bom.json")
	got := Diff(old, new)
	type fromTo struct{ from, to string }
	want := map[string]fromTo{
		"github.com/emersion/go-imap-quota": {"v0.0.0-20200423100218-dcfd1b7d2b41", "v0.0.0-20210203125329-619074823f3c"},
		"github.com/go-resty/resty/v2":      {"v2.3.0", "v2.6.0"},
		"github.com/miekg/dns":              {"v1.1.30", "v1.1.41"},
		"golang.org/x/net":                  {"v0.0.0-20200707034311-ab3426394381", "v0.0.0-20210405180319-a5a99cb37ef4"},
		"golang.org/x/sync":                 {"v0.0.0-20190911185100-cd5d95a43a6e", "v0.0.0-20210220032951-036812b2e83c"},
		"golang.org/x/sys":                  {"v0.0.0-20200323222414-85ca7c5b95cd", "v0.0.0-20210330210617-4fbd30eecc44"},
		"golang.org/x/term":                 {"v0.0.0-20201117132131-f5c789dd3221", "v0.0.0-20201126162022-7de9c90e9dd1"},
	}
	for _, c := range got.Changes {
		if c.Code != Upgraded {
			continue
		}
		w, ok := want[c.Name]
		if !ok || w.from != c.From || w.to != c.To {
			t.Errorf("unexpected upgrade %s %s -> %s", c.Name, c.From, c.To)
		}
		delete(want, c.Name)
	}
	for n := range want {
		t.Errorf("upgrade of %s not reported", n)
	}
	// Component-level, the diff is the seven upgrades and nothing else. The
	// documents' dependency graphs (cyclonedx-gomod's module graph) also
	// differ by three edges each way, which the upgrades explain:
	// resty 2.6.0 needs x/net, dns 1.1.41 needs x/sync, the newer x/net
	// needs x/term; checked against the raw dependsOn arrays.
	wantSummary := map[Code]int{Upgraded: 7, DependencyAdded: 3, DependencyRemoved: 3}
	for _, code := range DiffCodes {
		if got.Summary[code] != wantSummary[code] {
			t.Errorf("summary[%s] = %d, want %d", code, got.Summary[code], wantSummary[code])
		}
	}
	wantEdges := []string{
		"dependency-added pkg:golang/github.com/go-resty/resty/v2 -> pkg:golang/golang.org/x/net",
		"dependency-added pkg:golang/github.com/miekg/dns -> pkg:golang/golang.org/x/sync",
		"dependency-added pkg:golang/golang.org/x/net -> pkg:golang/golang.org/x/term",
		"dependency-removed pkg:golang/github.com/kataras/neffos -> pkg:golang/golang.org/x/sync",
		"dependency-removed pkg:golang/github.com/protonmail/go-crypto -> pkg:golang/golang.org/x/term",
		"dependency-removed pkg:golang/golang.org/x/net -> pkg:golang/github.com/protonmail/crypto",
	}
	var gotEdges []string
	for _, c := range got.Changes {
		if c.Code == DependencyAdded || c.Code == DependencyRemoved {
			gotEdges = append(gotEdges, string(c.Code)+" "+c.From+" -> "+c.To)
		}
	}
	if !slices.Equal(gotEdges, wantEdges) {
		t.Errorf("edges:\n%s\nwant:\n%s", strings.Join(gotEdges, "\n"), strings.Join(wantEdges, "\n"))
	}
	if n := len(Diff(old, old).Changes); n != 0 {
		t.Errorf("diff of a document with itself: %d changes", n)
	}
}

// comp builds a component for the code tests.
func comp(purl, version string, mods ...func(*Component)) Component {
	c := Component{Name: purlName(purl), Version: version, PURL: purl + "@" + version, Type: "library", ID: purl}
	for _, m := range mods {
		m(&c)
	}
	return c
}

func withHash(h string) func(*Component) {
	return func(c *Component) { c.Hashes = map[string]string{"SHA-256": h} }
}
func withLicenses(l ...string) func(*Component) {
	return func(c *Component) { c.Licenses = l }
}
func withSupplier(s string) func(*Component) {
	return func(c *Component) { c.Supplier = s }
}

func doc(edges []Dependency, cs ...Component) *Document {
	d := &Document{Format: FormatCycloneDXJSON, SpecVersion: "1.6", Components: cs}
	d.finish(edges)
	return d
}

func TestDiffCodes(t *testing.T) {
	tests := []struct {
		name     string
		old, new *Document
		want     []Change
	}{
		{
			name: "added",
			old:  doc(nil),
			new:  doc(nil, comp("pkg:npm/lodash", "4.17.21")),
			want: []Change{{Code: Added, Name: "lodash", PURL: "pkg:npm/lodash@4.17.21", To: "4.17.21", Identity: "pkg:npm/lodash"}},
		},
		{
			name: "removed",
			old:  doc(nil, comp("pkg:npm/lodash", "4.17.21")),
			new:  doc(nil),
			want: []Change{{Code: Removed, Name: "lodash", PURL: "pkg:npm/lodash@4.17.21", From: "4.17.21", Identity: "pkg:npm/lodash"}},
		},
		{
			name: "upgraded semver numerically, not as text",
			old:  doc(nil, comp("pkg:npm/lodash", "4.9.0")),
			new:  doc(nil, comp("pkg:npm/lodash", "4.17.21")),
			want: []Change{{Code: Upgraded, Name: "lodash", PURL: "pkg:npm/lodash@4.17.21", From: "4.9.0", To: "4.17.21", Identity: "pkg:npm/lodash"}},
		},
		{
			name: "downgraded debian with epoch",
			old:  doc(nil, comp("pkg:deb/debian/zlib1g", "1:1.2.13.dfsg-1")),
			new:  doc(nil, comp("pkg:deb/debian/zlib1g", "1.3.1-1")),
			want: []Change{{Code: Downgraded, Name: "zlib1g", PURL: "pkg:deb/debian/zlib1g@1.3.1-1", From: "1:1.2.13.dfsg-1", To: "1.3.1-1", Identity: "pkg:deb/debian/zlib1g"}},
		},
		{
			name: "hash-changed at same version",
			old:  doc(nil, comp("pkg:golang/example.com/m", "v1.0.0", withHash("aa"))),
			new:  doc(nil, comp("pkg:golang/example.com/m", "v1.0.0", withHash("bb"))),
			want: []Change{{Code: HashChanged, Name: "m", PURL: "pkg:golang/example.com/m@v1.0.0", From: "SHA-256:aa", To: "SHA-256:bb", Version: "v1.0.0", Identity: "pkg:golang/example.com/m"}},
		},
		{
			name: "license-changed",
			old:  doc(nil, comp("pkg:pypi/requests", "2.31.0", withLicenses("Apache-2.0"))),
			new:  doc(nil, comp("pkg:pypi/requests", "2.31.0", withLicenses("GPL-3.0-only"))),
			want: []Change{{Code: LicenseChanged, Name: "requests", PURL: "pkg:pypi/requests@2.31.0", From: "Apache-2.0", To: "GPL-3.0-only", Version: "2.31.0", Identity: "pkg:pypi/requests"}},
		},
		{
			name: "supplier-changed",
			old:  doc(nil, comp("pkg:rpm/redhat/openssl", "3.0.7-27.el9", withSupplier("Red Hat"))),
			new:  doc(nil, comp("pkg:rpm/redhat/openssl", "3.0.7-27.el9", withSupplier("Unknown Rebuilder"))),
			want: []Change{{Code: SupplierChanged, Name: "openssl", PURL: "pkg:rpm/redhat/openssl@3.0.7-27.el9", From: "Red Hat", To: "Unknown Rebuilder", Version: "3.0.7-27.el9", Identity: "pkg:rpm/redhat/openssl"}},
		},
		{
			name: "dependency-added and dependency-removed",
			old: doc([]Dependency{{From: "pkg:npm/a", To: "pkg:npm/b"}},
				comp("pkg:npm/a", "1.0.0"), comp("pkg:npm/b", "1.0.0"), comp("pkg:npm/c", "1.0.0")),
			new: doc([]Dependency{{From: "pkg:npm/a", To: "pkg:npm/c"}},
				comp("pkg:npm/a", "1.0.0"), comp("pkg:npm/b", "1.0.0"), comp("pkg:npm/c", "1.0.0")),
			want: []Change{
				{Code: DependencyAdded, Name: "a", PURL: "pkg:npm/a@1.0.0", From: "pkg:npm/a", To: "pkg:npm/c", Identity: "pkg:npm/a"},
				{Code: DependencyRemoved, Name: "a", PURL: "pkg:npm/a@1.0.0", From: "pkg:npm/a", To: "pkg:npm/b", Identity: "pkg:npm/a"},
			},
		},
		{
			name: "distro qualifier does not change identity, arch does",
			old: doc(nil, comp("pkg:deb/debian/libc6", "2.36-9", func(c *Component) { c.PURL = "pkg:deb/debian/libc6@2.36-9?arch=amd64&distro=debian-12.1" }),
				comp("pkg:deb/debian/libc6", "2.36-9", func(c *Component) { c.PURL = "pkg:deb/debian/libc6@2.36-9?arch=arm64"; c.ID = "x" })),
			new:  doc(nil, comp("pkg:deb/debian/libc6", "2.36-9", func(c *Component) { c.PURL = "pkg:deb/debian/libc6@2.36-9?distro=debian-12.5&arch=amd64" })),
			want: []Change{{Code: Removed, Name: "libc6", PURL: "pkg:deb/debian/libc6@2.36-9?arch=arm64", From: "2.36-9", Identity: "pkg:deb/debian/libc6?arch=arm64"}},
		},
		{
			name: "two versions side by side: one kept, one added",
			old:  doc(nil, comp("pkg:npm/lodash", "3.10.1")),
			new:  doc(nil, comp("pkg:npm/lodash", "3.10.1"), comp("pkg:npm/lodash", "4.17.21", func(c *Component) { c.ID = "l4" })),
			want: []Change{{Code: Added, Name: "lodash", PURL: "pkg:npm/lodash@4.17.21", To: "4.17.21", Identity: "pkg:npm/lodash"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Diff(tc.old, tc.new)
			// Refs are checked by TestDiffKeepsRefsOfDuplicates.
			for i := range got.Changes {
				got.Changes[i].Ref = ""
			}
			if !slices.Equal(got.Changes, tc.want) {
				t.Errorf("changes:\n got %+v\nwant %+v", got.Changes, tc.want)
			}
			total := 0
			for _, n := range got.Summary {
				total += n
			}
			if total != len(tc.want) || len(got.Summary) != len(DiffCodes) {
				t.Errorf("summary %v does not count %d changes over all %d codes", got.Summary, len(tc.want), len(DiffCodes))
			}
		})
	}
}

func TestDiffJSONShape(t *testing.T) {
	ch := Diff(doc(nil, comp("pkg:npm/lodash", "4.9.0")), doc(nil, comp("pkg:npm/lodash", "4.17.21")))
	b, err := json.Marshal(ch)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"summary":{"added":0,"dependency-added":0,"dependency-removed":0,"downgraded":0,"hash-changed":0,"license-changed":0,"removed":0,"supplier-changed":0,"upgraded":1},` +
		`"changes":[{"code":"upgraded","name":"lodash","purl":"pkg:npm/lodash@4.17.21","from":"4.9.0","to":"4.17.21","identity":"pkg:npm/lodash","ref":"pkg:npm/lodash"}]}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	empty, _ := json.Marshal(Diff(doc(nil), doc(nil)))
	if !strings.Contains(string(empty), `"changes":[]`) {
		t.Errorf("empty diff must have an empty changes array, got %s", empty)
	}
}

func TestDrift(t *testing.T) {
	claimed := doc(nil,
		comp("pkg:deb/debian/openssl", "3.0.13-1", withHash("aa")),
		comp("pkg:deb/debian/busybox", "1.36.1-3"),
		comp("pkg:npm/lodash", "4.17.21"),
	)
	observed := doc(nil,
		comp("pkg:deb/debian/openssl", "3.0.13-1", withHash("bb")),
		comp("pkg:deb/debian/busybox", "1.35.0-4"),
		comp("pkg:golang/github.com/evil/backdoor", "v0.1.0"),
		Component{Name: "/etc/passwd", Type: "file", ID: "f1"},
	)
	got := Drift(claimed, observed)
	// Refs are checked by TestDiffKeepsRefsOfDuplicates.
	for i := range got.Changes {
		got.Changes[i].Ref = ""
	}
	want := []Change{
		{Code: Undeclared, Name: "backdoor", PURL: "pkg:golang/github.com/evil/backdoor@v0.1.0", To: "v0.1.0", Identity: "pkg:golang/github.com/evil/backdoor"},
		{Code: Missing, Name: "lodash", PURL: "pkg:npm/lodash@4.17.21", From: "4.17.21", Identity: "pkg:npm/lodash"},
		{Code: VersionMismatch, Name: "busybox", PURL: "pkg:deb/debian/busybox@1.35.0-4", From: "1.36.1-3", To: "1.35.0-4", Identity: "pkg:deb/debian/busybox"},
		{Code: HashMismatch, Name: "openssl", PURL: "pkg:deb/debian/openssl@3.0.13-1", From: "SHA-256:aa", To: "SHA-256:bb", Version: "3.0.13-1", Identity: "pkg:deb/debian/openssl"},
	}
	if !slices.Equal(got.Changes, want) {
		t.Errorf("drift:\n got %+v\nwant %+v", got.Changes, want)
	}
	for _, code := range DriftCodes {
		if got.Summary[code] != 1 {
			t.Errorf("summary[%s] = %d, want 1", code, got.Summary[code])
		}
	}
	if n := len(Drift(claimed, claimed).Changes); n != 0 {
		t.Errorf("drift of a document against itself: %d changes", n)
	}
}

// TestDiffKeepsRefsOfDuplicates: two components of the same name and
// version (a vendored copy beside the system one) keep their bom-refs in
// the changes, so a reader can tell which changed.
func TestDiffKeepsRefsOfDuplicates(t *testing.T) {
	mk := func(ref, hash string) Component {
		return comp("pkg:generic/zlib", "1.3.1", func(c *Component) { c.ID = ref }, withHash(hash))
	}
	old := doc(nil, mk("zlib-system", "aa"), mk("zlib-vendored", "bb"))
	new := doc(nil, mk("zlib-system", "aa"), mk("zlib-vendored", "cc"))
	got := Diff(old, new)
	if len(got.Changes) != 1 || got.Changes[0].Code != HashChanged || got.Changes[0].Ref != "zlib-vendored" {
		t.Fatalf("changes: %+v", got.Changes)
	}
	removed := Diff(old, doc(nil, mk("zlib-system", "aa")))
	if len(removed.Changes) != 1 || removed.Changes[0].Code != Removed || removed.Changes[0].Ref != "zlib-vendored" {
		t.Fatalf("removal: %+v", removed.Changes)
	}
}
