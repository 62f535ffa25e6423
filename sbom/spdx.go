package sbom

import (
	"errors"
	"fmt"
	"strings"

	packageurl "github.com/anchore/packageurl-go"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx"
	"github.com/spdx/tools-golang/tagvalue"
)

var spdxVersions = map[string]bool{"SPDX-2.2": true, "SPDX-2.3": true}

func decodeSPDXJSON(data string, version string) (*Document, error) {
	if !spdxVersions[version] {
		return nil, fmt.Errorf("%w: SPDX JSON spdxVersion %q (want SPDX-2.2 or SPDX-2.3)", ErrUnsupportedVersion, version)
	}
	doc, err := spdxjson.Read(strings.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: SPDX JSON: %s", ErrMalformed, jsonErrorAt(data, err))
	}
	return fromSPDX(doc, FormatSPDXJSON, strings.TrimPrefix(version, "SPDX-"))
}

func decodeSPDXTagValue(data string) (*Document, error) {
	var version string
	for _, line := range strings.SplitN(data[:min(len(data), 4096)], "\n", 20) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "SPDXVersion:"); ok {
			version = strings.TrimSpace(v)
			break
		}
	}
	if !spdxVersions[version] {
		return nil, fmt.Errorf("%w: SPDX tag-value SPDXVersion %q (want SPDX-2.2 or SPDX-2.3)", ErrUnsupportedVersion, version)
	}
	doc, err := tagvalue.Read(strings.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: SPDX tag-value: %v", ErrMalformed, err)
	}
	return fromSPDX(doc, FormatSPDXTagValue, strings.TrimPrefix(version, "SPDX-"))
}

