package trust

import (
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// NamespaceMode says what the Kubernetes admission webhook does in a
// namespace.
type NamespaceMode string

// Namespace modes.
const (
	// NamespaceEnforce: a workload whose images the gate refuses is denied.
	NamespaceEnforce NamespaceMode = "enforce"
	// NamespaceWarn: every image is evaluated and logged as in enforce, but
	// a refusal only warns; the workload is admitted.
	NamespaceWarn NamespaceMode = "warn"
	// NamespaceExempt: nothing is evaluated; the workload is admitted.
	NamespaceExempt NamespaceMode = "exempt"
)

// Kubernetes is the kubernetes: section, read by the admission webhook
// (docs/kubernetes.md). It decides which evaluation a workload's image
// needs (which vendor, product and device class) and what a refusal does
// in each namespace; it does not change how an image is evaluated, so it is
// not part of Digest (the log keeps the whole file beside each
// evaluation's verdict).
type Kubernetes struct {
	// Configured is true when the file has a kubernetes: section. Without
	// one every namespace is enforced and no image maps to a product, so
	// every image is refused.
	Configured bool
	// Default is the mode of a namespace no list names (enforce unless
	// set).
	Default NamespaceMode
	// Enforce, Warn and Exempt are namespace names or path.Match patterns
	// (kube-*). An exact name wins over a pattern; among patterns the
	// strictest mode wins (enforce, then warn, then exempt).
	Enforce, Warn, Exempt []string
	// Images map image repositories to products, first match wins.
	Images []ImageMapping
}

// ImageMapping maps the repositories that match Repository (registry host
// and repository path, a path.Match pattern: * stays within one path
// segment) to a vendor's product and the device class a workload running
// the image counts as.
type ImageMapping struct {
	Repository  string
	Vendor      string
	Product     string
	DeviceClass string

	line int
}

// namespacePattern is a DNS-1123 label, possibly with glob characters.
var namespacePattern = regexp.MustCompile(`^[a-z0-9*?\[\]\-^!]{1,63}$`)

// repositoryPattern is host[:port]/path with lowercase path components and
// glob characters: no tag, no digest.
var repositoryPattern = regexp.MustCompile(`^[A-Za-z0-9.\-*?\[\]]+(:[0-9]+)?(/[a-z0-9._\-*?\[\]^!]+)+$`)

func (d *decoder) kubernetes(n *yaml.Node, field string, c *Config) {
	k := &c.Kubernetes
	k.Configured = true
	d.fields(n, field, map[string]func(*yaml.Node, string){
		"default": func(n *yaml.Node, f string) {
			var s string
			d.str(n, f, &s)
			switch m := NamespaceMode(s); m {
			case NamespaceEnforce, NamespaceWarn, NamespaceExempt:
				k.Default = m
			default:
				if n.Kind == yaml.ScalarNode {
					d.errorf(n, f, "want enforce, warn or exempt, got %q", s)
				}
			}
		},
		"namespaces": func(n *yaml.Node, f string) {
			seen := map[string]string{}
			list := func(dst *[]string, mode string) func(*yaml.Node, string) {
				return func(n *yaml.Node, f string) {
					d.stringList(n, f, dst)
					for _, ns := range *dst {
						if _, err := path.Match(ns, ""); err != nil || !namespacePattern.MatchString(ns) {
							d.errorf(n, f, "%q: want a namespace name or a pattern such as kube-*", ns)
							continue
						}
						if other, dup := seen[ns]; dup && other != mode {
							d.errorf(n, f, "namespace %q is in both %s and %s", ns, other, mode)
						}
						seen[ns] = mode
					}
				}
			}
			d.fields(n, f, map[string]func(*yaml.Node, string){
				"enforce": list(&k.Enforce, "enforce"),
				"warn":    list(&k.Warn, "warn"),
				"exempt":  list(&k.Exempt, "exempt"),
			})
		},
		"images": func(n *yaml.Node, f string) {
			d.list(n, f, func(n *yaml.Node, f string) {
				m := ImageMapping{line: n.Line}
				d.fields(n, f, map[string]func(*yaml.Node, string){
					"repository":   func(n *yaml.Node, f string) { d.nonEmpty(n, f, &m.Repository) },
					"vendor":       func(n *yaml.Node, f string) { d.nonEmpty(n, f, &m.Vendor) },
					"product":      func(n *yaml.Node, f string) { d.nonEmpty(n, f, &m.Product) },
					"device_class": func(n *yaml.Node, f string) { d.nonEmpty(n, f, &m.DeviceClass) },
				})
				if n.Kind != yaml.MappingNode {
					return
				}
				_, badGlob := path.Match(m.Repository, "")
				switch {
				case m.Repository == "" || m.Vendor == "" || m.Product == "":
					d.errorf(n, f, "repository, vendor and product are required")
				case badGlob != nil || !repositoryPattern.MatchString(m.Repository):
					d.errorf(n, f+".repository", "want registry/repository, a pattern without tag or digest such as registry.hospital.example/buildctl/*, got %q", m.Repository)
				}
				k.Images = append(k.Images, m)
			})
		},
	})
	if k.Default == "" {
		k.Default = NamespaceEnforce
	}
}

// checkKubernetes checks the image mappings against the vendors, once the
// whole file is read.
func (d *decoder) checkKubernetes(c *Config) {
	for i := range c.Kubernetes.Images {
		m := &c.Kubernetes.Images[i]
		f := "kubernetes.images[" + strconv.Itoa(i) + "]"
		if m.Vendor == "" || m.Product == "" {
			continue
		}
		p, ok := c.Product(m.Vendor, m.Product)
		if !ok {
			d.errs = append(d.errs, &ConfigError{File: d.file, Line: m.line, Field: f, Message: "product " + m.Vendor + "/" + m.Product + " is not under vendors"})
			continue
		}
		switch {
		case m.DeviceClass == "" && len(p.DeviceClasses) == 1:
			m.DeviceClass = p.DeviceClasses[0]
		case m.DeviceClass == "":
			d.errs = append(d.errs, &ConfigError{File: d.file, Line: m.line, Field: f + ".device_class",
				Message: "required: " + m.Vendor + "/" + m.Product + " has device classes " + strings.Join(p.DeviceClasses, ", ")})
		case !slices.Contains(p.DeviceClasses, m.DeviceClass):
			d.errs = append(d.errs, &ConfigError{File: d.file, Line: m.line, Field: f + ".device_class",
				Message: "device class " + m.DeviceClass + " is not in " + m.Vendor + "/" + m.Product + "'s device_classes (" + strings.Join(p.DeviceClasses, ", ") + ")"})
		}
	}
}

// NamespaceMode returns the mode of namespace ns.
func (k *Kubernetes) NamespaceMode(ns string) NamespaceMode {
	lists := []struct {
		mode NamespaceMode
		pats []string
	}{{NamespaceEnforce, k.Enforce}, {NamespaceWarn, k.Warn}, {NamespaceExempt, k.Exempt}}
	for _, l := range lists {
		if slices.Contains(l.pats, ns) {
			return l.mode
		}
	}
	for _, l := range lists {
		for _, p := range l.pats {
			if ok, _ := path.Match(p, ns); ok {
				return l.mode
			}
		}
	}
	if k.Default == "" {
		return NamespaceEnforce
	}
	return k.Default
}

// Image returns the mapping of repository (registry host and path, as in
// an image reference without tag or digest), the first that matches.
func (k *Kubernetes) Image(repository string) (ImageMapping, bool) {
	for _, m := range k.Images {
		if ok, _ := path.Match(m.Repository, repository); ok {
			return m, true
		}
	}
	return ImageMapping{}, false
}
