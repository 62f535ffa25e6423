package trust

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Limits on what Load reads.
const (
	MaxConfigBytes  = 4 << 20  // the configuration file
	MaxKeyBytes     = 64 << 10 // one public key file
	MaxTUFRootBytes = 512000   // a pinned TUF root.json (go-tuf's own limit)
)

// Load reads and checks the trust configuration at path. Key paths in the
// file are relative to the file's directory. Every problem found is
// returned, joined, as *ConfigError values naming file, line and field.
func Load(path string) (*Config, error) {
	data, err := readLimited(path, MaxConfigBytes)
	if err != nil {
		return nil, &ConfigError{File: path, Message: err.Error()}
	}
	return Parse(path, data)
}

// Parse checks the configuration in data as if read from path (used for
// messages and to resolve key paths).
func Parse(path string, data []byte) (*Config, error) {
	d := &decoder{file: path, dir: filepath.Dir(path)}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ConfigError{File: path, Message: "empty file; want a trust configuration"}
		}
		return nil, d.yamlError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &ConfigError{File: path, Line: extra.Line, Message: "more than one YAML document; want exactly one"}
	}
	c := &Config{
		Path:         path,
		MaxClockSkew: DefaultMaxClockSkew,
		Rules:        map[string]Enforcement{},
		SBOM:         SBOMPolicy{Required: true, DriftAllowance: map[string]int{}},
		Vendors:      map[string]Vendor{},
		ruleLines:    map[string]int{},
	}
	d.config(doc.Content[0], c)
	if len(d.errs) > 0 {
		return nil, errors.Join(d.errs...)
	}
	c.computeDigest()
	return c, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (d *decoder) yamlError(err error) error {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &ConfigError{File: d.file, Line: line, Message: "YAML: " + m[2]}
	}
	return &ConfigError{File: d.file, Message: "YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return b, nil
}

// decoder walks the YAML node tree and collects every error.
type decoder struct {
	file, dir string
	errs      []error
}

func (d *decoder) errorf(n *yaml.Node, field, format string, args ...any) {
	d.errs = append(d.errs, &ConfigError{File: d.file, Line: n.Line, Field: field, Message: fmt.Sprintf(format, args...)})
}

func join(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		return fmt.Sprintf("%q", n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "nothing"
}

// fields walks a mapping whose keys are fixed field names.
func (d *decoder) fields(n *yaml.Node, field string, known map[string]func(v *yaml.Node, field string)) {
	d.pairs(n, field, func(k, v *yaml.Node, f string) {
		fn, ok := known[k.Value]
		if !ok {
			d.errorf(k, f, "unknown field; want one of %s", strings.Join(slices.Sorted(maps.Keys(known)), ", "))
			return
		}
		fn(v, f)
	})
}

// pairs walks any mapping, rejecting duplicate keys.
func (d *decoder) pairs(n *yaml.Node, field string, fn func(k, v *yaml.Node, field string)) {
	if n.Kind != yaml.MappingNode {
		if n.Tag == "!!null" {
			return // an empty section
		}
		d.errorf(n, field, "want a mapping, got %s", kindName(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f := join(field, k.Value)
		if seen[k.Value] {
			d.errorf(k, f, "duplicate key")
			continue
		}
		seen[k.Value] = true
		fn(k, v, f)
	}
}

func (d *decoder) str(n *yaml.Node, field string, dst *string) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		d.errorf(n, field, "want a string, got %s", kindName(n))
		return
	}
	*dst = n.Value
}

func (d *decoder) nonEmpty(n *yaml.Node, field string, dst *string) {
	d.str(n, field, dst)
	if *dst == "" && n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		d.errorf(n, field, "must not be empty")
	}
}

func (d *decoder) boolean(n *yaml.Node, field string, dst *bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		d.errorf(n, field, "want true or false, got %s", kindName(n))
		return
	}
	*dst = n.Value == "true"
}

func (d *decoder) integer(n *yaml.Node, field string, dst *int) bool {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		d.errorf(n, field, "want an integer, got %s", kindName(n))
		return false
	}
	v, err := strconv.Atoi(n.Value)
	if err != nil {
		d.errorf(n, field, "want an integer, got %q", n.Value)
		return false
	}
	*dst = v
	return true
}