// checkSPDX reports the required fields (SPDX 2.3 section 6 and 7) that are
// missing, all at once.
func checkSPDX(doc *spdx.Document) error {
	var errs []error
	missing := func(where, field string) {
		errs = append(errs, fmt.Errorf("%w: %s has no %s", ErrMissingField, where, field))
	}
	if doc.SPDXIdentifier == "" {
		missing("document", "SPDXID")
	}
	if doc.DocumentName == "" {
		missing("document", "name")
	}
	if doc.DataLicense == "" {
		missing("document", "dataLicense")
	}
	if doc.CreationInfo == nil || len(doc.CreationInfo.Creators) == 0 {
		missing("document", "creationInfo.creators")
	}
	for i, p := range doc.Packages {
		if p == nil {
			continue
		}
		where := fmt.Sprintf("packages[%d]", i)
		if p.PackageName == "" {
			missing(where, "name")
		}
		if p.PackageSPDXIdentifier == "" {
			missing(where, "SPDXID")
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("SPDX: %w", errors.Join(errs...))
	}
	return nil
}

// spdxDependsOn maps SPDX relationship types to dependency edges; reverse
// says the edge points from RefB to RefA ("A DEPENDENCY_OF B": B depends on A).
var spdxDependsOn = map[string]bool{
	"DEPENDS_ON":             false,
	"DEPENDENCY_OF":          true,
	"RUNTIME_DEPENDENCY_OF":  true,
	"BUILD_DEPENDENCY_OF":    true,
	"DEV_DEPENDENCY_OF":      true,
	"OPTIONAL_DEPENDENCY_OF": true,
	"PROVIDED_DEPENDENCY_OF": true,
	"TEST_DEPENDENCY_OF":     true,
	"DEPENDENCY_MANIFEST_OF": true,
}

func fromSPDX(doc *spdx.Document, f Format, version string) (*Document, error) {
	if err := checkSPDX(doc); err != nil {
		return nil, err
	}
	d := &Document{Format: f, SpecVersion: version}
	// The package the document DESCRIBES is its subject, as CycloneDX's
	// metadata.component is, when there is exactly one.
	var described []string
	for _, r := range doc.Relationships {
		if r == nil {
			continue
		}
		if r.Relationship == "DESCRIBES" && string(r.RefA.ElementRefID) == string(doc.SPDXIdentifier) {
			described = append(described, string(r.RefB.ElementRefID))
		}
		if r.Relationship == "DESCRIBED_BY" && string(r.RefB.ElementRefID) == string(doc.SPDXIdentifier) {
			described = append(described, string(r.RefA.ElementRefID))
		}
	}
	subject := ""
	if len(described) == 1 {
		subject = "SPDXRef-" + described[0]
	}
	refNames := map[string]string{}
	for _, ol := range doc.OtherLicenses {
		if ol != nil && ol.LicenseName != "" && ol.LicenseName != "NOASSERTION" {
			refNames[ol.LicenseIdentifier] = ol.LicenseName
		}
	}
	for _, p := range doc.Packages {
		if p == nil {
			continue
		}
		c := spdxComponent(p)
		c.Licenses = normaliseLicenses(resolveLicenseRefs(c.Licenses, refNames))
		if c.ID == subject {
			d.Subject = &c
			continue
		}
		d.Components = append(d.Components, c)
	}
	// Files are components of type file, as CycloneDX has them.
	for _, f := range doc.Files {
		if f == nil || f.FileName == "" {
			continue
		}
		c := Component{ID: "SPDXRef-" + string(f.FileSPDXIdentifier), Name: normaliseFileName(f.FileName), Type: "file"}
		if len(f.Checksums) > 0 {
			c.Hashes = make(map[string]string, len(f.Checksums))
			for _, h := range f.Checksums {
				c.Hashes[normaliseHashAlg(string(h.Algorithm))] = strings.ToLower(strings.TrimSpace(h.Value))
			}
		}
		c.Licenses = normaliseLicenses(resolveLicenseRefs([]string{f.LicenseConcluded}, refNames))
		d.Components = append(d.Components, c)
	}
	var edges []Dependency
	for _, r := range doc.Relationships {
		if r == nil {
			continue
		}
		reverse, ok := spdxDependsOn[strings.ToUpper(r.Relationship)]
		if !ok {
			continue
		}
		a, b := "SPDXRef-"+string(r.RefA.ElementRefID), "SPDXRef-"+string(r.RefB.ElementRefID)
		if reverse {
			a, b = b, a
		}
		edges = append(edges, Dependency{From: a, To: b})
	}
	d.finish(edges)
	return d, nil
}

func spdxComponent(p *spdx.Package) Component {
	c := Component{
		ID:      "SPDXRef-" + string(p.PackageSPDXIdentifier),
		Name:    p.PackageName,
		Version: p.PackageVersion,
		Type:    strings.ToLower(strings.ReplaceAll(p.PrimaryPackagePurpose, "_", "-")),
	}
	for _, r := range p.PackageExternalReferences {
		if r != nil && strings.EqualFold(r.RefType, "purl") && c.PURL == "" {
			c.PURL = r.Locator
		}
	}
	if p.PackageSupplier != nil && p.PackageSupplier.Supplier != "NOASSERTION" {
		c.Supplier = normaliseParty(p.PackageSupplier.Supplier)
	}
	if len(p.PackageChecksums) > 0 {
		c.Hashes = make(map[string]string, len(p.PackageChecksums))
		for _, h := range p.PackageChecksums {
			c.Hashes[normaliseHashAlg(string(h.Algorithm))] = strings.ToLower(strings.TrimSpace(h.Value))
		}
	}
	lic := p.PackageLicenseDeclared
	if l := strings.ToUpper(lic); l == "" || l == "NOASSERTION" || l == "NONE" {
		lic = p.PackageLicenseConcluded
	}
	c.Licenses = normaliseLicenses([]string{lic})
	if c.PURL != "" {
		// SPDX has no group; CycloneDX puts the purl namespace there for
		// some ecosystems (Maven). Identity uses the purl, so only a
		// component without one relies on Group.
		if pu, err := packageurl.FromString(c.PURL); err == nil && pu.Type == "maven" {
			c.Group = pu.Namespace
		}
	}
	return c
}

func purlName(s string) string {
	if s == "" {
		return ""
	}
	p, err := packageurl.FromString(s)
	if err != nil {
		return ""
	}
	return p.Name
}
