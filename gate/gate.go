package gate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sigstore/sigstore-go/pkg/root"

	"github.com/wardgate/wardgate/attest"
	"github.com/wardgate/wardgate/evidence"
	"github.com/wardgate/wardgate/firmware"
	"github.com/wardgate/wardgate/policy"
	"github.com/wardgate/wardgate/sbom"
	"github.com/wardgate/wardgate/store"
	"github.com/wardgate/wardgate/trust"
	"github.com/wardgate/wardgate/tuf"
	"github.com/wardgate/wardgate/verify"
)

// Update is one release to evaluate.
type Update struct {
	// Source is a firmware file path (Kind blob) or an image reference
	// (Kind image: registry ref, oci-dir:PATH, oci-archive:PATH).
	Source                   string
	Kind                     string // evidence.KindBlob or evidence.KindImage
	Vendor, Product, Version string
	// TargetClasses are the device classes the release says it is for;
	// empty means the product's classes.
	TargetClasses []string
	// Signatures are signature, bundle or envelope files for a blob.
	Signatures []verify.Signature
	// VendorSBOM is the SBOM the vendor shipped, if any.
	VendorSBOM []byte
	// Device is the device asking, for a per-device admission.
	Device *evidence.Device
	// TUF is the vendor's TUF repository metadata given with the release
	// (a mirror directory, an uploaded archive); nil to use the vendor's
	// configured mirror. Only for a vendor that pins a TUF root.
	TUF tuf.Source

	// release is the outcome of the TUF lookup (nil: the vendor pins no
	// TUF root).
	release *tuf.Release
}

// FleetRisk reports the fleet telemetry's view of an update.
type FleetRisk interface {
	Risk(ctx context.Context, digest string) (evidence.Fleet, error)
}

// Outcome is the result of one evaluation.
type Outcome struct {
	Evidence evidence.Evidence `json:"evidence"`
	Decision policy.Decision   `json:"decision"`
	// Verification is the verify result (nil when verification could not
	// run).
	Verification *verify.Result `json:"-"`
	// LogEntry is the signed verdict's place in the log (nil without a log).
	LogEntry *LogRef `json:"logEntry,omitempty"`
	// Envelope is the signed verdict (a DSSE envelope holding the VSA),
	// nil without a log.
	Envelope []byte `json:"-"`
	// Evaluated is false when the decision is the fail-closed
	// could-not-evaluate deny.
	Evaluated bool `json:"evaluated"`
	// Hold and RetryAfter are set for a rollout-hold: the device is
	// outside the update's current rollout ring, and RetryAfter is the
	// earliest time the ring may widen (nil when it never will).
	Hold       *RolloutHold `json:"hold,omitempty"`
	RetryAfter *time.Time   `json:"retryAfter,omitempty"`
}

// LogRef points at a verdict in the log.
type LogRef struct {
	Index    uint64 `json:"index"`
	TreeSize uint64 `json:"treeSize"`
	Origin   string `json:"origin"`
}

// Gate evaluates updates.
type Gate struct {
	trust       *trust.Config
	trustedRoot root.TrustedMaterial
	rootDigest  string
	trustBytes  []byte
	engine      *policy.Engine
	ledger      store.Ledger
	log         *attest.Log
	fleet       FleetRisk
	installs    Installations
	blobs       store.Blobs
	policies    map[productKey]productPolicy
	manifests   BlobStore
	vulns       VulnerabilityMatcher
	genOpts     []sbom.GenerateOption
	generate    bool
	scanUnsafe  bool // scan artifacts whose signatures did not verify
	now         func() time.Time
	version     string
	logger      *slog.Logger
	tufState    tuf.State
	tuf         map[string]vendorTUF
	rollout     *Rollout
	// rolloutCache: the plans and the installations the rollout reads.
	rolloutCache *rolloutCache
}

// Option configures a Gate.
type Option func(*Gate) error

// WithLog signs every verdict into the log.
func WithLog(l *attest.Log) Option {
	return func(g *Gate) error {
		if l == nil {
			return errors.New("gate: nil log")
		}
		g.log = l
		return nil
	}
}