// duration accepts Go durations ("720h", "90m") and whole days ("30d").
func (d *decoder) duration(n *yaml.Node, field string, dst *time.Duration) {
	var s string
	d.str(n, field, &s)
	if s == "" {
		return
	}
	var v time.Duration
	var err error
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		n, err = strconv.Atoi(days)
		v = time.Duration(n) * 24 * time.Hour
	} else {
		v, err = time.ParseDuration(s)
	}
	if err != nil || v < 0 {
		d.errorf(n, field, "want a duration such as 720h, 90m or 30d, got %q", s)
		return
	}
	*dst = v
}

func (d *decoder) list(n *yaml.Node, field string, fn func(item *yaml.Node, field string)) {
	if n.Kind != yaml.SequenceNode {
		if n.Tag == "!!null" {
			return
		}
		d.errorf(n, field, "want a list, got %s", kindName(n))
		return
	}
	for i, item := range n.Content {
		fn(item, fmt.Sprintf("%s[%d]", field, i))
	}
}

func (d *decoder) stringList(n *yaml.Node, field string, dst *[]string) {
	d.list(n, field, func(item *yaml.Node, f string) {
		var s string
		d.nonEmpty(item, f, &s)
		if s == "" {
			return
		}
		if slices.Contains(*dst, s) {
			d.errorf(item, f, "duplicate entry %q", s)
			return
		}
		*dst = append(*dst, s)
	})
}

var codeSyntax = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

var driftCodes = []string{"undeclared", "missing", "version-mismatch", "hash-mismatch"}

func (d *decoder) config(root *yaml.Node, c *Config) {
	version := 0
	var versionNode *yaml.Node
	d.fields(root, "", map[string]func(*yaml.Node, string){
		"version": func(n *yaml.Node, f string) {
			versionNode = n
			if d.integer(n, f, &version) && version != Version {
				d.errorf(n, f, "unsupported version %d; want %d", version, Version)
			}
		},
		"allow_override": func(n *yaml.Node, f string) { d.boolean(n, f, &c.AllowOverride) },
		"trusted_root": func(n *yaml.Node, f string) {
			var p string
			d.nonEmpty(n, f, &p)
			if p == "" {
				return
			}
			if !filepath.IsAbs(p) {
				p = filepath.Join(d.dir, p)
			}
			if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() {
				d.errorf(n, f, "trusted root %s: not a readable file", p)
				return
			}
			c.TrustedRoot = p
		},
		"max_metadata_age": func(n *yaml.Node, f string) { d.duration(n, f, &c.MaxMetadataAge) },
		"max_clock_skew":   func(n *yaml.Node, f string) { d.duration(n, f, &c.MaxClockSkew) },
		"rules": func(n *yaml.Node, f string) {
			d.pairs(n, f, func(k, v *yaml.Node, f string) {
				if !codeSyntax.MatchString(k.Value) {
					d.errorf(k, f, "want a reason code such as rollback or sbom-drift")
					return
				}
				var s string
				d.str(v, f, &s)
				switch e := Enforcement(s); e {
				case Enforce, Warn, Off:
					c.Rules[k.Value] = e
					c.ruleLines[k.Value] = k.Line
				default:
					if s != "" || v.Kind == yaml.ScalarNode {
						d.errorf(v, f, "want enforce, warn or off, got %q", s)
					}
				}
			})
		},
		"sbom": func(n *yaml.Node, f string) {
			d.fields(n, f, map[string]func(*yaml.Node, string){
				"required": func(n *yaml.Node, f string) { d.boolean(n, f, &c.SBOM.Required) },
				"drift_allowance": func(n *yaml.Node, f string) {
					d.pairs(n, f, func(k, v *yaml.Node, f string) {
						if !slices.Contains(driftCodes, k.Value) {
							d.errorf(k, f, "unknown drift code; want one of %s", strings.Join(driftCodes, ", "))
							return
						}
						var x int
						if d.integer(v, f, &x) {
							if x < 0 {
								d.errorf(v, f, "must not be negative, got %d", x)
								return
							}
							c.SBOM.DriftAllowance[k.Value] = x
						}
					})
				},
			})
		},
		"deny": func(n *yaml.Node, f string) {
			d.fields(n, f, map[string]func(*yaml.Node, string){
				"licenses": func(n *yaml.Node, f string) { d.stringList(n, f, &c.Deny.Licenses) },
				"components": func(n *yaml.Node, f string) {
					d.list(n, f, func(n *yaml.Node, f string) { d.deniedComponent(n, f, c) })
				},
			})
		},
		"vulnerabilities": func(n *yaml.Node, f string) { c.Vulnerabilities = d.vulnerabilities(n, f) },
		"vendors": func(n *yaml.Node, f string) {
			d.pairs(n, f, func(k, v *yaml.Node, f string) {
				vendor := Vendor{Products: map[string]Product{}}
				d.fields(v, f, map[string]func(*yaml.Node, string){
					"products": func(n *yaml.Node, f string) {
						d.pairs(n, f, func(k, v *yaml.Node, f string) {
							vendor.Products[k.Value] = d.product(v, f)
						})
					},
					"tuf": func(n *yaml.Node, f string) { vendor.TUF = d.tuf(n, f) },
				})
				if len(vendor.Products) == 0 && v.Kind == yaml.MappingNode {
					d.errorf(k, f+".products", "a vendor needs at least one product")
				}
				c.Vendors[k.Value] = vendor
			})
		},
		"kubernetes": func(n *yaml.Node, f string) { d.kubernetes(n, f, c) },
	})
	d.checkKubernetes(c)
	if versionNode == nil {
		d.errorf(root, "version", "required; want version: %d", Version)
	}
	if len(c.Vendors) == 0 && root.Kind == yaml.MappingNode {
		d.errorf(root, "vendors", "required; a trust configuration that trusts no vendor admits nothing")
	}
}

