package evidence

import "time"

// Schema identifies version 1 of the evidence document. A document with any
// other value is rejected by Validate.
const Schema = "wardgate.dev/evidence/v1"

// Evidence is everything known about one update when it is judged. Sections
// that do not apply are nil (SBOM, Drift, Provenance, Previous, Device) or
// empty (Ledger, Fleet); the policy treats a missing section as "not known",
// never as "fine".
type Evidence struct {
	// Schema is always the constant Schema.
	Schema string `json:"schema"`
	// EvaluatedAt is the time the decision is made for. The policy engine
	// pins OPA's clock (time.now_ns) to it, so a decision can be replayed.
	EvaluatedAt time.Time `json:"evaluatedAt"`
	// TrustConfigDigest is trust.Config.Digest() of the trust configuration
	// the evidence was gathered under ("sha256:<hex>").
	TrustConfigDigest string `json:"trustConfigDigest"`
	// Artifact is the update being judged.
	Artifact Artifact `json:"artifact"`
	// Verification is the outcome of signature verification.
	Verification Verification `json:"verification"`
	// Attestations are the in-toto attestations checked, verified or not.
	Attestations []Attestation `json:"attestations"`
	// Metadata holds the release metadata's validity window.
	Metadata Metadata `json:"metadata"`
	// SBOM summarises the artifact's SBOM; nil when there is none.
	SBOM *SBOM `json:"sbom,omitempty"`
	// Drift compares the vendor's SBOM with what wardgate found in the
	// artifact; nil when no comparison was made.
	Drift *Drift `json:"drift,omitempty"`
	// Files is the file-level change from the previous admitted release's
	// firmware; nil when either release's files are not known.
	Files *FileDiff `json:"files,omitempty"`
	// Provenance is the build provenance, if an attestation carried one.
	Provenance *Provenance `json:"provenance,omitempty"`
	// Previous is the last release of the same vendor and product that was
	// admitted; nil for the first release.
	Previous *Release `json:"previous,omitempty"`
	// Ledger is the release ledger's view of this very version.
	Ledger Ledger `json:"ledger"`
	// Device is the device asking for the update; nil when the update is
	// judged for the fleet as a whole (for example in CI).
	Device *Device `json:"device,omitempty"`
	// Fleet is what fleet telemetry knows about this update.
	Fleet Fleet `json:"fleet"`
	// Vulnerabilities are the SBOM's components matched against the
	// imported vulnerability database; nil when there is no database or no
	// SBOM.
	Vulnerabilities *Vulnerabilities `json:"vulnerabilities,omitempty"`
}

// Artifact kinds.
const (
	KindBlob  = "blob"  // a firmware file
	KindImage = "image" // an OCI image
)

// Artifact is the update: what it is and what it claims to be.
type Artifact struct {
	// Kind is KindBlob or KindImage.
	Kind string `json:"kind"`
	// Name is the file name or image reference, for messages.
	Name string `json:"name"`
	// Digest is the artifact's own digest, "sha256:<64 hex>".
	Digest string `json:"digest"`
	// ExpectedDigest is the digest the vendor's release metadata names for
	// this artifact, if any. A difference is the digest-mismatch violation.
	ExpectedDigest string `json:"expectedDigest,omitempty"`
	// Size in bytes; 0 when only the digest is known.
	Size int64 `json:"size"`
	// Vendor, Product and Version identify the release; they key the trust
	// configuration and the release ledger. Version is the caller's claim,
	// else the version the vendor's TUF target says; it is empty only when
	// the vendor's TUF metadata could not be verified and the caller gave
	// none.
	Vendor  string `json:"vendor"`
	Product string `json:"product"`
	Version string `json:"version"`
	// DeviceClasses are the device classes the vendor targets this release at.
	DeviceClasses []string `json:"deviceClasses"`
}