// WithFleet adds the fleet telemetry's risk state to the evidence.
func WithFleet(f FleetRisk) Option {
	return func(g *Gate) error { g.fleet = f; return nil }
}

// WithBlobs keeps SBOMs by digest in the store, so the next release can be
// diffed against this one.
func WithBlobs(s store.Blobs) Option {
	return func(g *Gate) error { g.blobs = s; return nil }
}

// BlobStore keeps documents by the digest of the artifact they describe;
// *SBOMStore (a directory) is one. The storage layer behind it may change:
// the gate needs only these two methods.
type BlobStore interface {
	Put(digest string, data []byte) error
	// Get returns an error wrapping os.ErrNotExist when nothing is kept.
	Get(digest string) ([]byte, error)
}

// WithManifestStore keeps each scanned firmware's file manifest by the
// artifact's digest, so the next release is diffed against this one file
// by file (evidence section files).
func WithManifestStore(s BlobStore) Option {
	return func(g *Gate) error {
		if s == nil {
			return errors.New("gate: nil manifest store")
		}
		g.manifests = s
		return nil
	}
}

// WithClock pins the evaluation time.
func WithClock(now func() time.Time) Option {
	return func(g *Gate) error {
		if now == nil {
			return errors.New("gate: nil clock")
		}
		g.now = now
		return nil
	}
}

// WithVersion is wardgate's version, for attestations.
func WithVersion(v string) Option { return func(g *Gate) error { g.version = v; return nil } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(g *Gate) error { g.logger = l.WithGroup("gate"); return nil }
}

// WithoutSBOMGeneration skips scanning the artifact with syft: the vendor
// SBOM is used as is and no drift is computed.
func WithoutSBOMGeneration() Option { return func(g *Gate) error { g.generate = false; return nil } }

// WithUnsignedScanUnsafe scans artifacts whose signatures did not verify
// too (under the same unpack limits). Without it nothing an unverified
// vendor sent is unpacked or scanned: the evidence then has the vendor's
// SBOM or none.
func WithUnsignedScanUnsafe() Option {
	return func(g *Gate) error { g.scanUnsafe = true; return nil }
}

// WithGenerateOptions passes options to sbom.Generate (cache dir...).
func WithGenerateOptions(opts ...sbom.GenerateOption) Option {
	return func(g *Gate) error { g.genOpts = append(g.genOpts, opts...); return nil }
}

