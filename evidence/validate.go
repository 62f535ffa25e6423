package evidence

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// ErrInvalid is wrapped by every error Decode and Validate return for a
// document that does not match the schema.
var ErrInvalid = errors.New("evidence: invalid document")

// FieldError names one field of a document that breaks the schema. Field is
// a JSON path such as "sbom.diff.changes[2].code".
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return "evidence: " + e.Field + ": " + e.Message }

// Unwrap makes every FieldError match ErrInvalid.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// MaxDocumentBytes bounds a document read by Decode.
const MaxDocumentBytes = 64 << 20

// Decode reads one JSON evidence document, rejects unknown fields and
// trailing data, and validates it.
func Decode(r io.Reader) (Evidence, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxDocumentBytes+1))
	if err != nil {
		return Evidence{}, fmt.Errorf("read evidence: %w", err)
	}
	if len(data) > MaxDocumentBytes {
		return Evidence{}, &FieldError{Field: "$", Message: fmt.Sprintf("document larger than %d bytes", MaxDocumentBytes)}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var ev Evidence
	if err := dec.Decode(&ev); err != nil {
		return Evidence{}, decodeError(data, err)
	}
	if dec.More() {
		return Evidence{}, &FieldError{Field: "$", Message: "trailing data after the document"}
	}
	return ev, ev.Validate()
}

func decodeError(data []byte, err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return &FieldError{Field: te.Field, Message: fmt.Sprintf("want %s, got JSON %s", te.Type, te.Value)}
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line := 1 + bytes.Count(data[:min(int(se.Offset), len(data))], []byte("\n"))
		return &FieldError{Field: "$", Message: fmt.Sprintf("line %d: %v", line, err)}
	}
	// encoding/json reports unknown fields as `json: unknown field "x"`.
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return &FieldError{Field: strings.Trim(f, `"`), Message: "unknown field (the schema allows no additional properties)"}
	}
	return &FieldError{Field: "$", Message: err.Error()}
}

// Validate checks the document against the rules of
// docs/evidence.schema.json. It returns nil or the errors.Join of one
// *FieldError per broken rule, each wrapping ErrInvalid.
func (ev Evidence) Validate() error {
	var v validator
	if ev.Schema != Schema {
		v.add("schema", "want %q, got %q", Schema, ev.Schema)
	}
	if ev.EvaluatedAt.IsZero() {
		v.add("evaluatedAt", "required")
	}
	v.digest("trustConfigDigest", ev.TrustConfigDigest, true)
	a := ev.Artifact
	v.enum("artifact.kind", a.Kind, KindBlob, KindImage)
	v.nonEmpty("artifact.name", a.Name)
	v.digest("artifact.digest", a.Digest, true)
	v.digest("artifact.expectedDigest", a.ExpectedDigest, false)
	if a.Size < 0 {
		v.add("artifact.size", "must not be negative, got %d", a.Size)
	}
	v.nonEmpty("artifact.vendor", a.Vendor)
	v.nonEmpty("artifact.product", a.Product)
	if t := ev.Metadata.TUF; t == nil || t.Verified {
		// Empty only when the vendor's TUF metadata, which says the
		// version, could not be verified.
		v.nonEmpty("artifact.version", a.Version)
	}
	if a.DeviceClasses == nil {
		v.add("artifact.deviceClasses", "required (may be empty)")
	}
	for i, c := range a.DeviceClasses {
		v.nonEmpty(fmt.Sprintf("artifact.deviceClasses[%d]", i), c)
	}
	vr := ev.Verification
	if vr.Threshold < 0 {
		v.add("verification.threshold", "must not be negative, got %d", vr.Threshold)
	}
	if vr.Reasons == nil {
		v.add("verification.reasons", "required (may be empty)")
	}
	if vr.TrustedSigners == nil {
		v.add("verification.trustedSigners", "required (may be empty)")
	}
	for i, s := range vr.TrustedSigners {
		v.signer(fmt.Sprintf("verification.trustedSigners[%d]", i), &s)
	}
	if vr.Signatures == nil {
		v.add("verification.signatures", "required (may be empty)")
	}
	for i, s := range vr.Signatures {
		p := fmt.Sprintf("verification.signatures[%d]", i)
		v.nonEmpty(p+".source", s.Source)
		v.nonEmpty(p+".format", s.Format)
		v.signer(p+".signer", s.Signer)
	}
	if ev.Attestations == nil {
		v.add("attestations", "required (may be empty)")
	}
	for i, at := range ev.Attestations {
		p := fmt.Sprintf("attestations[%d]", i)
		v.nonEmpty(p+".predicateType", at.PredicateType)
		v.signer(p+".signer", at.Signer)
	}
	if t := ev.Metadata.TUF; t != nil {
		v.tuf(t)
	}
	if s := ev.SBOM; s != nil {
		v.enum("sbom.source", s.Source, SBOMSourceVendor, SBOMSourceGenerated)
		v.nonEmpty("sbom.format", s.Format)
		v.digest("sbom.digest", s.Digest, true)
		if s.Components == nil {
			v.add("sbom.components", "required (may be empty)")
		}
		for i, c := range s.Components {
			v.nonEmpty(fmt.Sprintf("sbom.components[%d].name", i), c.Name)
		}
		if d := s.Diff; d != nil {
			v.nonEmpty("sbom.diff.fromVersion", d.FromVersion)
			v.changes("sbom.diff", d.Summary, d.Changes, DiffCodes)
		}
	}
	if d := ev.Drift; d != nil {
		v.changes("drift", d.Summary, d.Changes, DriftCodes)
	}
	if f := ev.Files; f != nil {
		v.nonEmpty("files.fromVersion", f.FromVersion)
		v.fileChanges(f)
	}
	if p := ev.Provenance; p != nil {
		v.nonEmpty("provenance.predicateType", p.PredicateType)
	}
	if p := ev.Previous; p != nil {
		v.nonEmpty("previous.version", p.Version)
		v.digest("previous.digest", p.Digest, true)
		if p.AdmittedAt.IsZero() {
			v.add("previous.admittedAt", "required")
		}
	}
	if ev.Ledger.Entries == nil {
		v.add("ledger.entries", "required (may be empty)")
	}
	for i, e := range ev.Ledger.Entries {
		p := fmt.Sprintf("ledger.entries[%d]", i)
		v.digest(p+".digest", e.Digest, true)
		if e.RecordedAt.IsZero() {
			v.add(p+".recordedAt", "required")
		}
	}
	for i, r := range ev.Ledger.Admitted {
		p := fmt.Sprintf("ledger.admitted[%d]", i)
		v.nonEmpty(p+".version", r.Version)
		v.digest(p+".digest", r.Digest, true)
		if r.AdmittedAt.IsZero() {
			v.add(p+".admittedAt", "required")
		}
	}
	if d := ev.Device; d != nil {
		v.nonEmpty("device.id", d.ID)
		v.nonEmpty("device.class", d.Class)
	}
	if ev.Fleet.RiskState != "" {
		v.enum("fleet.riskState", ev.Fleet.RiskState, RiskClean, RiskSuspicious, RiskQuarantined)
	}
	for i, f := range ev.Fleet.Findings {
		p := fmt.Sprintf("fleet.findings[%d]", i)
		v.nonEmpty(p+".code", f.Code)
		v.nonEmpty(p+".message", f.Message)
		if f.ObservedAt.IsZero() {
			v.add(p+".observedAt", "required")
		}
	}
	v.vulnerabilities(ev.Vulnerabilities)
	return errors.Join(v.errs...)
}

