package vuln

import (
	"strings"

	"github.com/google/osv-scalibr/extractor"
	cdxmeta "github.com/google/osv-scalibr/extractor/filesystem/sbom/cdx/metadata"
	"github.com/google/osv-scalibr/purl"
)

// Component is an SBOM component as the matcher reads it.
type Component struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	PURL    string `json:"purl,omitempty"`
}

// toPackage converts a component into the osv-scalibr package the OSV
// matcher works on: the package URL gives the ecosystem (for OS packages
// with the distribution release, from syft's distro= qualifier), and the
// name is the one advisories use, which for an OS package is its source
// package when the package URL names one (syft's upstream= qualifier):
// distributions publish advisories by source package (libssl3 is built
// from openssl), as osv-scalibr's own OS extractors name them. It returns
// nil when the component has no package URL osv-scalibr can read.
func toPackage(c Component) *extractor.Package {
	if c.PURL == "" {
		return nil
	}
	p, err := purl.FromString(c.PURL)
	if err != nil {
		return nil
	}
	name, version := c.Name, c.Version
	if name == "" {
		name = p.Name
	}
	if version == "" {
		version = p.Version
	}
	if p.Type == purl.TypeApk || p.Type == purl.TypeDebian {
		name = p.Name
		for _, q := range p.Qualifiers {
			if q.Key == "upstream" && q.Value != "" {
				name, _, _ = strings.Cut(q.Value, "@") // syft writes a deb source as name@version
			}
		}
	}
	// The matcher reads the package URL from the metadata as it is, so
	// the package costs nothing to describe on every comparison.
	return &extractor.Package{Name: name, Version: version, PURLType: p.Type, Metadata: &cdxmeta.Metadata{PURL: &p}}
}