// New builds a gate from a trust configuration, a prepared policy engine
// and the release ledger.
func New(cfg *trust.Config, eng *policy.Engine, ledger store.Ledger, opts ...Option) (*Gate, error) {
	if cfg == nil || eng == nil || ledger == nil {
		return nil, errors.New("gate: trust configuration, policy engine and ledger are required")
	}
	g := &Gate{trust: cfg, engine: eng, ledger: ledger, now: time.Now, version: "dev", generate: true, logger: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		if err := o(g); err != nil {
			return nil, err
		}
	}
	if cfg.TrustedRoot != "" {
		tr, err := verify.LoadTrustedRoot(cfg.TrustedRoot)
		if err != nil {
			return nil, fmt.Errorf("gate: %w", err)
		}
		b, err := os.ReadFile(cfg.TrustedRoot)
		if err != nil {
			return nil, fmt.Errorf("gate: %w", err)
		}
		g.trustedRoot, g.rootDigest = tr, digestOf(b)
	}
	g.policies = buildPolicies(cfg, g.trustedRoot)
	if cfg.Path != "" {
		b, err := os.ReadFile(cfg.Path)
		if err != nil {
			return nil, fmt.Errorf("gate: %w", err)
		}
		g.trustBytes = b
	}
	if err := g.buildTUF(cfg); err != nil {
		return nil, err
	}
	return g, nil
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// Evaluate runs the whole pipeline for one update. It returns an Outcome
// for every update, allowed or denied; when something fails on the way the
// decision is the fail-closed could-not-evaluate deny (Evaluated false) and
// the error says why.
func (g *Gate) Evaluate(ctx context.Context, u Update) (*Outcome, error) {
	now := g.now().UTC()
	out := &Outcome{}
	var ev evidence.Evidence
	var vres *verify.Result
	err := g.lookupRelease(ctx, &u, now)
	if err == nil {
		ev, vres, err = g.collect(ctx, u, now)
	}
	out.Evidence, out.Verification = ev, vres
	if err == nil {
		out.Decision, err = g.engine.Evaluate(ctx, ev)
	}
	if err != nil {
		out.Decision = policy.CouldNotEvaluate(err)
		if lerr := g.logVerdict(ctx, out, u); lerr != nil {
			err = errors.Join(err, lerr)
		}
		return out, err
	}
	out.Evaluated = true
	if u.Device != nil && g.rollout != nil {
		// A device-level evaluation (admit --device) is held outside the
		// current rollout ring like an admission.
		h, retry, rerr := g.rolloutGate(ctx, ev)
		if rerr != nil {
			out.Decision, out.Evaluated = policy.CouldNotEvaluate(fmt.Errorf("rollout: %w", rerr)), false
			return out, errors.Join(rerr, g.logVerdict(ctx, out, u))
		}
		if h != nil && out.Decision.Allow {
			out.Decision, out.Hold = holdDecision(out.Decision, u.Device.ID, h, retry), h
			if !retry.IsZero() {
				out.RetryAfter = &retry
			}
		}
	}
	codes := make([]string, 0, len(out.Decision.Violations))
	for _, v := range out.Decision.Violations {
		codes = append(codes, string(v.Code))
	}
	sbomDigest := ""
	if ev.SBOM != nil {
		sbomDigest = ev.SBOM.Digest
	}
	if u.Device == nil && u.Version != "" { // no version: the vendor's TUF metadata failed, and the caller named none
		rel := store.Release{Vendor: u.Vendor, Product: u.Product, Version: u.Version, Digest: ev.Artifact.Digest, Allowed: out.Decision.Allow,
			Codes: codes, SBOMDigest: sbomDigest, PolicyDigest: out.Decision.PolicyDigest, TrustDigest: g.trust.Digest(), EvaluatedAt: now}
		if err := g.ledger.RecordRelease(ctx, rel); err != nil {
			out.Decision, out.Evaluated = policy.CouldNotEvaluate(fmt.Errorf("record release: %w", err)), false
			return out, errors.Join(err, g.logVerdict(ctx, out, u))
		}
	}
	if err := g.logVerdict(ctx, out, u); err != nil {
		// The decision stands in the ledger, but an unlogged verdict is not
		// admitted: deny.
		out.Decision, out.Evaluated = policy.CouldNotEvaluate(fmt.Errorf("log verdict: %w", err)), false
		return out, err
	}
	if err := g.recordInstallation(ctx, out, u, now); err != nil {
		out.Decision, out.Evaluated = policy.CouldNotEvaluate(fmt.Errorf("record installation: %w", err)), false
		return out, err
	}
	return out, nil
}

// collect builds the evidence document.
func (g *Gate) collect(ctx context.Context, u Update, now time.Time) (evidence.Evidence, *verify.Result, error) {
	ev := evidence.Evidence{
		Schema: evidence.Schema, EvaluatedAt: now, TrustConfigDigest: g.trust.Digest(),
		Artifact:     evidence.Artifact{Kind: u.Kind, Name: u.Source, Vendor: u.Vendor, Product: u.Product, Version: u.Version, DeviceClasses: u.TargetClasses},
		Attestations: []evidence.Attestation{},
		Ledger:       evidence.Ledger{Entries: []evidence.LedgerEntry{}},
		Fleet:        evidence.Fleet{RiskState: evidence.RiskClean},
		Verification: evidence.Verification{Reasons: []string{}, TrustedSigners: []evidence.Signer{}, Signatures: []evidence.Signature{}},
		Device:       u.Device,
	}
	if u.Vendor == "" || u.Product == "" || (u.Version == "" && u.release == nil) {
		return ev, nil, errors.New("vendor, product and version are required (the version may come from the vendor's TUF metadata)")
	}
	prod, known := g.trust.Product(u.Vendor, u.Product)
	if u.release != nil {
		releaseEvidence(&ev, u.release, u.TargetClasses != nil)
	}
	if ev.Artifact.DeviceClasses == nil {
		ev.Artifact.DeviceClasses = slices.Clone(prod.DeviceClasses)
		if ev.Artifact.DeviceClasses == nil {
			ev.Artifact.DeviceClasses = []string{}
		}
	}
	// 1. Signatures.
	vres, atts, prov, err := g.verify(ctx, u, prod, known)
	if err != nil {
		return ev, nil, fmt.Errorf("verify: %w", err)
	}
	ev.Attestations, ev.Provenance = atts, prov
	ev.Artifact.Digest, ev.Artifact.Size = vres.Artifact.Digest, vres.Artifact.Size
	ev.Verification = toVerification(vres)
	ev.Metadata.SignedAt = signedAt(vres)
	// 2. Ledger: this version, and the previous admitted release.
	byVersion, err := g.ledger.ReleaseByVersion(ctx, u.Vendor, u.Product, u.Version)
	if err != nil {
		return ev, vres, fmt.Errorf("ledger: %w", err)
	}
	ev.Ledger = store.EvidenceLedger(byVersion)
	all, err := g.ledger.Releases(ctx, u.Vendor, u.Product)
	if err != nil {
		return ev, vres, fmt.Errorf("ledger: %w", err)
	}
	ev.Ledger.Admitted = admitted(all)
	prev, err := g.ledger.LatestAdmitted(ctx, u.Vendor, u.Product)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return ev, vres, fmt.Errorf("ledger: %w", err)
	default:
		ev.Previous = store.EvidencePrevious(prev)
	}
	// 3. SBOM: the vendor's, the observed one, drift, and the diff. When
	// the signatures already failed, an unreadable artifact (a corrupted
	// archive) must not hide that verdict behind could-not-evaluate.
	if err := g.sbomEvidence(ctx, u, &ev, prev, vres.Verified); err != nil {
		return ev, vres, err
	}
	// 3b. Known vulnerabilities of the SBOM's components.
	if err := g.vulnerabilityEvidence(ctx, &ev, now); err != nil {
		return ev, vres, err
	}
	// 4. Fleet.
	if g.fleet != nil && ev.Artifact.Digest != "" {
		f, err := g.fleet.Risk(ctx, ev.Artifact.Digest)
		if err != nil {
			return ev, vres, fmt.Errorf("fleet risk: %w", err)
		}
		ev.Fleet = f
	}
	if err := ev.Validate(); err != nil {
		return ev, vres, fmt.Errorf("evidence: %w", err)
	}
	return ev, vres, nil
}