// Verification is the outcome of checking the artifact's signatures, as
// produced by the verify package and converted at its boundary.
type Verification struct {
	// Verified is true when at least Threshold distinct trusted signers
	// signed the artifact.
	Verified bool `json:"verified"`
	// Threshold is the number of distinct trusted signers that was required.
	Threshold int `json:"threshold"`
	// Reasons are verify's reason codes (docs/reason-codes.md), sorted.
	Reasons []string `json:"reasons"`
	// Message is verify's one-line summary.
	Message string `json:"message"`
	// TrustedSigners are the distinct trusted signers found.
	TrustedSigners []Signer `json:"trustedSigners"`
	// Signatures are every signature input, verified or not.
	Signatures []Signature `json:"signatures"`
}

// Signer names who made a signature: KeyID for a key, Identity and Issuer
// for a keyless (certificate) signer.
type Signer struct {
	// KeyID is the hex SHA-256 of the key's DER SubjectPublicKeyInfo.
	KeyID string `json:"keyId,omitempty"`
	// Identity is the certificate's subject alternative name.
	Identity string `json:"identity,omitempty"`
	// Issuer is the OIDC issuer recorded in the certificate.
	Issuer string `json:"issuer,omitempty"`
}

// Signature is the outcome for one signature input.
type Signature struct {
	// Source is the file or reference the signature came from.
	Source string `json:"source"`
	// Format is the signature's on-disk format (verify's format names).
	Format string `json:"format"`
	// Verified is true when the signature verified against a trusted signer.
	Verified bool `json:"verified"`
	// Signer is who made it, when known.
	Signer *Signer `json:"signer,omitempty"`
	// Reason is verify's reason code when the signature did not verify.
	Reason string `json:"reason,omitempty"`
	// Detail is a human-readable explanation of Reason.
	Detail string `json:"detail,omitempty"`
}

// Attestation is the outcome for one in-toto attestation.
type Attestation struct {
	// PredicateType is the in-toto predicate type URI.
	PredicateType string `json:"predicateType"`
	// Verified is true when the envelope verified and names this artifact.
	Verified bool `json:"verified"`
	// Signer is who signed the envelope, when known.
	Signer *Signer `json:"signer,omitempty"`
	// Reason is verify's reason code when it did not verify.
	Reason string `json:"reason,omitempty"`
}

// Metadata is the validity window of the release metadata (the signature's
// trusted time and the vendor's expiry), used to refuse stale or
// future-dated releases (TUF's freeze attack).
type Metadata struct {
	// SignedAt is the trusted time of signing (transparency log or RFC 3161
	// timestamp), if there is one.
	SignedAt *time.Time `json:"signedAt,omitempty"`
	// Expires is the expiry the vendor's release metadata states, if any:
	// the earliest expiry of the TUF metadata relied on.
	Expires *time.Time `json:"expires,omitempty"`
	// TUF is the vendor's TUF release metadata for the artifact; nil when
	// the vendor pins no TUF root.
	TUF *TUF `json:"tuf,omitempty"`
}

// TUF reasons: why a release is not backed by its vendor's TUF metadata.
// The default policy reports each under the same code.
const (
	TUFMissing        = "metadata-missing"
	TUFUntrusted      = "metadata-untrusted"
	TUFRollback       = "metadata-rollback"
	TUFExpired        = "metadata-expired"
	TUFUnknownTarget  = "unknown-target"
	TUFDigestMismatch = "digest-mismatch"
)

// TUFReasons lists the valid TUF.Reason values.
var TUFReasons = []string{TUFMissing, TUFUntrusted, TUFRollback, TUFExpired, TUFUnknownTarget, TUFDigestMismatch}

// TUF is what the vendor's signed TUF metadata says of the artifact, as
// wardgate's TUF client (go-tuf's updater) found it.
type TUF struct {
	// Verified is true when the metadata verified, a trusted role lists
	// Target, and the artifact's length and hashes are the target's.
	Verified bool `json:"verified"`
	// Reason is one of TUFReasons when not Verified.
	Reason string `json:"reason,omitempty"`
	// Detail says what went wrong.
	Detail string `json:"detail,omitempty"`
	// Target is the target path looked up, PRODUCT/FILENAME.
	Target string `json:"target"`
	// Version and DeviceClasses are what the target's signed custom field
	// says.
	Version       string   `json:"version,omitempty"`
	DeviceClasses []string `json:"deviceClasses,omitempty"`
	// Roles are the metadata relied on (or loaded when it failed).
	Roles []TUFRole `json:"roles"`
}

