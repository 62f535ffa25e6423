package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/wardgate/wardgate/attest"
	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/evidence"
	"github.com/wardgate/wardgate/gate"
	"github.com/wardgate/wardgate/policy"
	"github.com/wardgate/wardgate/sbom"
	"github.com/wardgate/wardgate/tuf"
	"github.com/wardgate/wardgate/verify"
)

var (
	readers = []Role{RoleAuditor}
)

func (s *Server) register() {
	l := s.limits
	s.handle("POST", "/v1/updates", s.postUpdate, routeOpts{roles: []Role{RoleCI}, timeout: l.UploadTimeout + 2*l.EvaluateWait + l.EvaluateTimeout,
		body: l.MaxUploadBytes, bodyLimit: limitUploadBytes, slow: true, bodyTimeout: l.UploadTimeout})
	s.handle("GET", "/v1/updates/{digest}", s.getUpdate, routeOpts{roles: readers, timeout: 30 * time.Second})
	s.handle("POST", "/v1/updates/{digest}/rollout", s.postRollout, routeOpts{roles: []Role{RoleAdmin}, timeout: 30 * time.Second, body: l.MaxJSONBytes})
	s.handle("POST", "/v1/admissions", s.postAdmission, routeOpts{roles: []Role{RoleUpdateServer}, timeout: l.AdmitTimeout, body: l.MaxJSONBytes, bodyLimit: limitJSONBytes})
	s.handle("POST", "/v1/telemetry", s.postTelemetry, routeOpts{roles: []Role{RoleSensor}, timeout: l.TelemetryTimeout, body: l.MaxTelemetryBytes,
		bodyLimit: limitTelemetryBytes, slow: true, bodyTimeout: l.TelemetryTimeout})
	s.handle("GET", "/v1/findings", s.getFindings, routeOpts{roles: readers, timeout: 30 * time.Second})
	s.handle("GET", "/v1/log/checkpoint", s.getCheckpoint, routeOpts{roles: readers, timeout: 5 * time.Second})
	s.handle("GET", "/v1/log/entries/{index}", s.getEntry, routeOpts{roles: readers, timeout: 10 * time.Second})
	s.handle("GET", "/v1/evidence", s.getEvidence, routeOpts{roles: readers, timeout: l.ExportWait + l.ExportTimeout})
	s.handle("GET", "/v1/audit", s.getAudit, routeOpts{roles: readers, timeout: 10 * time.Second})
	s.handle("GET", "/healthz", s.getHealth, routeOpts{timeout: time.Second})
	s.handle("GET", "/readyz", s.getReady, routeOpts{timeout: 5 * time.Second})
	s.handle("GET", "/metrics", s.getMetrics, routeOpts{timeout: 30 * time.Second})
	s.handle("GET", "/openapi.yaml", s.getOpenAPI, routeOpts{timeout: 5 * time.Second})
	s.metrics.latency["unmatched"] = newHistogram()
	s.mux.Handle("/", s.adapt("unmatched", s.unmatched, routeOpts{}))
}

// unmatched answers 405 (with Allow) when the path exists for other
// methods, else 404.
func (s *Server) unmatched(w http.ResponseWriter, r *http.Request) error {
	var allow []string
	for _, m := range []string{"GET", "POST"} {
		r2 := r.Clone(r.Context())
		r2.Method = m
		if _, p := s.mux.Handler(r2); p != "/" && p != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		return errorf(http.StatusMethodNotAllowed, "method-not-allowed", "%s is not allowed on %s; use %s", r.Method, r.URL.Path, strings.Join(allow, " or "))
	}
	return errorf(http.StatusNotFound, "not-found", "no route %s", r.URL.Path)
}

func mediaType(r *http.Request) string {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return ""
	}
	return mt
}

func unsupported(got string, want ...string) *Error {
	return errorf(http.StatusUnsupportedMediaType, "unsupported-media-type", "content type %q: want %s", got, strings.Join(want, " or "))
}

// decodeJSON reads one JSON object into v, strictly (see decodeStrict):
// no repeated or case-folded keys, no unknown fields, no trailing data.
func (s *Server) decodeJSON(r *http.Request, v any) error {
	if mt := mediaType(r); mt != "application/json" {
		return unsupported(r.Header.Get("Content-Type"), "application/json")
	}
	b, err := io.ReadAll(r.Body) // bounded by the route's body limit
	if err != nil {
		return jsonError(err)
	}
	return decodeStrict(b, v, s.limits.MaxJSONDepth)
}