// admitted are the releases among rs (oldest first) that were admitted,
// one per version and digest, at their first admission: what versions
// never go back below, and what a digest was admitted as.
func admitted(rs []store.Release) []evidence.Release {
	type key struct{ version, digest string }
	seen := map[key]bool{}
	var out []evidence.Release
	for _, r := range rs {
		k := key{r.Version, r.Digest}
		if !r.Allowed || seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, evidence.Release{Version: r.Version, Digest: r.Digest, AdmittedAt: r.EvaluatedAt})
	}
	return out
}

func (g *Gate) verify(ctx context.Context, u Update, prod trust.Product, known bool) (*verify.Result, []evidence.Attestation, *evidence.Provenance, error) {
	pol, err := g.policy(u.Vendor, u.Product)
	if err != nil {
		return nil, nil, nil, err
	}
	if !known || len(pol.Keys)+len(pol.Identities) == 0 {
		// No signer is trusted: record what the signatures are, so the
		// policy can say "untrusted" with evidence, by checking against an
		// empty trust (every signature fails as untrusted).
		res, err := g.untrusted(ctx, u)
		return res, []evidence.Attestation{}, nil, err
	}
	if len(pol.Identities) > 0 && pol.TrustedRoot == nil {
		return nil, nil, nil, errors.New("keyless authorities are configured but the trust configuration names no trusted_root")
	}
	switch u.Kind {
	case evidence.KindBlob:
		art, err := verify.HashFile(u.Source)
		if err != nil {
			return nil, nil, nil, err
		}
		var sigs []verify.Signature
		var atts []verify.Signature
		for _, s := range u.Signatures {
			if verify.IsAttestation(s) {
				atts = append(atts, s)
			} else {
				sigs = append(sigs, s)
			}
		}
		res, err := verify.Blob(ctx, art, sigs, pol)
		if err != nil {
			return nil, nil, nil, err
		}
		out := []evidence.Attestation{}
		var prov *evidence.Provenance
		if len(atts) > 0 {
			// Attestations are signed by the same authorities; each is
			// reported on its own, whatever the threshold.
			apol := *pol
			apol.Threshold = 1
			ares, err := verify.Attestation(ctx, art, atts, "", &apol)
			if err != nil {
				return nil, nil, nil, err
			}
			prov = provenance(ares)
			for _, s := range ares.Signatures {
				a := evidence.Attestation{PredicateType: s.PredicateType, Verified: s.Verified, Reason: string(s.Reason)}
				if s.Signer != nil {
					a.Signer = &evidence.Signer{KeyID: s.Signer.KeyID, Identity: s.Signer.Identity, Issuer: s.Signer.Issuer}
				}
				out = append(out, a)
			}
		}
		return res, out, prov, nil
	case evidence.KindImage:
		res, err := verify.Image(ctx, u.Source, pol)
		return res, []evidence.Attestation{}, nil, err
	}
	return nil, nil, nil, fmt.Errorf("unknown artifact kind %q", u.Kind)
}