// TUFRole is one piece of TUF metadata relied on.
type TUFRole struct {
	// Name is root, timestamp, snapshot, targets or a delegated role.
	Name string `json:"name"`
	// Version and Expires are the metadata's.
	Version int64     `json:"version"`
	Expires time.Time `json:"expires"`
	// Digest is "sha256:<hex>" of the metadata file.
	Digest string `json:"digest,omitempty"`
}

// SBOM sources.
const (
	SBOMSourceVendor    = "vendor"    // supplied by the vendor with the update
	SBOMSourceGenerated = "generated" // generated by wardgate from the artifact
)

// SBOM summarises the artifact's SBOM.
type SBOM struct {
	// Source is SBOMSourceVendor or SBOMSourceGenerated.
	Source string `json:"source"`
	// Format and SpecVersion name the document's serialisation.
	Format      string `json:"format"`
	SpecVersion string `json:"specVersion"`
	// Digest is the SBOM document's digest, "sha256:<hex>".
	Digest string `json:"digest"`
	// Components are the SBOM's components.
	Components []Component `json:"components"`
	// Diff is the change from the previous admitted release's SBOM; nil when
	// there is no previous release or its SBOM is unknown.
	Diff *Diff `json:"diff,omitempty"`
}

// Component is one SBOM component, reduced to what policy reads.
type Component struct {
	Name     string   `json:"name"`
	Version  string   `json:"version,omitempty"`
	PURL     string   `json:"purl,omitempty"`
	Licenses []string `json:"licenses,omitempty"`
	Supplier string   `json:"supplier,omitempty"`
}

// Diff change codes, as the sbom package's diff reports them.
const (
	ChangeAdded             = "added"
	ChangeRemoved           = "removed"
	ChangeUpgraded          = "upgraded"
	ChangeDowngraded        = "downgraded"
	ChangeHashChanged       = "hash-changed" // same version, different hash
	ChangeLicenseChanged    = "license-changed"
	ChangeSupplierChanged   = "supplier-changed"
	ChangeDependencyAdded   = "dependency-added"
	ChangeDependencyRemoved = "dependency-removed"
)

// Drift change codes, as the sbom package's drift reports them.
const (
	DriftUndeclared      = "undeclared" // found in the artifact, not claimed
	DriftMissing         = "missing"    // claimed, not found
	DriftVersionMismatch = "version-mismatch"
	DriftHashMismatch    = "hash-mismatch"
)

// DiffCodes and DriftCodes list the valid Change codes of each section.
var (
	DiffCodes = []string{ChangeAdded, ChangeRemoved, ChangeUpgraded, ChangeDowngraded, ChangeHashChanged,
		ChangeLicenseChanged, ChangeSupplierChanged, ChangeDependencyAdded, ChangeDependencyRemoved}
	DriftCodes = []string{DriftUndeclared, DriftMissing, DriftVersionMismatch, DriftHashMismatch}
)

// Diff is the SBOM change between the previous admitted release and this one.
type Diff struct {
	// FromVersion is the version of the release compared against.
	FromVersion string `json:"fromVersion"`
	// Summary counts changes by code.
	Summary map[string]int `json:"summary"`
	// Changes are the individual changes.
	Changes []Change `json:"changes"`
}

// Drift is the disagreement between the vendor's SBOM (claimed) and the
// SBOM wardgate generated from the artifact (observed).
type Drift struct {
	// Summary counts changes by code.
	Summary map[string]int `json:"summary"`
	// Changes are the individual disagreements.
	Changes []Change `json:"changes"`
}

// Change is one SBOM difference. From and To are versions, hashes, licenses
// or suppliers depending on Code.
type Change struct {
	Code string `json:"code"`
	Name string `json:"name"`
	PURL string `json:"purl,omitempty"`
	// Version is the component version when it did not change (hash-changed).
	Version string `json:"version,omitempty"`
	From    string `json:"from,omitempty"`
	To      string `json:"to,omitempty"`
}

// File change codes, as the firmware package's file diff reports them.
const (
	FileAdded                    = "file-added"
	FileRemoved                  = "file-removed"
	FileChanged                  = "file-changed"
	ExecutableAdded              = "executable-added"
	ExecutableChangedSameVersion = "executable-changed-same-version" // an ELF or PE file changed, its package's version did not
)

