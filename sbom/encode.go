package sbom

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/CycloneDX/cyclonedx-go"
	"github.com/anchore/syft/syft/format"
	"github.com/anchore/syft/syft/format/common/cyclonedxhelpers"
	"github.com/anchore/syft/syft/format/common/spdxhelpers"
	"github.com/anchore/syft/syft/format/cyclonedxjson"
	"github.com/anchore/syft/syft/format/cyclonedxxml"
	"github.com/anchore/syft/syft/format/spdxjson"
	"github.com/anchore/syft/syft/format/spdxtagvalue"
	syftsbom "github.com/anchore/syft/syft/sbom"
	"github.com/spdx/tools-golang/convert"
	"github.com/spdx/tools-golang/spdx"
	"github.com/spdx/tools-golang/spdx/v2/v2_1"
	"github.com/spdx/tools-golang/spdx/v2/v2_2"
	"github.com/spdx/tools-golang/spdx/v2/v2_3"
	"github.com/spdx/tools-golang/spdx/v3/v3_0"
	"github.com/spdx/tools-golang/tagvalue"
)

// OutputFormat is an SBOM format and version to write, as syft's -o names
// it: cyclonedx-json, cyclonedx-json@1.5, spdx-json@2.2, spdx-tag-value,
// json (syft's own), table, ...
type OutputFormat struct {
	Name    Format
	Version string
	enc     syftsbom.FormatEncoder
}

// String is the canonical NAME@VERSION (NAME alone for unversioned
// formats).
func (f OutputFormat) String() string {
	if f.Version == "" || f.Version == syftsbom.AnyVersion {
		return string(f.Name)
	}
	return string(f.Name) + "@" + f.Version
}

// encoders is syft's encoder collection with syft's defaults (CycloneDX
// 1.6, SPDX 2.3), JSON made readable.
func encoders() *format.EncoderCollection {
	cfg := format.DefaultEncodersConfig()
	cfg.SyftJSON.Pretty = true
	cfg.CyclonedxJSON.Pretty = true
	cfg.CyclonedxXML.Pretty = true
	cfg.SPDXJSON.Pretty = true
	encs, err := cfg.Encoders()
	if err != nil {
		panic(fmt.Sprintf("sbom: syft's default encoders: %v", err))
	}
	return format.NewEncoderCollection(encs...)
}

// ParseOutputFormat resolves a syft -o format name (with its aliases and an
// optional @VERSION) through syft's own encoder collection.
func ParseOutputFormat(s string) (OutputFormat, error) {
	c := encoders()
	enc := c.GetByString(s)
	if enc == nil {
		return OutputFormat{}, fmt.Errorf("sbom: output format %q: want one of %s", s, strings.Join(c.NameVersions(), ", "))
	}
	return OutputFormat{Name: Format(enc.ID()), Version: enc.Version(), enc: enc}, nil
}

// OutputFormatNames lists what ParseOutputFormat takes: every name@version
// and alias syft knows.
func OutputFormatNames() []string {
	c := encoders()
	return slices.Concat(c.NameVersions(), c.Aliases())
}

// encode writes s in f. CycloneDX and SPDX are written from syft's format
// models with wardgate, not syft's company, as their author: syft's
// encoders name Anchore as the CycloneDX tool's author, as the SPDX
// creating organisation and in the SPDX namespace. The model is syft's; the
// encoding is cyclonedx-go's and tools-golang's, as in syft's encoders.
//
// amend, when not nil, changes a CycloneDX document's model before it is
// written (the firmware layers: annotateBOM); other formats ignore it.
func encode(s *syftsbom.SBOM, f OutputFormat, amend func(*cyclonedx.BOM, cyclonedx.BOMFileFormat)) ([]byte, error) {
	var buf bytes.Buffer
	var err error
	switch f.Name {
	case Format(cyclonedxjson.ID):
		err = encodeCycloneDX(&buf, s, f.Version, cyclonedx.BOMFileFormatJSON, amend)
	case Format(cyclonedxxml.ID):
		err = encodeCycloneDX(&buf, s, f.Version, cyclonedx.BOMFileFormatXML, amend)
	case Format(spdxjson.ID), Format(spdxtagvalue.ID):
		err = encodeSPDX(&buf, s, f)
	default:
		if f.enc == nil {
			if f, err = ParseOutputFormat(f.String()); err != nil {
				return nil, err
			}
		}
		err = f.enc.Encode(&buf, *s)
	}
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", f, err)
	}
	return buf.Bytes(), nil
}

// syftVersion is the syft module wardgate is built with ("" when the
// binary carries no module information, as test binaries do not).
func syftVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/anchore/syft" {
				return d.Version
			}
		}
	}
	return ""
}