// path resolves a path of the configuration against its directory.
func (d *decoder) path(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(d.dir, p)
}

// tuf reads a vendor's tuf: {root: PATH, repository: DIR}.
func (d *decoder) tuf(n *yaml.Node, field string) *TUF {
	t := &TUF{}
	d.fields(n, field, map[string]func(*yaml.Node, string){
		"root": func(n *yaml.Node, f string) {
			var p string
			d.nonEmpty(n, f, &p)
			if p == "" {
				return
			}
			t.Root = d.path(p)
			b, err := readLimited(t.Root, MaxTUFRootBytes)
			if err != nil {
				d.errorf(n, f, "TUF root %s: %v", t.Root, err)
				return
			}
			sum := sha256.Sum256(b)
			t.RootJSON, t.RootDigest = b, "sha256:"+hex.EncodeToString(sum[:])
		},
		"repository": func(n *yaml.Node, f string) {
			var p string
			d.nonEmpty(n, f, &p)
			if p == "" {
				return
			}
			t.Repository = d.path(p)
			if st, err := os.Stat(t.Repository); err != nil || !st.IsDir() {
				d.errorf(n, f, "TUF repository %s: not a directory", t.Repository)
			}
		},
	})
	if n.Kind == yaml.MappingNode && t.Root == "" {
		d.errorf(n, field+".root", "required; the vendor's initial root.json")
	}
	return t
}

// validity reads valid_from and valid_until: RFC 3339 times or dates
// (YYYY-MM-DD, midnight UTC).
func (d *decoder) validity(n *yaml.Node, f string, dst *time.Time) {
	var s string
	d.nonEmpty(n, f, &s)
	if s == "" {
		return
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t, err = time.Parse(time.DateOnly, s)
	}
	if err != nil {
		d.errorf(n, f, "want an RFC 3339 time (2026-06-30T00:00:00Z) or a date (2026-06-30), got %q", s)
		return
	}
	*dst = t.UTC()
}

// checkWindow refuses a window that ends before it starts.
func (d *decoder) checkWindow(n *yaml.Node, f string, from, until time.Time) {
	if !from.IsZero() && !until.IsZero() && !until.After(from) {
		d.errorf(n, f, "valid_until %s is not after valid_from %s", until.Format(time.RFC3339), from.Format(time.RFC3339))
	}
}

