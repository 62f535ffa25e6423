package sbom

import (
	"bytes"
	"fmt"
	"strings"

	cdx "github.com/CycloneDX/cyclonedx-go"
)

// cyclonedxVersions are the spec versions Decode reads. JSON exists from 1.2.
var cyclonedxVersions = map[string]bool{"1.2": true, "1.3": true, "1.4": true, "1.5": true, "1.6": true, "1.7": true}

const cyclonedxNSPrefix = "http://cyclonedx.org/schema/bom/"

func decodeCycloneDXJSON(data []byte, version string) (*Document, error) {
	if !cyclonedxVersions[version] {
		return nil, fmt.Errorf("%w: CycloneDX JSON specVersion %q (want 1.2 to 1.7)", ErrUnsupportedVersion, version)
	}
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(data), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		return nil, fmt.Errorf("%w: CycloneDX JSON: %s", ErrMalformed, jsonErrorAt(data, err))
	}
	return fromCycloneDX(&bom, FormatCycloneDXJSON, version)
}

func decodeCycloneDXXML(data []byte) (*Document, error) {
	name, ns, err := xmlRootNamespace(data)
	if err != nil {
		return nil, fmt.Errorf("%w: XML: %v", ErrMalformed, err)
	}
	if name != "bom" || !strings.HasPrefix(ns, cyclonedxNSPrefix) {
		return nil, fmt.Errorf("%w: XML root <%s xmlns=%q> is not a CycloneDX <bom>", ErrUnknownFormat, name, ns)
	}
	version := strings.TrimPrefix(ns, cyclonedxNSPrefix)
	if !cyclonedxVersions[version] {
		return nil, fmt.Errorf("%w: CycloneDX XML namespace %q (want 1.2 to 1.7)", ErrUnsupportedVersion, ns)
	}
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(data), cdx.BOMFileFormatXML).Decode(&bom); err != nil {
		return nil, fmt.Errorf("%w: CycloneDX XML: %v", ErrMalformed, err)
	}
	return fromCycloneDX(&bom, FormatCycloneDXXML, version)
}

func fromCycloneDX(bom *cdx.BOM, f Format, version string) (*Document, error) {
	d := &Document{Format: f, SpecVersion: version}
	if bom.Metadata != nil && bom.Metadata.Component != nil {
		s, ok := d.cdxComponent(bom.Metadata.Component, "metadata.component")
		if ok {
			d.Subject = &s
		}
		// Components nested in the subject are part of what it contains.
		if err := d.flatten(bom.Metadata.Component.Components, "metadata.component", 1); err != nil {
			return nil, err
		}
	}
	if err := d.flatten(bom.Components, "components", 0); err != nil {
		return nil, err
	}
	var edges []Dependency
	if bom.Dependencies != nil {
		for _, dep := range *bom.Dependencies {
			if dep.Dependencies == nil {
				continue
			}
			for _, to := range *dep.Dependencies {
				edges = append(edges, Dependency{From: dep.Ref, To: to})
			}
		}
	}
	d.finish(edges)
	return d, nil
}

// flatten appends components and their nested components, depth first.
func (d *Document) flatten(cs *[]cdx.Component, path string, depth int) error {
	if cs == nil {
		return nil
	}
	if depth > maxNesting {
		return fmt.Errorf("%w: CycloneDX components nested deeper than %d levels at %s", ErrMalformed, maxNesting, path)
	}
	for i := range *cs {
		c := &(*cs)[i]
		p := fmt.Sprintf("%s[%d]", path, i)
		if nc, ok := d.cdxComponent(c, p); ok {
			d.Components = append(d.Components, nc)
		}
		if err := d.flatten(c.Components, p+".components", depth+1); err != nil {
			return err
		}
	}
	return nil
}

// cdxComponent converts one component; a component without a name takes the
// name from its purl, and without either it is skipped with a warning.
func (d *Document) cdxComponent(c *cdx.Component, path string) (Component, bool) {
	out := Component{
		ID:      c.BOMRef,
		Name:    c.Name,
		Group:   c.Group,
		Version: c.Version,
		Type:    string(c.Type),
		PURL:    c.PackageURL,
	}
	if c.Supplier != nil {
		out.Supplier = c.Supplier.Name
	}
	if c.Hashes != nil && len(*c.Hashes) > 0 {
		out.Hashes = make(map[string]string, len(*c.Hashes))
		for _, h := range *c.Hashes {
			out.Hashes[normaliseHashAlg(string(h.Algorithm))] = strings.ToLower(strings.TrimSpace(h.Value))
		}
	}
	if c.Licenses != nil {
		var ls []string
		for _, l := range *c.Licenses {
			switch {
			case l.Expression != "":
				ls = append(ls, l.Expression)
			case l.License != nil && l.License.ID != "":
				ls = append(ls, l.License.ID)
			case l.License != nil && l.License.Name != "":
				ls = append(ls, l.License.Name)
			}
		}
		out.Licenses = normaliseLicenses(ls)
	}
	if out.Name == "" {
		if n := purlName(out.PURL); n != "" {
			d.Warnings = append(d.Warnings, fmt.Sprintf("%s has no name; named %q from its purl", path, n))
			out.Name = n
		} else {
			d.Warnings = append(d.Warnings, fmt.Sprintf("%s has no name and no purl; skipped", path))
			return Component{}, false
		}
	}
	return out, true
}