func jsonError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	var mbe *http.MaxBytesError
	var ste *strictError
	switch {
	case errors.As(err, &mbe), errors.Is(err, os.ErrDeadlineExceeded):
		return err
	case errors.As(err, &ste):
		e := badRequest("malformed JSON: %s", ste.msg)
		e.limit = ste.limit
		return e
	case errors.As(err, &se):
		return badRequest("malformed JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		return badRequest("malformed JSON: field %q must be %s", te.Field, te.Type.Kind())
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("malformed JSON: body ends early")
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return badRequest("malformed JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return badRequest("malformed JSON")
}

func validDigest(d string) bool {
	hexd, ok := strings.CutPrefix(d, "sha256:")
	return ok && len(hexd) == 64 && strings.Trim(hexd, "0123456789abcdef") == ""
}

func (s *Server) audit(r *http.Request, st *reqState, target string, status int, outcome string) error {
	return s.deps.Tokens.Audit(r.Context(), AuditRecord{Time: time.Now().UTC(), RequestID: st.id, Token: st.principal.Name, Role: st.principal.Role,
		Action: st.route, Target: target, Status: status, Outcome: outcome})
}

func codesOf(d policy.Decision) []string {
	out := make([]string, len(d.Violations))
	for i, v := range d.Violations {
		out[i] = string(v.Code)
	}
	return out
}

// --- POST /v1/admissions ---------------------------------------------------

// AdmissionRequest is the body of POST /v1/admissions.
type AdmissionRequest struct {
	Digest  string          `json:"digest,omitempty"`
	Vendor  string          `json:"vendor,omitempty"`
	Product string          `json:"product,omitempty"`
	Version string          `json:"version,omitempty"`
	Device  evidence.Device `json:"device"`
}

// AdmissionResponse is the answer: always 200 once the request is
// understood; Allow false with reason could-not-evaluate when the gate
// could not decide.
type AdmissionResponse struct {
	Allow     bool            `json:"allow"`
	Evaluated bool            `json:"evaluated"`
	Digest    string          `json:"digest"`
	Device    evidence.Device `json:"device"`
	RiskState string          `json:"riskState,omitempty"`
	Decision  policy.Decision `json:"decision"`
	LogEntry  *gate.LogRef    `json:"logEntry,omitempty"`
	// Hold and RetryAfter are set with reason rollout-hold: the device is
	// outside the update's current rollout ring; ask again after
	// RetryAfter (absent when the rollout will not widen).
	Hold       *gate.RolloutHold `json:"hold,omitempty"`
	RetryAfter *time.Time        `json:"retryAfter,omitempty"`
	RequestID  string            `json:"requestId"`
}

// maxField bounds identifiers and small multipart fields.
const maxField = evidence.MaxIdentifierBytes

func outcomeOf(allow bool) string {
	if allow {
		return "allow"
	}
	return "deny"
}

func (req *AdmissionRequest) validate() error {
	d := req.Device
	switch {
	case d.ID == "" || d.Class == "":
		return badRequest("device.id and device.class are required")
	case req.Digest != "" && !validDigest(req.Digest):
		return badRequest("digest %q: want sha256:<64 lowercase hex>", req.Digest)
	case req.Digest == "" && (req.Vendor == "" || req.Product == "" || req.Version == ""):
		return badRequest("name the update by digest, or by vendor, product and version")
	}
	return checkIdents("device.id", d.ID, "device.class", d.Class, "device.installedVersion", d.InstalledVersion, "device.segment", d.Segment,
		"vendor", req.Vendor, "product", req.Product, "version", req.Version)
}

// checkIdents checks name/value pairs with evidence.CheckIdentifier; empty
// values are the caller's to require.
func checkIdents(kv ...string) error {
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			continue
		}
		if err := evidence.CheckIdentifier(kv[i+1]); err != nil {
			e := badRequest("%s %v", kv[i], err)
			if len(kv[i+1]) > evidence.MaxIdentifierBytes {
				e.limit = limitIdentifier
			}
			return e
		}
	}
	return nil
}

// knownAdmissionErrors are the gate's own reasons, safe to show; other
// errors are replaced by the request ID in the response (the signed log
// keeps the full message).
var knownAdmissionErrors = []error{gate.ErrUnknownUpdate, gate.ErrAmbiguousRelease, gate.ErrStaleEvaluation, gate.ErrInvalidDevice, gate.ErrFleetStale}

