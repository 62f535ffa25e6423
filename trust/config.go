package trust

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"time"
)

// Version is the only trust configuration format version Load accepts.
const Version = 1

// Enforcement says what a policy rule's violation does.
type Enforcement string

// Enforcement levels. A rule not named in the configuration is enforced.
const (
	Enforce Enforcement = "enforce" // a violation denies the update
	Warn    Enforcement = "warn"    // a violation is reported as a warning only
	Off     Enforcement = "off"     // the rule is not reported at all
)

// DefaultMaxClockSkew is how far in the future a signing time may lie before
// the metadata counts as future-dated, when the file does not say.
const DefaultMaxClockSkew = 5 * time.Minute

// AnyClass is the min_version key that applies to every device class
// without its own entry.
const AnyClass = "*"

// Config is a loaded, checked trust configuration. Build one with Load or
// Parse; the zero value is not useful.
type Config struct {
	// Path is the file the configuration was read from.
	Path string
	// TrustedRoot is the Sigstore trusted_root.json (absolute path) used to
	// check keyless signatures and log entries; empty when none is trusted.
	TrustedRoot string
	// AllowOverride lets user policies replace a default policy module
	// without declaring it in the module itself.
	AllowOverride bool
	// MaxMetadataAge is how long after signing a release may be admitted;
	// 0 means no limit.
	MaxMetadataAge time.Duration
	// MaxClockSkew is how far in the future a signing time may lie.
	MaxClockSkew time.Duration
	// Rules maps a reason code to its enforcement; codes not named enforce.
	Rules map[string]Enforcement
	// SBOM says whether an SBOM is required and how much drift is allowed.
	SBOM SBOMPolicy
	// Deny lists licenses and components that are never admitted.
	Deny DenyList
	// Vendors maps a vendor name to its products.
	Vendors map[string]Vendor
	// Vulnerabilities is the vulnerabilities: section; nil when the
	// configuration has none (known vulnerabilities are then not checked).
	Vulnerabilities *VulnerabilityPolicy
	// Kubernetes configures the admission webhook (not part of Digest).
	Kubernetes Kubernetes

	digest    string
	ruleLines map[string]int // the line of each rules: key in Path
}

// SBOMPolicy is the SBOM part of the configuration.
type SBOMPolicy struct {
	// Required makes a missing SBOM a violation (sbom-missing).
	Required bool
	// DriftAllowance maps a drift code (undeclared, missing,
	// version-mismatch, hash-mismatch) to the number of such drifts
	// tolerated. Codes not named tolerate none.
	DriftAllowance map[string]int
}

// DenyList names what is never admitted.
type DenyList struct {
	// Licenses are SPDX license identifiers or names, matched exactly.
	Licenses []string
	// Components are denied components.
	Components []DeniedComponent
}

// DeniedComponent matches SBOM components by package URL (without version)
// or by name; Below, when set, denies only versions older than it.
type DeniedComponent struct {
	PURL   string
	Name   string
	Below  string
	Reason string
}

// Vendor is one vendor and the products accepted from it.
type Vendor struct {
	Products map[string]Product
	// TUF pins the vendor's TUF root; nil when the vendor has none. With a
	// pinned root, every release of the vendor must come with TUF metadata
	// that names it.
	TUF *TUF
}

// TUF is a vendor's TUF trust: the pinned initial root and, optionally,
// a local mirror of the vendor's repository.
type TUF struct {
	// Root is the pinned root.json (absolute path) and RootJSON its
	// content, read once at load (at most MaxTUFRootBytes).
	Root     string
	RootJSON []byte
	// RootDigest is "sha256:<hex>" of RootJSON.
	RootDigest string
	// Repository is a local mirror of the vendor's repository (absolute
	// path; DIR/metadata/ holds the metadata); empty when none is
	// configured.
	Repository string
}

