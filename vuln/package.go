package vuln

import (
	"strings"

	"github.com/google/osv-scalibr/extractor"
	apkmeta "github.com/google/osv-scalibr/extractor/filesystem/os/apk/metadata"
	dpkgmeta "github.com/google/osv-scalibr/extractor/filesystem/os/dpkg/metadata"
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
// matcher works on. OS packages carry their distribution release and their
// source package, as syft writes them into the package URL (distro= and
// upstream= qualifiers), because distributions publish advisories by
// source package (libssl3 is built from openssl). Everything else is
// described by its package URL alone. It returns nil when the component
// has no package URL osv-scalibr can read.
func toPackage(c Component) (*extractor.Package, []string) {
	if c.PURL == "" {
		return nil, nil
	}
	p, err := purl.FromString(c.PURL)
	if err != nil {
		return nil, nil
	}
	name, version := c.Name, c.Version
	if name == "" {
		name = p.Name
	}
	if version == "" {
		version = p.Version
	}
	q := map[string]string{}
	for _, kv := range p.Qualifiers {
		q[kv.Key] = kv.Value
	}
	distroVersion := func() string {
		d := q["distro"] // alpine-3.19.1, debian-12, ubuntu-22.04
		if i := strings.LastIndex(d, "-"); i >= 0 {
			return d[i+1:]
		}
		return d
	}
	upstream, _, _ := strings.Cut(q["upstream"], "@") // syft writes deb sources as name@version
	names := []string{p.Name}
	if upstream != "" && upstream != p.Name {
		names = append(names, upstream)
	}
	switch p.Type {
	case purl.TypeApk:
		return &extractor.Package{Name: p.Name, Version: version, PURLType: p.Type, Metadata: &apkmeta.Metadata{
			PackageName: p.Name, OriginName: upstream, OSID: p.Namespace, OSVersionID: distroVersion(),
		}}, names
	case purl.TypeDebian:
		return &extractor.Package{Name: p.Name, Version: version, PURLType: p.Type, Metadata: &dpkgmeta.Metadata{
			PackageName: p.Name, SourceName: upstream, OSID: p.Namespace, OSVersionID: distroVersion(),
		}}, names
	}
	pc := p
	return &extractor.Package{Name: name, Version: version, PURLType: p.Type, Metadata: &cdxmeta.Metadata{PURL: &pc}}, names
}