type validator struct{ errs []error }

func (v *validator) add(field, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (v *validator) nonEmpty(field, s string) {
	if s == "" {
		v.add(field, "required, must not be empty")
	}
}

func (v *validator) enum(field, s string, allowed ...string) {
	if !slices.Contains(allowed, s) {
		v.add(field, "want one of %s, got %q", strings.Join(allowed, ", "), s)
	}
}

func (v *validator) digest(field, s string, required bool) {
	if s == "" && !required {
		return
	}
	if !IsDigest(s) {
		v.add(field, "want sha256:<64 lowercase hex digits>, got %q", s)
	}
}

func (v *validator) signer(field string, s *Signer) {
	if s == nil {
		return
	}
	if s.KeyID == "" && s.Identity == "" {
		v.add(field, "want keyId or identity")
	}
	if s.Identity != "" && s.Issuer == "" {
		v.add(field+".issuer", "required with identity")
	}
}

func (v *validator) tuf(t *TUF) {
	v.nonEmpty("metadata.tuf.target", t.Target)
	switch {
	case t.Verified && t.Reason != "":
		v.add("metadata.tuf.reason", "must be empty when verified, got %q", t.Reason)
	case t.Verified:
		v.nonEmpty("metadata.tuf.version", t.Version)
	default:
		v.enum("metadata.tuf.reason", t.Reason, TUFReasons...)
	}
	for i, c := range t.DeviceClasses {
		v.nonEmpty(fmt.Sprintf("metadata.tuf.deviceClasses[%d]", i), c)
	}
	if t.Roles == nil {
		v.add("metadata.tuf.roles", "required (may be empty)")
	}
	for i, r := range t.Roles {
		p := fmt.Sprintf("metadata.tuf.roles[%d]", i)
		v.nonEmpty(p+".name", r.Name)
		if r.Version < 1 {
			v.add(p+".version", "must be 1 or more, got %d", r.Version)
		}
		if r.Expires.IsZero() {
			v.add(p+".expires", "required")
		}
		v.digest(p+".digest", r.Digest, false)
	}
}

func (v *validator) changes(field string, summary map[string]int, changes []Change, codes []string) {
	if summary == nil {
		v.add(field+".summary", "required (may be empty)")
	}
	for _, code := range slices.Sorted(maps.Keys(summary)) {
		if !slices.Contains(codes, code) {
			v.add(field+".summary."+code, "unknown change code; want one of %s", strings.Join(codes, ", "))
		} else if summary[code] < 0 {
			v.add(field+".summary."+code, "must not be negative, got %d", summary[code])
		}
	}
	if changes == nil {
		v.add(field+".changes", "required (may be empty)")
	}
	for i, c := range changes {
		p := fmt.Sprintf("%s.changes[%d]", field, i)
		v.enum(p+".code", c.Code, codes...)
		v.nonEmpty(p+".name", c.Name)
	}
}

func (v *validator) fileChanges(f *FileDiff) {
	if f.Summary == nil {
		v.add("files.summary", "required (may be empty)")
	}
	for _, code := range slices.Sorted(maps.Keys(f.Summary)) {
		if !slices.Contains(FileCodes, code) {
			v.add("files.summary."+code, "unknown change code; want one of %s", strings.Join(FileCodes, ", "))
		} else if f.Summary[code] < 0 {
			v.add("files.summary."+code, "must not be negative, got %d", f.Summary[code])
		}
	}
	if f.Changes == nil {
		v.add("files.changes", "required (may be empty)")
	}
	for i, c := range f.Changes {
		p := fmt.Sprintf("files.changes[%d]", i)
		v.enum(p+".code", c.Code, FileCodes...)
		v.nonEmpty(p+".path", c.Path)
	}
}

// IsDigest reports whether s is "sha256:" followed by 64 lowercase hex digits.
func IsDigest(s string) bool {
	h, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(h) != 64 {
		return false
	}
	for i := range len(h) {
		c := h[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
