// Package trust loads wardgate's trust configuration: one YAML file that
// says which vendors and products a hospital accepts, who may sign each
// product (keys, keyless identities, a k-of-n threshold), which device
// classes each product may go to, the minimum version per product and
// class, license and component deny lists, how each policy rule is
// enforced, how much SBOM drift is tolerated, how old release metadata
// may be, when each key or identity is trusted (valid_from, valid_until),
// and which vendors pin a TUF root (read once at load; package tuf does
// the TUF workflow).
//
// Load reads and checks the file; every error names the file, the line and
// the field (see ConfigError). Config.Digest identifies the configuration in
// evidence and decisions; Config.Data is the form the policy engine gives
// OPA as data (data.trust). docs/policy.md documents every field, and
// fixtures/trust.yaml is a complete example.
//
// Imports: the standard library and go.yaml.in/yaml/v3 (for yaml.Node, which
// carries line numbers). Must not import any other wardgate package, OPA,
// sigstore, net/http server types, or cobra. Key files are parsed with
// crypto/x509 only to compute their IDs, which match verify's key IDs.
package trust