func (s *Server) postAdmission(w http.ResponseWriter, r *http.Request) error {
	st := state(r)
	var req AdmissionRequest
	if err := s.decodeJSON(r, &req); err != nil {
		return err
	}
	if err := req.validate(); err != nil {
		return err
	}
	// The audit record is written with the log entry and the installation,
	// not after them; if they then fail, the admission is denied and a
	// second record for the request says so.
	recorded := ""
	audited := s.deps.Tokens.ExpectAudit()
	record := func(ctx context.Context, digest string, d policy.Decision) error {
		err := s.audit(r, st, digest+" "+req.Device.ID, http.StatusOK, outcomeOf(d.Allow))
		audited()
		if err != nil {
			return err
		}
		recorded = outcomeOf(d.Allow)
		return nil
	}
	out, err := s.gate.Load().Admit(r.Context(), s.deps.Records, gate.AdmitRequest{Digest: req.Digest, Vendor: req.Vendor, Product: req.Product, Version: req.Version, Device: req.Device, Record: record})
	audited()
	if errors.Is(r.Context().Err(), context.DeadlineExceeded) {
		s.metrics.limit(limitAdmitTimeout)
	}
	resp := AdmissionResponse{Evaluated: out.Evaluated, Digest: out.Evidence.Artifact.Digest, Device: req.Device, Decision: out.Decision, LogEntry: out.LogEntry, RequestID: st.id}
	if err != nil {
		resp.Decision = s.failClosed(r, st, err)
	}
	resp.Allow = err == nil && out.Evaluated && out.Decision.Allow
	if out.Evaluated {
		resp.RiskState = out.Evidence.Fleet.RiskState
		resp.Hold, resp.RetryAfter = out.Hold, out.RetryAfter
		if out.Hold != nil {
			s.metrics.rolloutHolds.add(1, out.Hold.Ring)
		}
	}
	outcome := outcomeOf(resp.Allow)
	if recorded != outcome {
		if aerr := s.audit(r, st, resp.Digest+" "+req.Device.ID, http.StatusOK, outcome); aerr != nil {
			resp.Allow, resp.Evaluated, resp.Decision = false, false, s.failClosed(r, st, aerr)
			outcome = "deny"
		}
	}
	st.decision = outcome
	s.metrics.decision("admit", resp.Allow, codesOf(resp.Decision))
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// failClosed is the could-not-evaluate deny for err, with a message the
// client may see.
func (s *Server) failClosed(r *http.Request, st *reqState, err error) policy.Decision {
	for _, k := range knownAdmissionErrors {
		if errors.Is(err, k) {
			return policy.CouldNotEvaluate(err)
		}
	}
	s.log.LogAttrs(r.Context(), slog.LevelError, "admission failed closed", slogID(st), slogErr(err))
	return policy.CouldNotEvaluate(fmt.Errorf("the gate could not decide; quote request id %s", st.id))
}

// --- POST /v1/updates ------------------------------------------------------

// ImageRequest is the JSON body of POST /v1/updates for an OCI image.
type ImageRequest struct {
	Image         string          `json:"image"`
	Vendor        string          `json:"vendor"`
	Product       string          `json:"product"`
	Version       string          `json:"version"`
	DeviceClasses []string        `json:"deviceClasses,omitempty"`
	SBOM          json.RawMessage `json:"sbom,omitempty"`
}

// UpdateResponse is the answer to POST /v1/updates.
type UpdateResponse struct {
	Allow     bool              `json:"allow"`
	Evaluated bool              `json:"evaluated"`
	Digest    string            `json:"digest"`
	Artifact  evidence.Artifact `json:"artifact"`
	Decision  policy.Decision   `json:"decision"`
	LogEntry  *gate.LogRef      `json:"logEntry,omitempty"`
	RequestID string            `json:"requestId"`
}

func (s *Server) postUpdate(w http.ResponseWriter, r *http.Request) error {
	st := state(r)
	ctx := r.Context()
	mt := mediaType(r)
	if mt != "multipart/form-data" && mt != "application/json" {
		return unsupported(r.Header.Get("Content-Type"), "multipart/form-data", "application/json")
	}
	// Receive first, then evaluate. The body is read within the upload
	// slots (which bound the disk uploads take) and the minimum body rate;
	// an evaluation slot is taken only once it is all on disk, so a slow
	// client never holds one.
	release, err := s.acquire(ctx, s.upSem, s.limits.EvaluateWait, limitUploads, "upload")
	if err != nil {
		return err
	}
	defer release()
	var u gate.Update
	var display string
	var parts []spooledPart
	if mt == "application/json" {
		r.Body = http.MaxBytesReader(w, r.Body, s.limits.MaxJSONBytes+s.limits.MaxSBOMBytes)
		var req ImageRequest
		if err := s.decodeJSON(r, &req); err != nil {
			return err
		}
		if err := s.imageUpdate(req, &u); err != nil {
			return err
		}
		display = u.Source
	} else {
		if err := s.checkFreeSpace(); err != nil {
			return err
		}
		dir, err := os.MkdirTemp(s.deps.WorkDir, "upload-")
		if err != nil {
			return fmt.Errorf("upload directory: %w", err)
		}
		defer os.RemoveAll(dir)
		if parts, err = s.readUpload(r, dir, &u); err != nil {
			return err
		}
		if u.Version == "" && !s.gate.Load().PinsTUF(u.Vendor) {
			return badRequest("version is required: the trust configuration pins no TUF root for %s, whose metadata would say it", u.Vendor)
		}
		display = filepath.Base(u.Source)
	}
	releaseEval, err := s.acquire(ctx, s.evalSem, s.limits.EvaluateWait, limitEvaluations, "evaluation")
	if err != nil {
		return err
	}
	defer releaseEval()
	s.metrics.inflight.Add(1)
	defer s.metrics.inflight.Add(-1)
	s.scanStarted()
	defer s.scanDone()
	if err := loadParts(parts, &u); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.limits.EvaluateTimeout)
	defer cancel()
	out, err := s.gate.Load().Evaluate(ctx, u)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		s.metrics.limit(limitEvaluateTimeout)
	}
	if l := unpackLimit(err); l != "" {
		s.metrics.limit(l)
	}
	if diskFull(err) {
		return errNoSpace(err) // not a verdict on the update: nothing is kept
	}
	if dir := filepath.Dir(u.Source); u.Kind == evidence.KindBlob {
		scrubPaths(&out.Decision, dir) // the upload's temporary path is the gate's business
	}
	if out.Evaluated {
		out.Evidence.Artifact.Name = display // not the upload's temporary path
		if perr := s.deps.Records.Put(ctx, out); perr != nil {
			if diskFull(perr) {
				return errNoSpace(perr)
			}
			return fmt.Errorf("keep evaluation: %w", perr)
		}
	}
	if err != nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "evaluation could not decide", slogID(st), slogErr(err))
	}
	resp := UpdateResponse{Allow: err == nil && out.Evaluated && out.Decision.Allow, Evaluated: out.Evaluated, Digest: out.Evidence.Artifact.Digest,
		Artifact: out.Evidence.Artifact, Decision: out.Decision, LogEntry: out.LogEntry, RequestID: st.id}
	resp.Artifact.Name = display
	if resp.Artifact.DeviceClasses == nil {
		resp.Artifact.DeviceClasses = []string{}
	}
	outcome := "deny"
	switch {
	case resp.Allow:
		outcome = "allow"
	case !out.Evaluated:
		outcome = "could-not-evaluate"
	}
	if err := s.audit(r, st, resp.Digest+" "+u.Vendor+"/"+u.Product+" "+u.Version, http.StatusOK, outcome); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	st.decision = outcome
	s.metrics.decision("evaluate", resp.Allow, codesOf(resp.Decision))
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// scrubPaths removes dir (the upload's temporary directory) from the
// decision's messages: callers see the firmware's file name only.
func scrubPaths(d *policy.Decision, dir string) {
	for _, vs := range [][]policy.Violation{d.Violations, d.Warnings} {
		for i := range vs {
			vs[i].Message = strings.ReplaceAll(vs[i].Message, dir+string(filepath.Separator), "")
			vs[i].Message = strings.ReplaceAll(vs[i].Message, dir, "upload")
		}
	}
}