// syftTool names syft as the scanner: "syft-v1.57.1" (or "syft").
func syftTool(sep string) string {
	if v := syftVersion(); v != "" {
		return "syft" + sep + v
	}
	return "syft"
}

func encodeCycloneDX(w io.Writer, s *syftsbom.SBOM, version string, ff cyclonedx.BOMFileFormat, amend func(*cyclonedx.BOM, cyclonedx.BOMFileFormat)) error {
	sv, err := cycloneDXSpecVersion(version)
	if err != nil {
		return err
	}
	bom := cyclonedxhelpers.ToFormatModel(*s)
	if bom.Metadata != nil && bom.Metadata.Tools != nil && bom.Metadata.Tools.Components != nil {
		tools := *bom.Metadata.Tools.Components
		for i := range tools {
			if tools[i].Name == s.Descriptor.Name {
				tools[i].Author = "" // syft writes "anchore" for whatever tool it runs in
				tools[i].Publisher = s.Descriptor.Name
			}
		}
		tools = append(tools, cyclonedx.Component{Type: cyclonedx.ComponentTypeLibrary, Name: "syft", Version: syftVersion(),
			Group: "github.com/anchore", PackageURL: "pkg:golang/github.com/anchore/" + syftTool("@")})
		bom.Metadata.Tools.Components = &tools
	}
	if sv < cyclonedx.SpecVersion1_6 {
		// As syft's encoder does: cyclonedx-go does not downgrade this 1.6
		// reference type, so it is dropped rather than written invalid.
		dropExternalReferenceType(bom.Components, cyclonedx.ERTypeSourceDistribution)
	}
	if amend != nil {
		amend(bom, ff)
	}
	enc := cyclonedx.NewBOMEncoder(w, ff)
	enc.SetPretty(true)
	enc.SetEscapeHTML(false)
	return enc.EncodeVersion(bom, sv)
}

func cycloneDXSpecVersion(v string) (cyclonedx.SpecVersion, error) {
	for sv := cyclonedx.SpecVersion1_0; sv <= cyclonedx.SpecVersion1_7; sv++ {
		if sv.String() == v {
			return sv, nil
		}
	}
	return 0, fmt.Errorf("CycloneDX version %q is not supported", v)
}

func dropExternalReferenceType(components *[]cyclonedx.Component, t cyclonedx.ExternalReferenceType) {
	if components == nil {
		return
	}
	for i := range *components {
		c := &(*components)[i]
		dropExternalReferenceType(c.Components, t)
		if c.ExternalReferences == nil {
			continue
		}
		refs := slices.DeleteFunc(*c.ExternalReferences, func(r cyclonedx.ExternalReference) bool { return r.Type == t })
		if len(refs) == 0 {
			c.ExternalReferences = nil
			continue
		}
		c.ExternalReferences = &refs
	}
}

// Namespace is where wardgate's SPDX document namespaces live (each
// document's is unique: syft's kind of input, name and a random UUID).
const Namespace = "https://wardgate.dev/spdxdocs/"

func encodeSPDX(w io.Writer, s *syftsbom.SBOM, f OutputFormat) error {
	doc := spdxhelpers.ToFormatModel(*s)
	if doc == nil {
		return fmt.Errorf("syft made no SPDX document")
	}
	creators := []spdx.Creator{{CreatorType: "Tool", Creator: s.Descriptor.Name + "-" + s.Descriptor.Version}, {CreatorType: "Tool", Creator: syftTool("-")}}
	doc.CreationInfo.Creators = creators
	if u, err := url.Parse(doc.DocumentNamespace); err == nil && u.Host == "anchore.com" {
		doc.DocumentNamespace = Namespace + strings.TrimPrefix(strings.TrimPrefix(u.Path, "/"), s.Descriptor.Name+"/")
	}
	var out any
	var err error
	switch f.Version {
	case "2.1":
		var d v2_1.Document
		err = convert.Document(doc, &d)
		out = d
	case "2.2":
		var d v2_2.Document
		err = convert.Document(doc, &d)
		out = d
	case "2.3":
		var d v2_3.Document
		err = convert.Document(doc, &d)
		out = d
	case "3.0":
		d := &v3_0.Document{}
		err = convert.Document(doc, d)
		out = d
	default:
		return fmt.Errorf("SPDX version %q is not supported", f.Version)
	}
	if err != nil {
		return fmt.Errorf("SPDX %s: %w", f.Version, err)
	}
	if f.Name == Format(spdxtagvalue.ID) {
		return tagvalue.Write(out, w)
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", " ")
	return enc.Encode(out)
}