// Product is one product: who signs it, where it may go, how old it may be.
type Product struct {
	// DeviceClasses are the device classes the product may be installed on.
	DeviceClasses []string
	// MinVersion maps a device class (or AnyClass) to the oldest version
	// that may be admitted for it.
	MinVersion map[string]string
	// Authorities are the trusted signers of the product.
	Authorities Authorities
	// Rollout is the product's rollout rings; nil when the product has
	// none (every device may install an admitted update at once). Not part
	// of Digest.
	Rollout *Rollout
	// AllowDowngrade are the releases that may be admitted although a newer
	// release of the product was admitted before (versions never go back
	// otherwise), each with the reason, which the verdict carries.
	AllowDowngrade []Downgrade
	// EgressManifests are the vendor's signed egress manifests for the
	// product's releases (absolute paths): DSSE envelopes of in-toto
	// statements with predicate https://wardgate.dev/egress-manifest/v1.
	// The gate uses one in the fleet analysis only when an authority of
	// the product signed it (see gate.VerifyEgressManifest); an unsigned
	// or wrongly signed one is not used.
	EgressManifests []string
}

// Downgrade allows one release of a product to be admitted below the
// highest release admitted before.
type Downgrade struct {
	// Version is the release's version, exactly as it is admitted.
	Version string
	// Reason says why going back is right (a vendor advisory, a recall);
	// it is required and goes into the verdict.
	Reason string
}

// Authorities are the signers trusted for a product and how many of them
// must sign.
type Authorities struct {
	// Threshold is how many distinct authorities must sign (k of n).
	Threshold int
	// Keys are trusted public keys.
	Keys []Key
	// Keyless are trusted certificate identities.
	Keyless []Identity
}

// Key is a trusted public key file and its ID (hex SHA-256 of the DER
// SubjectPublicKeyInfo, as verify and cosign compute it).
type Key struct {
	Path string
	ID   string
	// ValidFrom and ValidUntil bound when the key may have signed (its
	// signature's trusted time); zero means unbounded.
	ValidFrom, ValidUntil time.Time
}

// Identity is a trusted keyless signer: the certificate identity and OIDC
// issuer, each exact or a regular expression (RE2, matched against the
// whole value).
type Identity struct {
	Identity       string
	IdentityRegexp string
	Issuer         string
	IssuerRegexp   string
	// ValidFrom and ValidUntil bound when the identity may have signed;
	// zero means unbounded.
	ValidFrom, ValidUntil time.Time
}

// window adds valid_from and valid_until to a key's or identity's data,
// when set (so configurations without them keep their digests).
func window(m map[string]any, from, until time.Time) map[string]any {
	if !from.IsZero() {
		m["valid_from"] = from.UTC().Format(time.RFC3339)
	}
	if !until.IsZero() {
		m["valid_until"] = until.UTC().Format(time.RFC3339)
	}
	return m
}

// ErrInvalid is wrapped by every ConfigError.
var ErrInvalid = errors.New("trust: invalid configuration")

// ConfigError names the file, line and field of one configuration problem.
type ConfigError struct {
	File    string
	Line    int // 0 when the problem has no line (an unreadable file)
	Field   string
	Message string
}

func (e *ConfigError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Field == "" {
		return loc + ": " + e.Message
	}
	return loc + ": " + e.Field + ": " + e.Message
}

// Unwrap makes every ConfigError match ErrInvalid.
func (e *ConfigError) Unwrap() error { return ErrInvalid }

// Digest is "sha256:<hex>" of the configuration's canonical form: the JSON
// encoding of Data (object keys sorted, key files replaced by their IDs'
// and paths), so two files that say the same thing have the same digest.
func (c *Config) Digest() string { return c.digest }

// Enforcement returns how the rule with the given reason code is enforced.
func (c *Config) Enforcement(code string) Enforcement {
	if e, ok := c.Rules[code]; ok {
		return e
	}
	return Enforce
}

// RuleError is a ConfigError about the rules entry for code: it names the
// file ("trust configuration" for one not read from a file), the line of
// the entry's key (none when not parsed) and the field rules.<code>. The
// policy engine uses it for codes no loaded rule produces.
func (c *Config) RuleError(code, format string, args ...any) *ConfigError {
	file := c.Path
	if file == "" {
		file = "trust configuration"
	}
	return &ConfigError{File: file, Line: c.ruleLines[code], Field: "rules." + code, Message: fmt.Sprintf(format, args...)}
}