func (s *Server) imageUpdate(req ImageRequest, u *gate.Update) error {
	if req.Image == "" || req.Vendor == "" || req.Product == "" || req.Version == "" {
		return badRequest("image, vendor, product and version are required")
	}
	if err := checkIdents("vendor", req.Vendor, "product", req.Product, "version", req.Version); err != nil {
		return err
	}
	for i, c := range req.DeviceClasses {
		if err := checkIdents(fmt.Sprintf("deviceClasses[%d]", i), c); err != nil {
			return err
		}
	}
	d, err := name.NewDigest(req.Image, name.StrictValidation)
	if err != nil {
		return badRequest("image %q: want a digest reference, registry/repository@sha256:<hex>", req.Image)
	}
	if reg := d.Context().RegistryStr(); !slices.Contains(s.regs, reg) {
		return errorf(http.StatusBadRequest, "registry-not-allowed", "registry %q is not one the gate is configured to fetch from", reg)
	}
	*u = gate.Update{Source: d.String(), Kind: evidence.KindImage, Vendor: req.Vendor, Product: req.Product, Version: req.Version, TargetClasses: req.DeviceClasses}
	if len(req.SBOM) > 0 {
		u.VendorSBOM = req.SBOM
	}
	return nil
}

// safeName keeps a file name's letters, digits, '.', '_' and '-'.
func safeName(n, fallback string) string {
	n = filepath.Base(strings.ReplaceAll(n, "\\", "/"))
	b := []byte(n)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	n = strings.TrimLeft(string(b), ".")
	if n == "" {
		return fallback
	}
	if len(n) > 100 {
		n = n[:100]
	}
	return n
}

func readPart(p io.Reader, max int64, what string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(p, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, errorf(http.StatusRequestEntityTooLarge, "too-large", "%s over the %d byte limit", what, max)
	}
	return b, nil
}

// spooledPart is a signature, bundle or SBOM part of an upload, kept on
// disk until the evaluation reads it.
type spooledPart struct {
	field, name, path string
}

// spoolPart writes a part to a file in dir, within max bytes; over them it
// returns tooLarge. It returns the bytes written.
func spoolPart(p io.Reader, dir string, n int, max int64, tooLarge *Error) (string, int64, error) {
	f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf(".part-%d", n)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", 0, fmt.Errorf("upload: %w", err)
	}
	w, err := io.Copy(spoolWriter{f}, io.LimitReader(p, max+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", w, err
	}
	if w > max {
		return "", w, tooLarge
	}
	return f.Name(), w, nil
}

// loadParts reads the spooled parts into u, once an evaluation slot is
// taken: at most Evaluations uploads' parts are in memory at once.
func loadParts(parts []spooledPart, u *gate.Update) error {
	for _, p := range parts {
		if p.field == "tuf" {
			f, err := os.Open(p.path)
			if err != nil {
				return fmt.Errorf("upload: %w", err)
			}
			src, err := tuf.ReadArchive(f)
			f.Close()
			if err != nil {
				return badRequest("multipart body: %v", err)
			}
			u.TUF = src
			continue
		}
		b, err := os.ReadFile(p.path)
		if err != nil {
			return fmt.Errorf("upload: %w", err)
		}
		if p.field == "sbom" {
			u.VendorSBOM = b
		} else {
			u.Signatures = append(u.Signatures, verify.Signature{Source: p.name, Data: b})
		}
	}
	return nil
}