// untrusted hashes the artifact and reports its signatures without any
// trusted signer: every signature fails as untrusted-signer.
func (g *Gate) untrusted(ctx context.Context, u Update) (*verify.Result, error) {
	if u.Kind != evidence.KindBlob {
		return nil, fmt.Errorf("%s/%s is not in the trust configuration", u.Vendor, u.Product)
	}
	art, err := verify.HashFile(u.Source)
	if err != nil {
		return nil, err
	}
	res := &verify.Result{Schema: verify.ResultSchema, Artifact: verify.Subject{Kind: "blob", Name: art.Name, Digest: art.DigestString(), Size: art.Size},
		Reasons: []verify.Reason{verify.ReasonUntrustedSigner}, Threshold: 1, TrustedSigners: []verify.Signer{}, Signatures: []verify.SignatureResult{},
		Message: fmt.Sprintf("%s/%s is not in the trust configuration", u.Vendor, u.Product)}
	if len(u.Signatures) == 0 {
		res.Reasons = []verify.Reason{verify.ReasonNoSignature}
	}
	for _, s := range u.Signatures {
		res.Signatures = append(res.Signatures, verify.SignatureResult{Source: s.Source, Format: "unchecked", Reason: verify.ReasonUntrustedSigner, Detail: "no signer is trusted for this product"})
	}
	return res, nil
}

func toVerification(r *verify.Result) evidence.Verification {
	v := evidence.Verification{Verified: r.Verified, Threshold: r.Threshold, Message: r.Message, Reasons: []string{}, TrustedSigners: []evidence.Signer{}, Signatures: []evidence.Signature{}}
	for _, c := range r.Reasons {
		v.Reasons = append(v.Reasons, string(c))
	}
	for _, s := range r.TrustedSigners {
		v.TrustedSigners = append(v.TrustedSigners, evidence.Signer{KeyID: s.KeyID, Identity: s.Identity, Issuer: s.Issuer})
	}
	for _, s := range r.Signatures {
		es := evidence.Signature{Source: s.Source, Format: s.Format, Verified: s.Verified, Reason: string(s.Reason), Detail: s.Detail}
		if s.Signer != nil {
			es.Signer = &evidence.Signer{KeyID: s.Signer.KeyID, Identity: s.Signer.Identity, Issuer: s.Signer.Issuer}
		}
		v.Signatures = append(v.Signatures, es)
	}
	return v
}

