package sbom

import (
	"fmt"
	"strconv"
	"strings"

	cdx "github.com/CycloneDX/cyclonedx-go"
)

// cyclonedxVersions are the spec versions Decode reads. JSON exists from 1.2.
var cyclonedxVersions = map[string]bool{"1.2": true, "1.3": true, "1.4": true, "1.5": true, "1.6": true, "1.7": true}

const cyclonedxNSPrefix = "http://cyclonedx.org/schema/bom/"

func decodeCycloneDXJSON(data string, version string) (*Document, error) {
	if !cyclonedxVersions[version] {
		return nil, fmt.Errorf("%w: CycloneDX JSON specVersion %q (want 1.2 to 1.7)", ErrUnsupportedVersion, version)
	}
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(strings.NewReader(data), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		return nil, fmt.Errorf("%w: CycloneDX JSON: %s", ErrMalformed, jsonErrorAt(data, err))
	}
	return fromCycloneDX(&bom, FormatCycloneDXJSON, version)
}

func decodeCycloneDXXML(data string) (*Document, error) {
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
	if err := cdx.NewBOMDecoder(strings.NewReader(data), cdx.BOMFileFormatXML).Decode(&bom); err != nil {
		return nil, fmt.Errorf("%w: CycloneDX XML: %v", ErrMalformed, err)
	}
	return fromCycloneDX(&bom, FormatCycloneDXXML, version)
}

func fromCycloneDX(bom *cdx.BOM, f Format, version string) (*Document, error) {
	var b cdxBOM
	if bom.Metadata != nil && bom.Metadata.Component != nil {
		s := cdxPartOf(bom.Metadata.Component)
		b.subject = &s
	}
	b.components = cdxPartsOf(bom.Components)
	if bom.Dependencies != nil {
		for _, dep := range *bom.Dependencies {
			if dep.Dependencies == nil {
				continue
			}
			for _, to := range *dep.Dependencies {
				b.edges = append(b.edges, Dependency{From: dep.Ref, To: to})
			}
		}
	}
	return b.document(f, version)
}

// cdxBOM is what the model keeps of a CycloneDX BOM. cyclonedx-go's BOM is
// converted to it (fromCycloneDX) and the fast JSON reader fills it
// directly; document turns it into a Document, the same code for both.
type cdxBOM struct {
	subject    *cdxPart     // metadata.component
	components []cdxPart    // nil when absent
	edges      []Dependency // raw "ref depends on ref" edges
}

// cdxPart is what the model keeps of a CycloneDX component.
type cdxPart struct {
	ref, typ, name, group, version, purl string
	supplier                             string // supplier.name
	publisher, author                    string // where syft puts the maintainer
	hashes                               []cdx.Hash
	licenses                             []string  // per entry: licenseText
	children                             []cdxPart // nil when absent
}

// licenseText is what one licenses entry says: the expression, else the
// license id, else its name.
func licenseText(expression, id, name string) (string, bool) {
	switch {
	case expression != "":
		return expression, true
	case id != "":
		return id, true
	case name != "":
		return name, true
	}
	return "", false
}

func cdxPartsOf(cs *[]cdx.Component) []cdxPart {
	if cs == nil {
		return nil
	}
	out := make([]cdxPart, len(*cs))
	for i := range *cs {
		out[i] = cdxPartOf(&(*cs)[i])
	}
	return out
}

func cdxPartOf(c *cdx.Component) cdxPart {
	p := cdxPart{ref: c.BOMRef, typ: string(c.Type), name: c.Name, group: c.Group, version: c.Version, purl: c.PackageURL}
	if c.Supplier != nil {
		p.supplier = c.Supplier.Name
	}
	p.publisher, p.author = c.Publisher, c.Author
	if c.Hashes != nil {
		p.hashes = *c.Hashes
	}
	if c.Licenses != nil {
		for _, l := range *c.Licenses {
			var id, name string
			if l.License != nil {
				id, name = l.License.ID, l.License.Name
			}
			if t, ok := licenseText(l.Expression, id, name); ok {
				p.licenses = append(p.licenses, t)
			}
		}
	}
	p.children = cdxPartsOf(c.Components)
	return p
}

func (b *cdxBOM) document(f Format, version string) (*Document, error) {
	d := &Document{Format: f, SpecVersion: version}
	if b.subject != nil {
		s, ok := d.cdxComponent(b.subject, "metadata.component", -1)
		if ok {
			d.Subject = &s
		}
		// Components nested in the subject are part of what it contains.
		if err := d.flatten(b.subject.children, "metadata.component", 1); err != nil {
			return nil, err
		}
	}
	if err := d.flatten(b.components, "components", 0); err != nil {
		return nil, err
	}
	d.finish(b.edges)
	return d, nil
}

// flatten appends components and their nested components, depth first.
func (d *Document) flatten(cs []cdxPart, path string, depth int) error {
	if cs == nil {
		return nil
	}
	if depth > maxNesting {
		return fmt.Errorf("%w: CycloneDX components nested deeper than %d levels at %s", ErrMalformed, maxNesting, path)
	}
	if d.Components == nil && len(cs) > 0 {
		d.Components = make([]Component, 0, len(cs))
	}
	for i := range cs {
		c := &cs[i]
		if nc, ok := d.cdxComponent(c, path, i); ok {
			if nc.Type == "operating-system" {
				d.OperatingSystems = append(d.OperatingSystems, nc)
			} else {
				d.Components = append(d.Components, nc)
			}
		}
		if c.children != nil {
			if err := d.flatten(c.children, elemPath(path, i)+".components", depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// elemPath names element i of the array at path (path itself when i < 0);
// built only for warnings and errors.
func elemPath(path string, i int) string {
	if i < 0 {
		return path
	}
	return path + "[" + strconv.Itoa(i) + "]"
}

// cdxComponent converts one component, element i of path; a component
// without a name takes the name from its purl, and without either it is
// skipped with a warning.
func (d *Document) cdxComponent(c *cdxPart, path string, i int) (Component, bool) {
	out := Component{
		ID:       c.ref,
		Name:     c.name,
		Group:    c.group,
		Version:  c.version,
		Type:     c.typ,
		PURL:     c.purl,
		Supplier: firstParty(c.supplier, c.publisher, c.author),
	}
	if out.Type == "file" {
		out.Name = normaliseFileName(out.Name)
	}
	if len(c.hashes) > 0 {
		out.Hashes = make(map[string]string, len(c.hashes))
		for _, h := range c.hashes {
			out.Hashes[normaliseHashAlg(string(h.Algorithm))] = strings.ToLower(strings.TrimSpace(h.Value))
		}
	}
	out.Licenses = normaliseLicenses(c.licenses)
	if out.Name == "" {
		if n := purlName(out.PURL); n != "" {
			d.Warnings = append(d.Warnings, fmt.Sprintf("%s has no name; named %q from its purl", elemPath(path, i), n))
			out.Name = n
		} else {
			d.Warnings = append(d.Warnings, fmt.Sprintf("%s has no name and no purl; skipped", elemPath(path, i)))
			return Component{}, false
		}
	}
	return out, true
}