// readUpload streams a multipart upload: the firmware to a file in dir
// (within the body limit), the signature, bundle and SBOM parts to files
// beside it (within their limits), the small fields into u. No part is
// held in memory whole but the small fields.
func (s *Server) readUpload(r *http.Request, dir string, u *gate.Update) ([]spooledPart, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, badRequest("multipart body: %v", err)
	}
	l := s.limits
	u.Kind = evidence.KindBlob
	var parts []spooledPart
	var sigs int
	var sbomSeen, tufSeen bool
	seen := map[string]bool{}
	left := l.MaxPartsBytes // for the signature, bundle and SBOM parts together
	overall := func(n int64, err error) error {
		if n > left {
			return &Error{Status: http.StatusRequestEntityTooLarge, Code: "too-large", limit: limitPartsBytes,
				Message: fmt.Sprintf("signature, bundle and SBOM parts over %d bytes together", l.MaxPartsBytes)}
		}
		return err
	}
	for n := 0; ; n++ {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, multipartError(err)
		}
		field := part.FormName()
		switch field {
		case "vendor", "product", "version", "deviceClasses":
			if seen[field] {
				return nil, badRequest("multipart field %q given more than once", field)
			}
			seen[field] = true
			b, err := readPart(part, maxField, field)
			if err != nil {
				return nil, multipartError(err)
			}
			v := strings.TrimSpace(string(b))
			switch field {
			case "vendor":
				u.Vendor = v
			case "product":
				u.Product = v
			case "version":
				u.Version = v
			case "deviceClasses":
				for c := range strings.SplitSeq(v, ",") {
					if c = strings.TrimSpace(c); c != "" {
						u.TargetClasses = append(u.TargetClasses, c)
					}
				}
			}
		case "firmware":
			if u.Source != "" {
				return nil, badRequest("more than one firmware part")
			}
			p := filepath.Join(dir, safeName(part.FileName(), "firmware.bin"))
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return nil, fmt.Errorf("upload: %w", err)
			}
			_, err = io.Copy(spoolWriter{f}, part)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return nil, multipartError(err)
			}
			u.Source = p
		case "signature", "bundle":
			if sigs++; sigs > l.MaxSignatureParts {
				return nil, &Error{Status: http.StatusBadRequest, Code: "too-many-parts", limit: limitSignatureParts,
					Message: fmt.Sprintf("more than %d signature and bundle parts", l.MaxSignatureParts)}
			}
			max := min(l.MaxSignatureBytes, verify.MaxBundleBytes)
			path, w, err := spoolPart(part, dir, n, min(max, left), &Error{Status: http.StatusRequestEntityTooLarge, Code: "too-large", limit: limitSignatureBytes,
				Message: fmt.Sprintf("%s part %d over the %d byte limit", field, sigs, max)})
			if err = overall(w, err); err != nil {
				return nil, multipartError(err)
			}
			left -= w
			parts = append(parts, spooledPart{field: field, name: safeName(part.FileName(), fmt.Sprintf("%s-%d", field, sigs)), path: path})
		case "sbom":
			if sbomSeen {
				return nil, badRequest("more than one sbom part")
			}
			sbomSeen = true
			max := min(l.MaxSBOMBytes, sbom.MaxDocumentSize)
			path, w, err := spoolPart(part, dir, n, min(max, left), &Error{Status: http.StatusRequestEntityTooLarge, Code: "too-large", limit: limitSBOMBytes,
				Message: fmt.Sprintf("sbom part over the %d byte limit", max)})
			if err = overall(w, err); err != nil {
				return nil, multipartError(err)
			}
			left -= w
			parts = append(parts, spooledPart{field: field, path: path})
		case "tuf":
			// The vendor's TUF metadata: a tar (or tar.gz) of
			// metadata/*.json, spooled like the other parts and read
			// (within tuf.MaxArchiveBytes uncompressed) by loadParts.
			if tufSeen {
				return nil, badRequest("more than one tuf part")
			}
			tufSeen = true
			max := int64(tuf.MaxArchiveBytes)
			path, w, err := spoolPart(part, dir, n, min(max, left), &Error{Status: http.StatusRequestEntityTooLarge, Code: "too-large", limit: limitPartsBytes,
				Message: fmt.Sprintf("tuf part over the %d byte limit", max)})
			if err = overall(w, err); err != nil {
				return nil, multipartError(err)
			}
			left -= w
			parts = append(parts, spooledPart{field: field, path: path})
		default:
			return nil, badRequest("unknown multipart field %q; want firmware, signature, bundle, sbom, tuf, vendor, product, version, deviceClasses", field)
		}
	}
	switch {
	case u.Source == "":
		return nil, badRequest("the firmware part is required")
	case u.Vendor == "" || u.Product == "":
		// The version may come from the vendor's TUF metadata (checked by
		// the caller, which knows the trust configuration).
		return nil, badRequest("vendor and product are required")
	}
	if err := checkIdents("vendor", u.Vendor, "product", u.Product, "version", u.Version); err != nil {
		return nil, err
	}
	for _, c := range u.TargetClasses {
		if err := checkIdents("deviceClasses", c); err != nil {
			return nil, err
		}
	}
	return parts, nil
}

func multipartError(err error) error {
	var he *Error
	var mbe *http.MaxBytesError
	var se *spoolError
	if errors.As(err, &he) || errors.As(err, &mbe) || errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &se) {
		return err // the limits', the clock's or the gate's own failure, not a malformed body
	}
	return badRequest("multipart body: %v", err)
}

// --- POST /v1/telemetry ----------------------------------------------------

// TelemetryFormatHeader names the telemetry format (egress format names);
// absent or "auto", it is detected.
const TelemetryFormatHeader = "X-Telemetry-Format"

var telemetryTypes = []string{"application/x-ndjson", "application/jsonl", "application/json", "text/csv", "text/tab-separated-values", "text/plain"}

// noEvents is the 422 for a batch that stored nothing: no line parsed as
// an event of the format, or no event is from a device of the inventory.
func noEvents(st egress.Stats, unresolved int64) *Error {
	if st.Events > 0 {
		return errorf(http.StatusUnprocessableEntity, "no-events", "none of the batch's %d events is from a device in the fleet inventory; nothing was stored (send it again once the inventory lists its devices)", unresolved)
	}
	msg := fmt.Sprintf("no line of the batch is an event of format %s: %d lines, %d malformed, %d skipped (headers, comments, events of other classes)", st.Format, st.Lines, st.Malformed, st.Skipped)
	if len(st.MalformedLines) > 0 {
		msg += fmt.Sprintf(" (first at line %d)", st.MalformedLines[0])
	}
	return errorf(http.StatusUnprocessableEntity, "no-events", "%s; nothing was stored (name the format in %s, or leave it out to have it detected)", msg, TelemetryFormatHeader)
}