// signedAt is the earliest trusted time (log or TSA) of a verified
// signature, or nil when none carries one.
func signedAt(r *verify.Result) *time.Time {
	var best *time.Time
	for _, s := range r.Signatures {
		if !s.Verified {
			continue
		}
		for _, t := range s.Timestamps {
			if best == nil || t.Before(*best) {
				t := t
				best = &t
			}
		}
	}
	return best
}

func (g *Gate) sbomEvidence(ctx context.Context, u Update, ev *evidence.Evidence, prev store.Release, verified bool) error {
	var claimed, observed *sbom.Document
	var claimedRaw []byte
	if len(u.VendorSBOM) > 0 {
		d, err := sbom.Decode(bytes.NewReader(u.VendorSBOM))
		if err != nil {
			return fmt.Errorf("vendor SBOM: %w", err)
		}
		claimed, claimedRaw = d, u.VendorSBOM
	}
	if g.generate && !verified && !g.scanUnsafe {
		g.logger.Info("artifact not scanned: its signatures did not verify", "source", u.Source)
	}
	if g.generate && (verified || g.scanUnsafe) {
		src := sbom.FirmwareSource(u.Source)
		if u.Kind == evidence.KindImage {
			src = imageSource(u.Source, ev.Artifact.Digest)
		}
		var gen *sbom.Generated
		var man *firmware.Manifest
		var err error
		if g.manifests != nil && u.Kind == evidence.KindBlob {
			man, gen, err = sbom.FileManifest(ctx, src, g.genOpts...)
		} else {
			gen, err = sbom.Generate(ctx, src, g.genOpts...)
		}
		if err == nil && man != nil {
			if ferr := g.filesEvidence(man, ev, prev); ferr != nil {
				return ferr
			}
		}
		switch {
		case err != nil && verified:
			return fmt.Errorf("generate SBOM: %w", err)
		case err != nil:
			g.logger.Warn("artifact could not be scanned; its signatures already failed", "err", err)
		default:
			d, err := sbom.Decode(bytes.NewReader(gen.Data))
			if err != nil {
				return fmt.Errorf("generated SBOM: %w", err)
			}
			observed = d
			if claimed == nil {
				claimedRaw = gen.Data
			}
		}
	}
	doc, source := claimed, evidence.SBOMSourceVendor
	if doc == nil {
		doc, source = observed, evidence.SBOMSourceGenerated
	}
	if doc == nil {
		return nil // no SBOM at all: the policy decides (sbom-missing)
	}
	digest := digestOf(claimedRaw)
	ev.SBOM = &evidence.SBOM{Source: source, Format: string(doc.Format), SpecVersion: doc.SpecVersion, Digest: digest, Components: components(doc)}
	if claimed != nil && observed != nil {
		ch := sbom.Drift(claimed, observed)
		ev.Drift = &evidence.Drift{Summary: summary(ch), Changes: changes(ch)}
	}
	if g.blobs != nil {
		if _, err := g.blobs.PutBlob(ctx, store.Blob{MediaType: store.SBOMMediaType, Data: claimedRaw}); err != nil {
			return fmt.Errorf("keep SBOM: %w", err)
		}
		if prev.SBOMDigest != "" && prev.Digest != ev.Artifact.Digest {
			old, err := g.blobs.Blob(ctx, prev.SBOMDigest)
			switch {
			case errors.Is(err, store.ErrNotFound):
				g.logger.Warn("previous release's SBOM is not kept; no diff", "digest", prev.SBOMDigest)
			case err != nil:
				return fmt.Errorf("previous SBOM: %w", err)
			default:
				od, err := sbom.Decode(bytes.NewReader(old.Data))
				if err != nil {
					return fmt.Errorf("previous SBOM %s: %w", prev.SBOMDigest, err)
				}
				ch := sbom.Diff(od, doc)
				ev.SBOM.Diff = &evidence.Diff{FromVersion: prev.Version, Summary: summary(ch), Changes: changes(ch)}
			}
		}
	}
	return nil
}

