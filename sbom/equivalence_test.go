package sbom

import (
	"bytes"
	"testing"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/anchore/syft/syft/artifact"
	"github.com/anchore/syft/syft/format/cyclonedxjson"
	"github.com/anchore/syft/syft/format/cyclonedxxml"
	"github.com/anchore/syft/syft/format/spdxjson"
	"github.com/anchore/syft/syft/format/spdxtagvalue"
	"github.com/anchore/syft/syft/pkg"
	syftsbom "github.com/anchore/syft/syft/sbom"
	"github.com/anchore/syft/syft/source"
	spdxjsonw "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx"
	"github.com/spdx/tools-golang/spdx/v2/common"
)

// syftModel is a small SBOM in syft's model: three Go modules, one of which
// depends on another, with licenses.
func syftModel(t testing.TB) *syftsbom.SBOM {
	t.Helper()
	mk := func(name, version, lic string) pkg.Package {
		p := pkg.Package{
			Name: name, Version: version, Type: pkg.GoModulePkg, Language: pkg.Go,
			PURL:     "pkg:golang/" + name + "@" + version,
			Licenses: pkg.NewLicenseSet(pkg.NewLicense(lic)),
		}
		p.SetID()
		return p
	}
	a := mk("github.com/miekg/dns", "v1.1.41", "BSD-3-Clause")
	b := mk("golang.org/x/net", "v0.0.0-20210405180319-a5a99cb37ef4", "BSD-3-Clause")
	c := mk("github.com/go-resty/resty/v2", "v2.6.0", "MIT")
	return &syftsbom.SBOM{
		Artifacts: syftsbom.Artifacts{Packages: pkg.NewCollection(a, b, c)},
		Relationships: []artifact.Relationship{
			{From: b, To: a, Type: artifact.DependencyOfRelationship}, // dns depends on x/net
		},
		Source:     source.Description{ID: "src", Name: "firmware", Version: "1.0", Metadata: source.DirectoryMetadata{Path: "/fw"}},
		Descriptor: syftsbom.Descriptor{Name: "wardgate-test", Version: "0"},
	}
}

func encodeWith(t testing.TB, enc syftsbom.FormatEncoder, err error, s *syftsbom.SBOM) []byte {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := enc.Encode(&buf, *s); err != nil {
		t.Fatalf("encode %s: %v", enc.ID(), err)
	}
	return buf.Bytes()
}

func mustDecode(t testing.TB, data []byte) *Document {
	t.Helper()
	d, err := Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("decode: %v\n%.400s", err, data)
	}
	return d
}

// TestSameContentSyftEncoders writes one syft model in five formats and
// versions with syft's encoders; every pair must diff empty.
func TestSameContentSyftEncoders(t *testing.T) {
	s := syftModel(t)
	cdx14, err := cyclonedxjson.NewFormatEncoderWithConfig(cyclonedxjson.EncoderConfig{Version: "1.4"})
	j14 := encodeWith(t, cdx14, err, s)
	cdx16, err := cyclonedxjson.NewFormatEncoderWithConfig(cyclonedxjson.EncoderConfig{Version: "1.6"})
	j16 := encodeWith(t, cdx16, err, s)
	xml15, err := cyclonedxxml.NewFormatEncoderWithConfig(cyclonedxxml.EncoderConfig{Version: "1.5"})
	x15 := encodeWith(t, xml15, err, s)
	spdx22, err := spdxjson.NewFormatEncoderWithConfig(spdxjson.EncoderConfig{Version: "2.2"})
	s22 := encodeWith(t, spdx22, err, s)
	spdx23, err := spdxjson.NewFormatEncoderWithConfig(spdxjson.EncoderConfig{Version: "2.3"})
	s23 := encodeWith(t, spdx23, err, s)
	tv23, err := spdxtagvalue.NewFormatEncoderWithConfig(spdxtagvalue.EncoderConfig{Version: "2.3"})
	t23 := encodeWith(t, tv23, err, s)

	docs := []struct {
		name    string
		data    []byte
		format  Format
		version string
	}{
		{"cyclonedx-json-1.4", j14, FormatCycloneDXJSON, "1.4"},
		{"cyclonedx-json-1.6", j16, FormatCycloneDXJSON, "1.6"},
		{"cyclonedx-xml-1.5", x15, FormatCycloneDXXML, "1.5"},
		{"spdx-json-2.2", s22, FormatSPDXJSON, "2.2"},
		{"spdx-json-2.3", s23, FormatSPDXJSON, "2.3"},
		{"spdx-tag-value-2.3", t23, FormatSPDXTagValue, "2.3"},
	}
	base := mustDecode(t, j14)
	if len(base.Components) != 3 || len(base.Dependencies) != 1 {
		t.Fatalf("base: %d components, %d edges; want 3, 1: %+v", len(base.Components), len(base.Dependencies), base)
	}
	for _, d := range docs {
		t.Run(d.name, func(t *testing.T) {
			got := mustDecode(t, d.data)
			if got.Format != d.format || got.SpecVersion != d.version {
				t.Errorf("detected %s %s, want %s %s", got.Format, got.SpecVersion, d.format, d.version)
			}
			if ch := Diff(base, got); len(ch.Changes) != 0 {
				t.Errorf("diff against cyclonedx-json-1.4: %+v", ch.Changes)
			}
			if ch := Diff(got, base); len(ch.Changes) != 0 {
				t.Errorf("reverse diff: %+v", ch.Changes)
			}
		})
	}
}