func (d *decoder) deniedComponent(n *yaml.Node, f string, c *Config) {
	var dc DeniedComponent
	d.fields(n, f, map[string]func(*yaml.Node, string){
		"purl":   func(n *yaml.Node, f string) { d.nonEmpty(n, f, &dc.PURL) },
		"name":   func(n *yaml.Node, f string) { d.nonEmpty(n, f, &dc.Name) },
		"below":  func(n *yaml.Node, f string) { d.nonEmpty(n, f, &dc.Below) },
		"reason": func(n *yaml.Node, f string) { d.nonEmpty(n, f, &dc.Reason) },
	})
	if n.Kind != yaml.MappingNode {
		return
	}
	switch {
	case dc.PURL == "" && dc.Name == "":
		d.errorf(n, f, "want purl or name")
	case dc.PURL != "" && dc.Name != "":
		d.errorf(n, f, "want purl or name, not both")
	case dc.PURL != "" && (!strings.HasPrefix(dc.PURL, "pkg:") || strings.ContainsAny(dc.PURL, "@?#")):
		d.errorf(n, f+".purl", "want a package URL without version, qualifiers or subpath (pkg:type/namespace/name), got %q", dc.PURL)
	}
	c.Deny.Components = append(c.Deny.Components, dc)
}

func (d *decoder) product(n *yaml.Node, field string) Product {
	p := Product{MinVersion: map[string]string{}}
	var authNode, rolloutNode *yaml.Node
	var rolloutField string
	d.fields(n, field, map[string]func(*yaml.Node, string){
		"device_classes": func(n *yaml.Node, f string) { d.stringList(n, f, &p.DeviceClasses) },
		"min_version": func(n *yaml.Node, f string) {
			d.pairs(n, f, func(k, v *yaml.Node, f string) {
				var s string
				d.nonEmpty(v, f, &s)
				p.MinVersion[k.Value] = s
			})
		},
		"authorities": func(n *yaml.Node, f string) {
			authNode = n
			p.Authorities = d.authorities(n, f)
		},
		"rollout": func(n *yaml.Node, f string) { rolloutNode, rolloutField = n, f },
		"egress_manifests": func(n *yaml.Node, f string) {
			d.stringList(n, f, &p.EgressManifests)
			for i, m := range p.EgressManifests {
				p.EgressManifests[i] = d.path(m)
			}
		},
		"allow_downgrade": func(n *yaml.Node, f string) {
			d.list(n, f, func(n *yaml.Node, f string) {
				var dg Downgrade
				var hasVersion, hasReason bool
				d.fields(n, f, map[string]func(*yaml.Node, string){
					"version": func(n *yaml.Node, f string) { hasVersion = true; d.nonEmpty(n, f, &dg.Version) },
					"reason":  func(n *yaml.Node, f string) { hasReason = true; d.nonEmpty(n, f, &dg.Reason) },
				})
				if n.Kind != yaml.MappingNode {
					return // fields said so
				}
				switch {
				case !hasVersion:
					d.errorf(n, f+".version", "required; name the release that may be admitted below a newer one")
				case !hasReason:
					d.errorf(n, f+".reason", "required; say why going back to %s is right (it goes into the verdict)", dg.Version)
				case dg.Version != "" && slices.ContainsFunc(p.AllowDowngrade, func(o Downgrade) bool { return o.Version == dg.Version }):
					d.errorf(n, f+".version", "%s is allowed twice", dg.Version)
				}
				p.AllowDowngrade = append(p.AllowDowngrade, dg)
			})
		},
	})
	if rolloutNode != nil {
		p.Rollout = d.rollout(rolloutNode, rolloutField, p.DeviceClasses) // after device_classes, in any key order
	}
	if n.Kind != yaml.MappingNode {
		return p
	}
	if len(p.DeviceClasses) == 0 {
		d.errorf(n, field+".device_classes", "required; list the device classes the product may be installed on")
	}
	for class := range p.MinVersion {
		if class != AnyClass && !slices.Contains(p.DeviceClasses, class) {
			d.errorf(n, field+".min_version."+class, "device class %q is not in device_classes", class)
		}
	}
	if authNode == nil {
		d.errorf(n, field+".authorities", "required; a product needs at least one trusted key or keyless identity")
	}
	return p
}

