package sbom

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/anchore/syft/syft/format/cyclonedxjson"
	"github.com/anchore/syft/syft/format/spdxjson"
)

// fastCase is a JSON document and the route fastJSON must take for it.
type fastCase struct {
	name  string
	data  []byte
	route fastRoute
}

// fastCases are every JSON test input of the package, plus the documents
// that must make the fast reader give up.
func fastCases(t testing.TB) []fastCase {
	t.Helper()
	var cases []fastCase
	add := func(name string, route fastRoute, data []byte) {
		cases = append(cases, fastCase{name, data, route})
	}
	for _, name := range []string{"proton-bridge-v1.6.3.bom.json", "proton-bridge-v1.8.0.bom.json"} {
		b, err := os.ReadFile(filepath.Join(sharedSBOMs, name))
		if err != nil {
			t.Fatal(err)
		}
		add(name, routeCycloneDX, b)
	}
	excerpt, err := os.ReadFile("testdata/proton-bridge-excerpt.cdx.json")
	if err != nil {
		t.Fatal(err)
	}
	add("excerpt", routeCycloneDX, excerpt)
	bom := cdxModel()
	for _, v := range []cdx.SpecVersion{cdx.SpecVersion1_2, cdx.SpecVersion1_3, cdx.SpecVersion1_4, cdx.SpecVersion1_5, cdx.SpecVersion1_6} {
		add("cdxModel-"+v.String(), routeCycloneDX, encodeCDX(t, bom, cdx.BOMFileFormatJSON, v))
	}
	s := syftModel(t)
	enc, err := cyclonedxjson.NewFormatEncoderWithConfig(cyclonedxjson.EncoderConfig{Version: "1.6"})
	add("syft-cyclonedx-1.6", routeCycloneDX, encodeWith(t, enc, err, s))
	spdxEnc, err := spdxjson.NewFormatEncoderWithConfig(spdxjson.EncoderConfig{Version: "2.3"})
	add("syft-spdx-2.3", routeSPDX, encodeWith(t, spdxEnc, err, s))
	add("spdxModel", routeSPDX, spdxModel(t))
	old, new := benchPair(t, 300)
	add("benchPair-old", routeCycloneDX, old)
	add("benchPair-new", routeCycloneDX, new)

	const head = `{"bomFormat": "CycloneDX", "specVersion": "1.5", `
	docs := []struct {
		name  string
		route fastRoute
		body  string
	}{
		// Read by the fast reader, exactly as cyclonedx-go reads them.
		{"escapes", routeCycloneDX, head + `"components": [{"bom-ref": "a\"b", "name": "caf\u00e9 \ud83d\ude00", "purl": "pkg:npm/a\/b@1", "version": "1\t2"}]}`},
		{"utf-8", routeCycloneDX, head + `"components": [{"name": "café", "supplier": {"name": "Zürich AG"}}]}`},
		{"invalid utf-8 in a value", routeCycloneDX, head + "\"components\": [{\"name\": \"a\xffb\"}]}"},
		{"nulls", routeCycloneDX, head + `"metadata": {"component": null, "tools": null}, "components": [{"name": "a", "version": null, "hashes": null, "licenses": null, "supplier": null, "components": null}], "dependencies": [{"ref": "x", "dependsOn": null}]}`},
		{"null metadata", routeCycloneDX, head + `"metadata": null, "components": null, "dependencies": null}`},
		{"unknown fields", routeCycloneDX, head + `"x-vendor": {"a": [1, 2.5e10, true, null, {"b": "c"}]}, "components": [{"name": "a", "x-y": [[[]]], "properties": [{"name": "p", "value": "v"}]}]}`},
		{"case-folded skipped field", routeCycloneDX, head + `"components": [{"name": "a", "CPE": "cpe:2.3:a:x:y:1:*:*:*:*:*:*:*", "Scope": "required"}]}`},
		{"tools both forms", routeCycloneDX, head + `"metadata": {"tools": [{"vendor": "v", "name": "n"}], "component": {"name": "fw", "components": [{"name": "inner"}]}}, "components": []}`},
		{"tools 1.5 form", routeCycloneDX, head + `"metadata": {"tools": {"components": [{"type": "application", "name": "syft"}]}}, "components": [{"name": "a"}]}`},
		{"license forms", routeCycloneDX, head + `"components": [{"name": "a", "licenses": [{"license": {"id": "MIT"}}, {"license": {"name": "Custom", "url": "u"}}, {"expression": "Apache-2.0 OR MIT"}, {"license": null}]}]}`},
		{"no name", routeCycloneDX, head + `"components": [{"bom-ref": "b", "purl": "pkg:npm/b@2"}, {"bom-ref": "c"}]}`},
		{"nested", routeCycloneDX, head + `"components": [{"name": "a", "components": [{"name": "b", "components": [{"name": "c"}]}]}]}`},
		{"version number", routeCycloneDX, head + `"version": 7, "serialNumber": "urn:uuid:x"}`},
		{"spdx annotations", routeSPDX, `{"spdxVersion": "SPDX-2.3", "annotations": [{"annotator": "Tool: x"}], "packages": []}`},

		// Left to the reference path.
		{"syntax error", routeReference, head + `"components": [{"name": "a",}]}`},
		{"trailing data", routeReference, head + `"components": []} {}`},
		{"control byte in string", routeReference, head + "\"components\": [{\"name\": \"a\x01\"}]}"},
		{"bad escape", routeReference, head + `"components": [{"name": "a\x"}]}`},
		{"type error in a read field", routeReference, head + `"components": [{"name": 1}]}`},
		{"type error in a skipped field", routeReference, head + `"components": [{"name": "a", "scope": 1}]}`},
		{"type error deep in a skipped field", routeReference, head + `"components": [{"name": "a", "properties": [{"name": ["x"]}]}]}`},
		{"int overflow", routeReference, head + `"version": 99999999999999999999}`},
		{"float for int", routeReference, head + `"version": 1.5}`},
		{"duplicate read field", routeReference, head + `"components": [{"name": "a", "name": "b"}]}`},
		{"case-folded read field", routeReference, head + `"components": [{"NAME": "a"}]}`},
		{"case-folded bomFormat", routeReference, `{"BOMFORMAT": "CycloneDX", "spdxVersion": "SPDX-2.3"}`},
		{"non-ascii key", routeReference, head + `"components": [{"namé": "a"}]}`},
		{"null component", routeReference, head + `"components": [null]}`},
		{"null dependsOn entry", routeReference, head + `"dependencies": [{"ref": "a", "dependsOn": [null]}]}`},
		{"bad tools", routeReference, head + `"metadata": {"tools": 5}}`},
		{"unknown version", routeReference, `{"bomFormat": "CycloneDX", "specVersion": "2.0"}`},
		{"other bomFormat", routeReference, `{"bomFormat": "SWID", "specVersion": "1.5"}`},
		{"neither", routeReference, `{"foo": 1}`},
		{"both formats", routeReference, head + `"spdxVersion": "SPDX-2.3"}`},
		{"deep nesting", routeReference, head + `"components": ` + nested(maxNesting+2) + `}`},
	}
	for _, d := range docs {
		add(d.name, d.route, []byte(d.body))
	}
	return cases
}