// filesEvidence keeps this release's file manifest and diffs it against
// the previous admitted release's, when that one is kept.
func (g *Gate) filesEvidence(man *firmware.Manifest, ev *evidence.Evidence, prev store.Release) error {
	b, err := json.Marshal(man)
	if err != nil {
		return err
	}
	if err := g.manifests.Put(ev.Artifact.Digest, b); err != nil {
		return fmt.Errorf("keep file manifest: %w", err)
	}
	if prev.Digest == "" || prev.Digest == ev.Artifact.Digest {
		return nil
	}
	old, err := g.manifests.Get(prev.Digest)
	switch {
	case errors.Is(err, os.ErrNotExist):
		g.logger.Warn("previous release's file manifest is not kept; no file diff", "digest", prev.Digest)
		return nil
	case err != nil:
		return fmt.Errorf("previous file manifest: %w", err)
	}
	om, err := firmware.ReadManifest(bytes.NewReader(old))
	if err != nil {
		return fmt.Errorf("previous file manifest %s: %w", prev.Digest, err)
	}
	fd := &evidence.FileDiff{FromVersion: prev.Version, Summary: map[string]int{}, Changes: []evidence.FileChange{}}
	for _, c := range firmware.DiffManifests(om, man) {
		fd.Summary[c.Code]++
		fd.Changes = append(fd.Changes, evidence.FileChange{Code: c.Code, Path: c.Path, Package: c.Package, Version: c.Version, From: c.From, To: c.To})
	}
	ev.Files = fd
	return nil
}

func components(d *sbom.Document) []evidence.Component {
	out := make([]evidence.Component, 0, len(d.Components))
	for _, c := range d.Components {
		out = append(out, evidence.Component{Name: c.Name, Version: c.Version, PURL: c.PURL, Licenses: c.Licenses, Supplier: c.Supplier})
	}
	return out
}

func summary(ch *sbom.Changes) map[string]int {
	out := map[string]int{}
	for k, v := range ch.Summary {
		out[string(k)] = v
	}
	return out
}

func changes(ch *sbom.Changes) []evidence.Change {
	out := make([]evidence.Change, 0, len(ch.Changes))
	for _, c := range ch.Changes {
		out = append(out, evidence.Change{Code: string(c.Code), Name: c.Name, PURL: c.PURL, Version: c.Version, From: c.From, To: c.To})
	}
	return out
}

// logVerdict signs the decision as a VSA and appends it to the log.
func (g *Gate) logVerdict(ctx context.Context, out *Outcome, u Update) error {
	if g.log == nil {
		return nil
	}
	it, ok, err := g.verdictItem(ctx, out, u)
	if err != nil || !ok {
		return err
	}
	e, err := g.log.Append(ctx, it)
	if err != nil {
		return err
	}
	g.logged(out, e, it.Envelope)
	return nil
}

// logged records in out where its verdict is in the log.
func (g *Gate) logged(out *Outcome, e attest.Entry, env []byte) {
	out.LogEntry = &LogRef{Index: e.Index, TreeSize: g.log.Checkpoint().Size, Origin: g.log.Origin()}
	out.Envelope = env
}