// Data returns the configuration as OPA data, in the shape the default
// policies read under data.trust (documented in docs/policy.md). Only
// JSON types are used: string, bool, int64, []any and map[string]any.
func (c *Config) Data() map[string]any {
	rules := map[string]any{}
	for k, v := range c.Rules {
		rules[k] = string(v)
	}
	drift := map[string]any{}
	for k, v := range c.SBOM.DriftAllowance {
		drift[k] = int64(v)
	}
	comps := make([]any, 0, len(c.Deny.Components))
	for _, d := range c.Deny.Components {
		comps = append(comps, map[string]any{"purl": d.PURL, "name": d.Name, "below": d.Below, "reason": d.Reason})
	}
	vendors := map[string]any{}
	for vn, v := range c.Vendors {
		products := map[string]any{}
		for pn, p := range v.Products {
			keys := make([]any, 0, len(p.Authorities.Keys))
			for _, k := range p.Authorities.Keys {
				keys = append(keys, window(map[string]any{"id": k.ID, "path": k.Path}, k.ValidFrom, k.ValidUntil))
			}
			keyless := make([]any, 0, len(p.Authorities.Keyless))
			for _, id := range p.Authorities.Keyless {
				keyless = append(keyless, window(map[string]any{
					"identity": id.Identity, "identity_regexp": id.IdentityRegexp,
					"issuer": id.Issuer, "issuer_regexp": id.IssuerRegexp,
				}, id.ValidFrom, id.ValidUntil))
			}
			minv := map[string]any{}
			for k, v := range p.MinVersion {
				minv[k] = v
			}
			pd := map[string]any{
				"device_classes": anyList(p.DeviceClasses),
				"min_version":    minv,
				"authorities": map[string]any{
					"threshold": int64(p.Authorities.Threshold),
					"keys":      keys,
					"keyless":   keyless,
				},
			}
			// Only when set: a configuration without downgrades keeps the
			// digest it had before the field existed.
			if len(p.AllowDowngrade) > 0 {
				dg := make([]any, len(p.AllowDowngrade))
				for i, a := range p.AllowDowngrade {
					dg[i] = map[string]any{"version": a.Version, "reason": a.Reason}
				}
				pd["allow_downgrade"] = dg
			}
			if len(p.EgressManifests) > 0 { // likewise
				pd["egress_manifests"] = anyList(p.EgressManifests)
			}
			products[pn] = pd
		}
		vd := map[string]any{"products": products}
		if v.TUF != nil {
			vd["tuf"] = map[string]any{"root_digest": v.TUF.RootDigest, "repository": v.TUF.Repository}
		}
		vendors[vn] = vd
	}
	data := map[string]any{
		"version":             int64(Version),
		"allow_override":      c.AllowOverride,
		"max_metadata_age":    formatDuration(c.MaxMetadataAge),
		"max_metadata_age_ns": c.MaxMetadataAge.Nanoseconds(),
		"max_clock_skew_ns":   c.MaxClockSkew.Nanoseconds(),
		"rules":               rules,
		"sbom":                map[string]any{"required": c.SBOM.Required, "drift_allowance": drift},
		"deny":                map[string]any{"licenses": anyList(c.Deny.Licenses), "components": comps},
		"vendors":             vendors,
	}
	if c.Vulnerabilities != nil {
		data["vulnerabilities"] = c.Vulnerabilities.data()
	}
	return data
}

func anyList(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func (c *Config) computeDigest() {
	// encoding/json sorts map keys, which makes this the canonical form.
	b, err := json.Marshal(c.Data())
	if err != nil {
		panic("trust: data is not JSON: " + err.Error()) // Data builds only JSON types
	}
	sum := sha256.Sum256(b)
	c.digest = "sha256:" + hex.EncodeToString(sum[:])
}

// ResolvePath resolves a path from the configuration (a key file) against
// the configuration file's directory.
func (c *Config) ResolvePath(p string) string {
	if filepath.IsAbs(p) || c.Path == "" {
		return p
	}
	return filepath.Join(filepath.Dir(c.Path), p)
}

// Product looks up a vendor's product.
func (c *Config) Product(vendor, product string) (Product, bool) {
	v, ok := c.Vendors[vendor]
	if !ok {
		return Product{}, false
	}
	p, ok := v.Products[product]
	return p, ok
}

// VendorNames returns the vendor names, sorted.
func (c *Config) VendorNames() []string { return slices.Sorted(maps.Keys(c.Vendors)) }

// formatDuration writes whole days as "30d", anything else as Go does.
func formatDuration(d time.Duration) string {
	const day = 24 * time.Hour
	if d > 0 && d%day == 0 {
		return fmt.Sprintf("%dd", d/day)
	}
	return d.String()
}