// FileCodes lists the valid FileChange codes.
var FileCodes = []string{ExecutableChangedSameVersion, ExecutableAdded, FileChanged, FileAdded, FileRemoved}

// FileDiff is the file-level change between the previous admitted
// release's firmware and this one.
type FileDiff struct {
	// FromVersion is the version of the release compared against.
	FromVersion string `json:"fromVersion"`
	// Summary counts changes by code.
	Summary map[string]int `json:"summary"`
	// Changes are the individual file changes.
	Changes []FileChange `json:"changes"`
}

// FileChange is one file added, removed or changed.
type FileChange struct {
	Code string `json:"code"`
	// Path is the file's path in the unpacked firmware.
	Path string `json:"path"`
	// Package and Version name the package owning the file, when known.
	Package string `json:"package,omitempty"`
	Version string `json:"version,omitempty"`
	// From and To are the old and new file's SHA-256 (hex).
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
}

// Provenance is the build provenance (SLSA) of the artifact.
type Provenance struct {
	// PredicateType is the provenance predicate type URI.
	PredicateType string `json:"predicateType"`
	// Verified is true when the provenance attestation verified.
	Verified bool `json:"verified"`
	// BuilderID names the build platform.
	BuilderID string `json:"builderId,omitempty"`
	// BuildType is the build type URI.
	BuildType string `json:"buildType,omitempty"`
	// SourceURI and SourceDigest name the source the build used.
	SourceURI    string `json:"sourceUri,omitempty"`
	SourceDigest string `json:"sourceDigest,omitempty"`
}

// Release is a release recorded in the ledger.
type Release struct {
	Version    string    `json:"version"`
	Digest     string    `json:"digest"`
	AdmittedAt time.Time `json:"admittedAt"`
}

// Ledger is the release ledger's view of the release being judged: every
// earlier evaluation of the same vendor, product and version, and every
// release of the product admitted before.
type Ledger struct {
	Entries []LedgerEntry `json:"entries"`
	// Admitted are the releases of the same vendor and product admitted
	// before, one per version and digest, oldest first (the time of the
	// first admission): versions never go back below the highest of them,
	// and a digest admitted under one version is not another version.
	Admitted []Release `json:"admitted,omitempty"`
}

// LedgerEntry is one earlier evaluation of the same version.
type LedgerEntry struct {
	Digest     string    `json:"digest"`
	Allowed    bool      `json:"allowed"`
	RecordedAt time.Time `json:"recordedAt"`
}

// Device is the device that asks for the update.
type Device struct {
	ID               string `json:"id"`
	Class            string `json:"class"`
	InstalledVersion string `json:"installedVersion,omitempty"`
	// Segment is the network segment the device sits in, as the asking
	// update server knows it (the fleet inventory has the same notion).
	Segment string `json:"segment,omitempty"`
}

// Fleet risk states.
const (
	RiskClean       = "clean"
	RiskSuspicious  = "suspicious"
	RiskQuarantined = "quarantined"
)

// Fleet is what fleet telemetry knows about this update. It stays empty
// until telemetry is wired in; an empty RiskState means "no telemetry".
type Fleet struct {
	RiskState string    `json:"riskState,omitempty"`
	Findings  []Finding `json:"findings,omitempty"`
}

// Finding is one telemetry observation about the update.
type Finding struct {
	Code       string    `json:"code"`
	Message    string    `json:"message"`
	ObservedAt time.Time `json:"observedAt"`
	// Devices showed the behaviour; Destinations are where it went.
	Devices      []string `json:"devices,omitempty"`
	Destinations []string `json:"destinations,omitempty"`
	// FirstSeen and LastSeen bound the behaviour in time (FirstSeen is
	// ObservedAt).
	FirstSeen time.Time `json:"firstSeen,omitzero"`
	LastSeen  time.Time `json:"lastSeen,omitzero"`
	// Bytes sent and connections made by the behaviour.
	Bytes       int64 `json:"bytes,omitempty"`
	Connections int64 `json:"connections,omitempty"`
}