// cdxModel is a CycloneDX BOM with everything Diff compares: hashes,
// licenses (one an AND expression), a supplier and dependency edges.
func cdxModel() *cdx.BOM {
	bom := cdx.NewBOM()
	bom.Metadata = &cdx.Metadata{Component: &cdx.Component{BOMRef: "root", Type: cdx.ComponentTypeFirmware, Name: "infusion-pump", Version: "4.2.0"}}
	comps := []cdx.Component{
		{
			BOMRef: "openssl", Type: cdx.ComponentTypeLibrary, Name: "openssl", Version: "3.0.13-1~deb12u1",
			PackageURL: "pkg:deb/debian/openssl@3.0.13-1~deb12u1?arch=amd64&distro=debian-12",
			Supplier:   &cdx.OrganizationalEntity{Name: "Debian"},
			Hashes:     &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA256, Value: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}},
			Licenses:   &cdx.Licenses{{License: &cdx.License{ID: "Apache-2.0"}}},
		},
		{
			BOMRef: "zlib", Type: cdx.ComponentTypeLibrary, Name: "zlib1g", Version: "1:1.2.13.dfsg-1",
			PackageURL: "pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=amd64",
			Hashes:     &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA256, Value: "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"}},
			Licenses:   &cdx.Licenses{{Expression: "Zlib AND MIT"}},
		},
		{
			BOMRef: "requests", Type: cdx.ComponentTypeLibrary, Name: "requests", Version: "2.31.0",
			PackageURL: "pkg:pypi/requests@2.31.0",
			Licenses:   &cdx.Licenses{{License: &cdx.License{ID: "Apache-2.0"}}},
		},
	}
	bom.Components = &comps
	bom.Dependencies = &[]cdx.Dependency{
		{Ref: "openssl", Dependencies: &[]string{"zlib"}},
		{Ref: "requests", Dependencies: &[]string{"openssl"}},
	}
	return bom
}

func encodeCDX(t testing.TB, bom *cdx.BOM, f cdx.BOMFileFormat, v cdx.SpecVersion) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := cdx.NewBOMEncoder(&buf, f).EncodeVersion(bom, v); err != nil {
		t.Fatalf("encode %v %v: %v", f, v, err)
	}
	return buf.Bytes()
}