// verdictItem signs out's verdict (an in-toto VSA in a DSSE envelope) as
// the log item to append; ok is false when there is nothing to attest
// about (no artifact digest). The log must be set.
func (g *Gate) verdictItem(ctx context.Context, out *Outcome, u Update) (it attest.Item, ok bool, err error) {
	ev := out.Evidence
	if ev.Artifact.Digest == "" {
		return it, false, nil // nothing to attest about: the artifact could not be read
	}
	hexd := strings.TrimPrefix(ev.Artifact.Digest, "sha256:")
	codes := []string{}
	for _, v := range out.Decision.Violations {
		codes = append(codes, string(v.Code))
	}
	v := attest.Verdict{
		SubjectName: filepath.Base(ev.Artifact.Name), SubjectDigest: map[string]string{"sha256": hexd},
		ResourceURI: resourceURI(u, hexd), Passed: out.Decision.Allow, ReasonCodes: codes,
		PolicyURI: "https://wardgate.dev/policy/default", PolicyDigest: digestMap(out.Decision.PolicyDigest),
		TrustConfigDigest: g.trust.Digest(), TrustedRootDigest: g.rootDigest, Time: ev.EvaluatedAt,
		Vendor: ev.Artifact.Vendor, Product: ev.Artifact.Product, Version: ev.Artifact.Version,
		ReleaseMetadata: releaseRefs(u.release),
	}
	if out.Decision.Allow {
		v.VerifiedLevels = []string{"WARDGATE_ADMITTED"}
	}
	for _, w := range out.Decision.Warnings {
		v.Warnings = append(v.Warnings, attest.Warning{Code: string(w.Code), Message: w.Message})
	}
	if ev.SBOM != nil {
		v.SBOMDigest = ev.SBOM.Digest
		v.Inputs = append(v.Inputs, attest.Input{URI: "sbom:" + ev.SBOM.Source, Digest: digestMap(ev.SBOM.Digest)})
	}
	if ev.Vulnerabilities != nil {
		v.Inputs = append(v.Inputs, attest.Input{URI: "vulndb:" + ev.Vulnerabilities.Database.Format, Digest: digestMap(ev.Vulnerabilities.Database.Digest)})
	}
	for _, s := range u.Signatures {
		v.Inputs = append(v.Inputs, attest.Input{URI: s.Source, Digest: digestMap(digestOf(s.Data))})
	}
	var blobs []attest.Blob
	if len(g.trustBytes) > 0 && ev.Device == nil {
		blobs = append(blobs, attest.Blob{MediaType: "application/vnd.wardgate.trust+yaml", Data: g.trustBytes})
	}
	if ev.Device != nil {
		v.DeviceClass, v.DeviceID = ev.Device.Class, ev.Device.ID
	} else if len(ev.Artifact.DeviceClasses) == 1 {
		v.DeviceClass = ev.Artifact.DeviceClasses[0]
	}
	st, err := attest.NewStatement(v, g.version)
	if err != nil {
		return it, false, err
	}
	env, err := g.log.Signer().SignStatement(ctx, st)
	if err != nil {
		return it, false, err
	}
	dev := ""
	if ev.Device != nil {
		dev = ev.Device.ID
	}
	// The log dates the entry itself (when it is appended, never before
	// the entry before it); the evaluation time, which --evaluation-time
	// may set to any time, is the verdict's timeVerified.
	return attest.Item{Envelope: env, Artifact: ev.Artifact.Digest, Device: dev, Blobs: blobs}, true, nil
}

func digestMap(d string) map[string]string {
	alg, hexd, ok := strings.Cut(d, ":")
	if !ok {
		return map[string]string{}
	}
	return map[string]string{alg: hexd}
}

func resourceURI(u Update, hexd string) string {
	if u.Kind == evidence.KindImage {
		return "oci:" + u.Source
	}
	return "urn:wardgate:" + u.Vendor + ":" + u.Product + ":" + u.Version + ":sha256:" + hexd
}

// imageSource is the sbom.Generate source for an image reference: local
// layouts keep their scheme, anything else is a registry reference, pinned
// to the digest verification resolved (a tag could name another image by
// the time it is scanned).
func imageSource(ref, digest string) string {
	for _, p := range []string{"oci-dir:", "oci-archive:", "docker-archive:"} {
		if strings.HasPrefix(ref, p) {
			return ref
		}
	}
	ref = strings.TrimPrefix(ref, "registry:")
	if r, err := name.ParseReference(ref); err == nil && evidence.IsDigest(digest) {
		return "registry:" + r.Context().Name() + "@" + digest
	}
	return "registry:" + ref
}