// TelemetryResponse is the answer to POST /v1/telemetry.
type TelemetryResponse struct {
	Source     string              `json:"source"` // sha256 of the body
	Added      bool                `json:"added"`  // false: this batch was ingested before
	Stats      egress.Stats        `json:"stats"`
	Stored     int64               `json:"stored"`
	Unresolved int64               `json:"unresolved"` // events of devices not in the inventory
	Updates    []egress.UpdateRisk `json:"updates"`    // updates that are not clean after this batch
	RequestID  string              `json:"requestId"`
}

func (s *Server) postTelemetry(w http.ResponseWriter, r *http.Request) error {
	st := state(r)
	ctx := r.Context()
	if mt := mediaType(r); !slices.Contains(telemetryTypes, mt) {
		return unsupported(r.Header.Get("Content-Type"), telemetryTypes...)
	}
	format := egress.FormatAuto
	if h := r.Header.Get(TelemetryFormatHeader); h != "" {
		f, err := egress.ParseFormat(h)
		if err != nil {
			return errorf(http.StatusBadRequest, "unknown-format", "%s %q: want one of %s", TelemetryFormatHeader, h, egress.FormatNames())
		}
		format = f
	}
	if s.deps.Inventory() == nil {
		return errorf(http.StatusConflict, "no-inventory", "the gate has no fleet inventory; put inventory.json in its state directory and reload")
	}
	if err := s.checkFreeSpace(); err != nil {
		return err
	}
	f, err := os.CreateTemp(s.deps.WorkDir, "telemetry-")
	if err != nil {
		return fmt.Errorf("telemetry spool: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(spoolWriter{io.MultiWriter(f, h)}, r.Body)
	if err != nil {
		return err // MaxBytesError: 413; a slow body: 408; a full disk: 503
	}
	if n == 0 {
		return badRequest("empty telemetry batch")
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("telemetry spool: %w", err)
	}
	resp := TelemetryResponse{Source: "sha256:" + hex.EncodeToString(h.Sum(nil)), RequestID: st.id, Updates: []egress.UpdateRisk{}}
	res, err := s.IngestTelemetry(ctx, egress.Source{Name: "api/" + st.principal.Name + "/" + st.id, Digest: resp.Source}, f, format)
	switch {
	case errors.Is(err, egress.ErrNoInventory):
		return errorf(http.StatusConflict, "no-inventory", "the gate has no fleet inventory; put inventory.json in its state directory and reload")
	case errors.Is(err, egress.ErrNoEvents):
		return noEvents(res.Stats, res.Unresolved)
	case egress.BadInput(err):
		return err
	case diskFull(err):
		return errNoSpace(err)
	case err != nil:
		return fmt.Errorf("%w: telemetry store: %w", ErrUnavailable, err)
	}
	resp.Added, resp.Stats, resp.Stored, resp.Unresolved = res.Added, res.Stats, res.Stored, res.Unresolved
	outcome := "duplicate"
	if res.Added {
		outcome = "ingested"
	}
	if err := s.audit(r, st, resp.Source, http.StatusOK, outcome); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	// The answer waits for an analysis that includes this batch: every
	// admission that starts after it is answered sees it (a quarantine is
	// in force at once), whatever the analyses the admissions are answered
	// from meanwhile.
	if rep, err := s.deps.Risk.Sync(ctx); err == nil {
		for _, u := range rep.Updates {
			if u.State != evidence.RiskClean {
				resp.Updates = append(resp.Updates, u)
			}
		}
	} else {
		s.log.LogAttrs(ctx, slog.LevelWarn, "fleet analysis after ingest", slogID(st), slogErr(err))
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// --- read side -------------------------------------------------------------

// UpdateState is the answer to GET /v1/updates/{digest}.
type UpdateState struct {
	Digest      string             `json:"digest"`
	Evaluated   bool               `json:"evaluated"`
	Artifact    *evidence.Artifact `json:"artifact,omitempty"`
	Decision    *policy.Decision   `json:"decision,omitempty"`
	EvaluatedAt *time.Time         `json:"evaluatedAt,omitempty"`
	LogEntry    *gate.LogRef       `json:"logEntry,omitempty"`
	Risk        egress.UpdateRisk  `json:"risk"`
	Findings    []egress.Finding   `json:"findings"`
	// Rollout is the update's rollout per device class, when its product
	// has rings.
	Rollout []gate.RolloutStatus `json:"rollout,omitempty"`
}

func (s *Server) fleetReport(ctx context.Context) (egress.Report, error) {
	rep, err := s.deps.Risk.Report(ctx)
	if err != nil {
		return rep, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return rep, nil
}

func (s *Server) getUpdate(w http.ResponseWriter, r *http.Request) error {
	d := r.PathValue("digest")
	if !validDigest(d) {
		return badRequest("digest %q: want sha256:<64 lowercase hex>", d)
	}
	rep, err := s.fleetReport(r.Context())
	if err != nil {
		return err
	}
	rec, known, err := s.deps.Records.Lookup(r.Context(), d) // kept by another replica, too
	if err != nil {
		return err
	}
	ur, installed := rep.Risk(d)
	if !known && !installed {
		return errorf(http.StatusNotFound, "not-found", "update %s was never evaluated and no device is recorded installing it", d)
	}
	out := UpdateState{Digest: d, Evaluated: known, Risk: ur, Findings: []egress.Finding{}}
	if !installed {
		out.Risk = egress.UpdateRisk{Digest: d, State: evidence.RiskClean, Installed: []string{}, Affected: []string{}, Codes: []egress.Code{}}
	}
	if known {
		a, dec, at := rec.Evidence.Artifact, rec.Decision, rec.RecordedAt
		out.Artifact, out.Decision, out.EvaluatedAt, out.LogEntry = &a, &dec, &at, rec.LogEntry
		out.Risk.Product, out.Risk.Version = a.Product, a.Version
		if out.Rollout, err = s.gate.Load().RolloutStatus(r.Context(), a); err != nil {
			return err
		}
	}
	for _, f := range rep.Findings {
		if f.Update == d {
			out.Findings = append(out.Findings, f)
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// FindingsResponse is the answer to GET /v1/findings.
type FindingsResponse struct {
	Findings   []egress.Finding    `json:"findings"`
	Updates    []egress.UpdateRisk `json:"updates"`
	Events     int64               `json:"events"`
	Unresolved int64               `json:"unresolved"`
}

func (s *Server) getFindings(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := onlyParams(q, "update", "severity"); err != nil {
		return err
	}
	upd, sev := q.Get("update"), q.Get("severity")
	if upd != "" && !validDigest(upd) {
		return badRequest("update %q: want sha256:<64 lowercase hex>", upd)
	}
	if sev != "" && sev != egress.SeveritySuspicious && sev != egress.SeverityQuarantined && sev != egress.SeverityNotice {
		return badRequest("severity %q: want suspicious, quarantined or notice", sev)
	}
	rep, err := s.fleetReport(r.Context())
	if err != nil {
		return err
	}
	out := FindingsResponse{Findings: []egress.Finding{}, Updates: []egress.UpdateRisk{}, Events: rep.Events, Unresolved: rep.Unresolved}
	for _, f := range rep.Findings {
		if (upd == "" || f.Update == upd) && (sev == "" || f.Severity == sev) {
			out.Findings = append(out.Findings, f)
		}
	}
	for _, u := range rep.Updates {
		if upd == "" || u.Digest == upd {
			out.Updates = append(out.Updates, u)
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func onlyParams(q map[string][]string, allowed ...string) error {
	for k, v := range q {
		if !slices.Contains(allowed, k) {
			return badRequest("unknown query parameter %q; want %s", k, strings.Join(allowed, ", "))
		}
		if len(v) > 1 {
			return badRequest("query parameter %q given %d times", k, len(v))
		}
	}
	return nil
}

// CheckpointResponse is the log's latest signed checkpoint.
type CheckpointResponse struct {
	Origin string `json:"origin"`
	Size   uint64 `json:"size"`
	Root   string `json:"root"` // hex
	Note   string `json:"note"` // the C2SP signed note
}

func (s *Server) getCheckpoint(w http.ResponseWriter, r *http.Request) error {
	cp := s.deps.Log.Checkpoint()
	writeJSON(w, http.StatusOK, CheckpointResponse{Origin: cp.Origin, Size: cp.Size, Root: hex.EncodeToString(cp.Root), Note: string(cp.Note)})
	return nil
}

// EntryResponse is one log entry with its inclusion proof.
type EntryResponse struct {
	Index          uint64    `json:"index"`
	LeafHash       string    `json:"leafHash"` // hex
	Envelope       []byte    `json:"envelope"` // base64 of the DSSE envelope as logged
	Artifact       string    `json:"artifact"`
	Device         string    `json:"device,omitempty"`
	Time           time.Time `json:"time"`
	TreeSize       uint64    `json:"treeSize"`
	InclusionProof []string  `json:"inclusionProof"` // hex hashes
	Checkpoint     string    `json:"checkpoint"`     // the signed note the proof is against (when treeSize is the current size)
}

func parseUint(s string) (uint64, bool) {
	if s == "" || len(s) > 20 || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

func (s *Server) getEntry(w http.ResponseWriter, r *http.Request) error {
	idx, ok := parseUint(r.PathValue("index"))
	if !ok {
		return badRequest("index %q: want a non-negative decimal integer", r.PathValue("index"))
	}
	q := r.URL.Query()
	if err := onlyParams(q, "treeSize"); err != nil {
		return err
	}
	cp := s.deps.Log.Checkpoint()
	size := cp.Size
	if v := q.Get("treeSize"); v != "" {
		n, ok := parseUint(v)
		if !ok || n > cp.Size {
			return badRequest("treeSize %q: want a size up to the log's %d", v, cp.Size)
		}
		size = n
	}
	if idx >= size {
		return errorf(http.StatusNotFound, "not-found", "no entry %d in a log of size %d", idx, size)
	}
	e, err := s.deps.Log.Entry(r.Context(), idx)
	if errors.Is(err, attest.ErrNotFound) {
		return errorf(http.StatusNotFound, "not-found", "no entry %d", idx)
	}
	if err != nil {
		return err
	}
	proof, err := s.deps.Log.InclusionProof(r.Context(), idx, size)
	if err != nil {
		return err
	}
	out := EntryResponse{Index: e.Index, LeafHash: hex.EncodeToString(e.LeafHash), Envelope: e.Envelope, Artifact: e.Artifact, Device: e.Device, Time: e.Time,
		TreeSize: size, InclusionProof: make([]string, len(proof))}
	for i, p := range proof {
		out.InclusionProof[i] = hex.EncodeToString(p)
	}
	if size == cp.Size {
		out.Checkpoint = string(cp.Note)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func parseTime(q map[string][]string, k string) (time.Time, error) {
	v := ""
	if vs := q[k]; len(vs) > 0 {
		v = vs[0]
	}
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, badRequest("%s %q: want RFC 3339, e.g. 2026-11-01T00:00:00Z", k, v)
	}
	return t, nil
}

func (s *Server) getEvidence(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := onlyParams(q, "since", "until", "artifact", "device"); err != nil {
		return err
	}
	since, err := parseTime(q, "since")
	if err != nil {
		return err
	}
	until, err := parseTime(q, "until")
	if err != nil {
		return err
	}
	if !since.IsZero() && !until.IsZero() && until.Before(since) {
		return badRequest("until is before since")
	}
	art, dev := q.Get("artifact"), q.Get("device")
	if art != "" && !validDigest(art) {
		return badRequest("artifact %q: want sha256:<64 lowercase hex>", art)
	}
	if err := checkIdents("device", dev); err != nil {
		return err
	}
	release, err := s.acquire(r.Context(), s.exSem, s.limits.ExportWait, limitExports, "export")
	if err != nil {
		return err
	}
	defer release()
	ctx, cancel := context.WithTimeout(r.Context(), s.limits.ExportTimeout)
	defer cancel()
	r = r.WithContext(ctx)
	if err := s.checkFreeSpace(); err != nil {
		return err
	}
	dir, err := os.MkdirTemp(s.deps.WorkDir, "export-")
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, "evidence.tar.gz")
	m, err := s.deps.Log.Export(r.Context(), p, attest.ExportOptions{Filter: attest.Filter{Since: since, Until: until, Artifact: art, Device: dev}})
	if err != nil {
		return err
	}
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	h := w.Header()
	h.Set("Content-Type", "application/gzip")
	h.Set("Content-Length", strconv.FormatInt(fi.Size(), 10))
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="wardgate-evidence-%d.tar.gz"`, m.TreeSize))
	h.Set("X-Wardgate-Tree-Size", strconv.FormatUint(m.TreeSize, 10))
	h.Set("X-Wardgate-Entries", strconv.FormatUint(m.Entries, 10))
	w.WriteHeader(http.StatusOK)
	_, err = io.Copy(w, f)
	return err
}

// AuditResponse is the answer to GET /v1/audit.
type AuditResponse struct {
	Records []AuditRecord `json:"records"`
}

func (s *Server) getAudit(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := onlyParams(q, "since", "action", "limit"); err != nil {
		return err
	}
	since, err := parseTime(q, "since")
	if err != nil {
		return err
	}
	limit := 1000
	if v := q.Get("limit"); v != "" {
		n, ok := parseUint(v)
		if !ok || n == 0 || n > 100000 {
			return badRequest("limit %q: want 1 to 100000", v)
		}
		limit = int(n)
	}
	recs, err := s.deps.Tokens.AuditLog(r.Context(), AuditFilter{Since: since, Action: q.Get("action"), Limit: limit})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	writeJSON(w, http.StatusOK, AuditResponse{Records: recs})
	return nil
}

// --- operations ------------------------------------------------------------

func (s *Server) getHealth(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// ReadyResponse is the answer to GET /readyz.
type ReadyResponse struct {
	Status string            `json:"status"` // ready or unavailable
	Checks map[string]string `json:"checks"` // name -> ok or unavailable
}

func (s *Server) getReady(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	checks := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"tokens", s.deps.Tokens.Ping},
		{"fleet", func(ctx context.Context) error { _, err := s.deps.Risk.Report(ctx); return err }},
		{"space", func(context.Context) error { return s.diskReady() }},
	}
	if s.deps.Ready != nil {
		checks = append(checks, struct {
			name string
			fn   func(context.Context) error
		}{"stores", s.deps.Ready})
	}
	out := ReadyResponse{Status: "ready", Checks: map[string]string{}}
	status := http.StatusOK
	for _, c := range checks {
		if err := c.fn(ctx); err != nil {
			s.log.LogAttrs(ctx, slog.LevelError, "readiness check failed", slogID(state(r)), slogErr(err))
			out.Checks[c.name], out.Status, status = "unavailable", "unavailable", http.StatusServiceUnavailable
			continue
		}
		out.Checks[c.name] = "ok"
	}
	writeJSON(w, status, out)
	return nil
}

func (s *Server) getMetrics(w http.ResponseWriter, r *http.Request) error {
	var fc []findingCount
	rep, err := s.deps.Risk.Report(r.Context())
	if err == nil {
		counts := map[[2]string]int{}
		for _, f := range rep.Findings {
			counts[[2]string{string(f.Code), f.Severity}]++
		}
		for k, n := range counts {
			fc = append(fc, findingCount{code: k[0], severity: k[1], n: n})
		}
		slices.SortFunc(fc, func(a, b findingCount) int { return strings.Compare(a.code+a.severity, b.code+b.severity) })
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	s.metrics.write(w, fc, err != nil, s.deps.Risk.Stats())
	if s.deps.Replicas != nil {
		if rs, ok := s.deps.Replicas(); ok {
			writeReplicaMetrics(w, rs)
		}
	}
	if s.deps.Commits != nil {
		writeCommitMetrics(w, s.deps.Commits())
	}
	return nil
}