func (d *decoder) authorities(n *yaml.Node, field string) Authorities {
	var a Authorities
	var thresholdNode *yaml.Node
	d.fields(n, field, map[string]func(*yaml.Node, string){
		"threshold": func(n *yaml.Node, f string) {
			thresholdNode = n
			d.integer(n, f, &a.Threshold)
		},
		"keys": func(n *yaml.Node, f string) {
			d.list(n, f, func(n *yaml.Node, f string) {
				var k Key
				d.fields(n, f, map[string]func(*yaml.Node, string){
					"path": func(n *yaml.Node, f string) {
						d.nonEmpty(n, f, &k.Path)
						if k.Path != "" {
							k.ID = d.keyID(n, f, k.Path)
						}
					},
					"valid_from":  func(n *yaml.Node, f string) { d.validity(n, f, &k.ValidFrom) },
					"valid_until": func(n *yaml.Node, f string) { d.validity(n, f, &k.ValidUntil) },
				})
				if k.Path == "" && n.Kind == yaml.MappingNode {
					d.errorf(n, f+".path", "required")
				}
				d.checkWindow(n, f, k.ValidFrom, k.ValidUntil)
				a.Keys = append(a.Keys, k)
			})
		},
		"keyless": func(n *yaml.Node, f string) {
			d.list(n, f, func(n *yaml.Node, f string) { a.Keyless = append(a.Keyless, d.identity(n, f)) })
		},
	})
	if n.Kind != yaml.MappingNode {
		return a
	}
	total := len(a.Keys) + len(a.Keyless)
	switch {
	case total == 0:
		d.errorf(n, field, "no keys or keyless identities; a product needs at least one trusted signer")
	case thresholdNode == nil:
		a.Threshold = 1
	case a.Threshold < 1 || a.Threshold > total:
		d.errorf(thresholdNode, field+".threshold", "want 1 to %d (the number of authorities), got %d", total, a.Threshold)
	}
	return a
}

func (d *decoder) identity(n *yaml.Node, f string) Identity {
	var id Identity
	re := func(dst *string) func(*yaml.Node, string) {
		return func(n *yaml.Node, f string) {
			d.nonEmpty(n, f, dst)
			if *dst == "" {
				return
			}
			if _, err := regexp.Compile(*dst); err != nil {
				d.errorf(n, f, "not a regular expression: %v", err)
			}
		}
	}
	d.fields(n, f, map[string]func(*yaml.Node, string){
		"identity":        func(n *yaml.Node, f string) { d.nonEmpty(n, f, &id.Identity) },
		"identity_regexp": re(&id.IdentityRegexp),
		"issuer":          func(n *yaml.Node, f string) { d.nonEmpty(n, f, &id.Issuer) },
		"issuer_regexp":   re(&id.IssuerRegexp),
		"valid_from":      func(n *yaml.Node, f string) { d.validity(n, f, &id.ValidFrom) },
		"valid_until":     func(n *yaml.Node, f string) { d.validity(n, f, &id.ValidUntil) },
	})
	if n.Kind != yaml.MappingNode {
		return id
	}
	d.checkWindow(n, f, id.ValidFrom, id.ValidUntil)
	if (id.Identity == "") == (id.IdentityRegexp == "") {
		d.errorf(n, f, "want exactly one of identity and identity_regexp")
	}
	if (id.Issuer == "") == (id.IssuerRegexp == "") {
		d.errorf(n, f, "want exactly one of issuer and issuer_regexp")
	}
	return id
}

// keyID reads a PEM (or DER) public key and returns its ID.
func (d *decoder) keyID(n *yaml.Node, field, path string) string {
	full := path
	if !filepath.IsAbs(full) {
		full = filepath.Join(d.dir, path)
	}
	data, err := readLimited(full, MaxKeyBytes)
	if err != nil {
		d.errorf(n, field, "key %s: %v", full, err)
		return ""
	}
	der := data
	if b, _ := pem.Decode(data); b != nil {
		der = b.Bytes
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		d.errorf(n, field, "key %s: not a PEM or DER public key (PKIX)", full)
		return ""
	}
	canon, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		d.errorf(n, field, "key %s: %v", full, err)
		return ""
	}
	sum := sha256.Sum256(canon)
	return hex.EncodeToString(sum[:])
}