// nested is a components array nested depth levels.
func nested(depth int) string {
	var b bytes.Buffer
	for i := range depth {
		b.WriteString(`[{"name": "n`)
		b.WriteByte(byte('a' + i%26))
		b.WriteString(`", "components": `)
	}
	b.WriteString("[]")
	for range depth {
		b.WriteString("}]")
	}
	return b.String()
}

// sameDecode asserts the fast and reference paths agree on data: the same
// Document, or the same error.
func sameDecode(t *testing.T, data []byte) {
	t.Helper()
	want, wantErr := decodeJSONReference(string(data))
	got, gotErr := decodeJSON(string(data))
	if (wantErr == nil) != (gotErr == nil) || wantErr != nil && wantErr.Error() != gotErr.Error() {
		t.Fatalf("error %v, reference %v", gotErr, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("documents differ:\n got %+v\nwant %+v", got, want)
	}
}

func TestFastJSONMatchesReference(t *testing.T) {
	for _, tc := range fastCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			route, _, _ := fastJSON(string(tc.data))
			if route != tc.route {
				t.Errorf("route %d, want %d", route, tc.route)
			}
			sameDecode(t, tc.data)
		})
	}
}

// FuzzFastJSON holds the fast reader to the reference path on any input.
func FuzzFastJSON(f *testing.F) {
	for _, tc := range fastCases(f) {
		if len(tc.data) <= 8<<10 {
			f.Add(tc.data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 || data[0] != '{' {
			return
		}
		sameDecode(t, data)
	})
}

func TestFastPurlIdentity(t *testing.T) {
	tests := []struct {
		purl, want string
		fast       bool
	}{
		{"pkg:npm/%40scope/Pkg@1.0.0?repository_url=https%3A%2F%2Fx", "pkg:npm/%40scope/pkg", true},
		{"pkg:golang/github.com/ProtonMail/go-imap@v1.0.0", "pkg:golang/github.com/protonmail/go-imap", true},
		{"pkg:deb/debian/openssl@3.0.13-1?distro=debian-12&arch=amd64", "pkg:deb/debian/openssl?arch=amd64", true},
		{"pkg:maven/org.apache/Commons@1?type=jar&classifier=sources", "pkg:maven/org.apache/Commons?classifier=sources&type=jar", true},
		{"pkg:pypi/Foo_Bar@1", "pkg:pypi/foo-bar", true},
		{"pkg:rpm/redhat/bash@5.1-2.el9?arch=x86_64&epoch=1", "pkg:rpm/redhat/bash?arch=x86_64", true},
		{"pkg:generic/a%20b@1", "pkg:generic/a%20b", true},
		{"PKG:npm/a@1", "pkg:npm/a", false},                   // scheme case: reference
		{"pkg:npm/a@1#sub/path", "pkg:npm/a#sub/path", false}, // subpath: reference
		{"pkg:swift/github.com/x/y@1", "pkg:swift/github.com/x/y", false},
	}
	for _, tc := range tests {
		got, ok := fastPurlIdentity(tc.purl)
		if ok != tc.fast {
			t.Errorf("%s: fast %v, want %v", tc.purl, ok, tc.fast)
		}
		ref, err := purlIdentity(tc.purl)
		if err != nil || ref != tc.want {
			t.Errorf("%s: reference %q %v, want %q", tc.purl, ref, err, tc.want)
		}
		if ok && got != ref {
			t.Errorf("%s: fast %q, reference %q", tc.purl, got, ref)
		}
	}
	for _, bad := range []string{"pkg:npm/", "pkg:npm/@1", "pkg:/npm/a", "pkg:npm/a?x=1&x=2", "pkg:npm/a?1x=y", "pkg:npm/a%zz", "pkg:1npm/a", "pkg:npm"} {
		if id, ok := fastPurlIdentity(bad); ok {
			t.Errorf("%s: fast path gave %q, want it to decline", bad, id)
		}
	}
}

// FuzzPurlIdentity: whenever the fast path answers, the reference agrees.
func FuzzPurlIdentity(f *testing.F) {
	for _, s := range []string{
		"pkg:npm/%40scope/pkg@1.0.0?repository_url=https%3A%2F%2Fx", "pkg:deb/debian/openssl@3?arch=amd64&distro=d",
		"pkg:maven/org.a/b@1?type=jar&classifier=x", "pkg:pypi/Foo_Bar@1", "pkg:golang/github.com/A/B/v2@v2.0.0",
		"pkg:generic/a+b@1?checksum=sha256:ab", "pkg:github/Org/Repo@v1", "pkg:npm/a?k=&arch=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := fastPurlIdentity(s)
		if !ok {
			return
		}
		want, err := purlIdentity(s)
		if err != nil {
			t.Fatalf("%q: fast %q, reference error %v", s, got, err)
		}
		if got != want {
			t.Fatalf("%q: fast %q, reference %q", s, got, want)
		}
	})
}