// spdxModel is cdxModel written as SPDX 2.3 with tools-golang.
func spdxModel(t testing.TB) []byte {
	t.Helper()
	purl := func(s string) []*spdx.PackageExternalReference {
		return []*spdx.PackageExternalReference{{Category: "PACKAGE-MANAGER", RefType: "purl", Locator: s}}
	}
	doc := &spdx.Document{
		SPDXVersion: "SPDX-2.3", DataLicense: "CC0-1.0", SPDXIdentifier: "DOCUMENT", DocumentName: "infusion-pump",
		DocumentNamespace: "https://wardgate.example/spdx/infusion-pump-4.2.0",
		CreationInfo:      &spdx.CreationInfo{Creators: []common.Creator{{CreatorType: "Tool", Creator: "wardgate-test"}}, Created: "2026-01-01T00:00:00Z"},
		Packages: []*spdx.Package{
			{PackageName: "infusion-pump", PackageSPDXIdentifier: "root", PackageVersion: "4.2.0", PackageDownloadLocation: "NOASSERTION"},
			{
				PackageName: "openssl", PackageSPDXIdentifier: "openssl", PackageVersion: "3.0.13-1~deb12u1", PackageDownloadLocation: "NOASSERTION",
				PackageSupplier:           &common.Supplier{SupplierType: "Organization", Supplier: "Debian"},
				PackageChecksums:          []common.Checksum{{Algorithm: common.SHA256, Value: "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"}},
				PackageLicenseDeclared:    "Apache-2.0",
				PackageExternalReferences: purl("pkg:deb/debian/openssl@3.0.13-1~deb12u1?distro=debian-12&arch=amd64"),
			},
			{
				PackageName: "zlib1g", PackageSPDXIdentifier: "zlib", PackageVersion: "1:1.2.13.dfsg-1", PackageDownloadLocation: "NOASSERTION",
				PackageChecksums:          []common.Checksum{{Algorithm: common.SHA256, Value: "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"}},
				PackageLicenseDeclared:    "MIT AND Zlib",
				PackageExternalReferences: purl("pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=amd64"),
			},
			{
				PackageName: "requests", PackageSPDXIdentifier: "requests", PackageVersion: "2.31.0", PackageDownloadLocation: "NOASSERTION",
				PackageLicenseConcluded:   "Apache-2.0",
				PackageExternalReferences: purl("pkg:pypi/requests@2.31.0"),
			},
		},
		Relationships: []*spdx.Relationship{
			{RefA: common.MakeDocElementID("", "DOCUMENT"), RefB: common.MakeDocElementID("", "root"), Relationship: "DESCRIBES"},
			{RefA: common.MakeDocElementID("", "openssl"), RefB: common.MakeDocElementID("", "zlib"), Relationship: "DEPENDS_ON"},
			{RefA: common.MakeDocElementID("", "openssl"), RefB: common.MakeDocElementID("", "requests"), Relationship: "DEPENDENCY_OF"},
		},
	}
	var buf bytes.Buffer
	if err := spdxjsonw.Write(doc, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestSameContentCycloneDXVersionsAndSPDX writes one model with
// cyclonedx-go at several versions, JSON and XML, and as SPDX 2.3: no diff.
func TestSameContentCycloneDXVersionsAndSPDX(t *testing.T) {
	bom := cdxModel()
	base := mustDecode(t, encodeCDX(t, bom, cdx.BOMFileFormatJSON, cdx.SpecVersion1_6))
	if len(base.Components) != 3 || len(base.Dependencies) != 2 || base.Subject == nil || base.Subject.Name != "infusion-pump" {
		t.Fatalf("base decoded as %+v", base)
	}
	cases := []struct {
		name    string
		data    []byte
		version string
	}{
		{"json-1.2", encodeCDX(t, bom, cdx.BOMFileFormatJSON, cdx.SpecVersion1_2), "1.2"},
		{"json-1.4", encodeCDX(t, bom, cdx.BOMFileFormatJSON, cdx.SpecVersion1_4), "1.4"},
		{"xml-1.3", encodeCDX(t, bom, cdx.BOMFileFormatXML, cdx.SpecVersion1_3), "1.3"},
		{"xml-1.6", encodeCDX(t, bom, cdx.BOMFileFormatXML, cdx.SpecVersion1_6), "1.6"},
		{"spdx-2.3", spdxModel(t), "2.3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := mustDecode(t, tc.data)
			if got.SpecVersion != tc.version {
				t.Errorf("spec version %q, want %q", got.SpecVersion, tc.version)
			}
			if ch := Diff(base, got); len(ch.Changes) != 0 {
				t.Errorf("diff: %+v", ch.Changes)
			}
			if ch := Diff(got, base); len(ch.Changes) != 0 {
				t.Errorf("reverse diff: %+v", ch.Changes)
			}
		})
	}
}
