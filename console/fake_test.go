package console_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardgate/wardgate/attest"
	"github.com/wardgate/wardgate/console"
	"github.com/wardgate/wardgate/evidence"
	"github.com/wardgate/wardgate/policy"
	"github.com/wardgate/wardgate/store/sqlite"
)

// fake is console.Data in memory (the store is the one thing tests fake),
// with a real verdict log behind its log methods so that the log page's
// checks run on real signatures and proofs.
type fake struct {
	mu      sync.Mutex
	tokens  map[string]console.Principal
	audit   []console.AuditEvent
	updates []console.UpdateSummary
	details map[string]console.UpdateDetail
	finds   []console.Finding
	devices []console.Device
	device  map[string]console.DeviceDetail
	log     *attest.Log
	tamper  bool // LogPage returns a wrong proof for the newest entry
}

func (f *fake) Authenticate(_ context.Context, secret string) (console.Principal, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.tokens[secret]
	if !ok {
		return console.Principal{}, console.ErrUnauthenticated
	}
	return p, nil
}

func (f *fake) revoke(secret string) {
	f.mu.Lock()
	delete(f.tokens, secret)
	f.mu.Unlock()
}

func (f *fake) Audit(_ context.Context, a console.AuditEvent) error {
	f.mu.Lock()
	f.audit = append(f.audit, a)
	f.mu.Unlock()
	return nil
}

func (f *fake) audits() []console.AuditEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.audit)
}

func (f *fake) Updates(_ context.Context, q console.UpdateQuery) (console.UpdatePage, error) {
	var rows []console.UpdateSummary
	for _, u := range f.updates {
		if (q.State == "" || u.State == q.State) && (q.Vendor == "" || u.Vendor == q.Vendor) && strings.HasPrefix(u.Digest, q.DigestPrefix) &&
			(q.Class == "" || slices.Contains(u.Classes, q.Class)) {
			rows = append(rows, u)
		}
	}
	total := len(rows)
	rows = rows[min(q.Offset, total):min(q.Offset+q.Limit, total)]
	return console.UpdatePage{Updates: rows, Total: total, Vendors: []string{"acme-infusion", "<b>vendor</b>"}, Classes: []string{"infusion-pump"}}, nil
}

func (f *fake) Update(_ context.Context, digest string) (console.UpdateDetail, error) {
	d, ok := f.details[digest]
	if !ok {
		return console.UpdateDetail{}, console.ErrNotFound
	}
	return d, nil
}

func (f *fake) Findings(_ context.Context, q console.FindingQuery) (console.FindingPage, error) {
	var rows []console.Finding
	for _, x := range f.finds {
		if (q.Code == "" || x.Code == q.Code) && (q.Severity == "" || x.Severity == q.Severity) && (q.Update == "" || x.Update == q.Update) {
			rows = append(rows, x)
		}
	}
	return console.FindingPage{Findings: rows, Total: len(rows), Codes: []string{"fleet-correlation", "new-destination"}, Classes: []string{"infusion-pump"}, Events: 5133}, nil
}

func (f *fake) Devices(_ context.Context, q console.DeviceQuery) (console.DevicePage, error) {
	var rows []console.Device
	for _, d := range f.devices {
		if strings.Contains(strings.ToLower(d.Name), strings.ToLower(q.Search)) {
			rows = append(rows, d)
		}
	}
	return console.DevicePage{Devices: rows, Total: len(rows), Classes: []string{"infusion-pump"}, Segments: []string{"clinical"}}, nil
}

func (f *fake) Device(_ context.Context, name string) (console.DeviceDetail, error) {
	d, ok := f.device[name]
	if !ok {
		return console.DeviceDetail{}, console.ErrNotFound
	}
	return d, nil
}

func (f *fake) LogPage(ctx context.Context, q console.LogQuery) (console.LogPage, error) {
	cp := f.log.Checkpoint()
	pub, err := f.log.Signer().PublicKeyPEM()
	if err != nil {
		return console.LogPage{}, err
	}
	out := console.LogPage{Checkpoint: console.Checkpoint{Origin: cp.Origin, Size: cp.Size, Root: cp.Root, Note: cp.Note, PublicKey: pub, KeyID: f.log.Signer().KeyID()}, Total: int(cp.Size)}
	for i := q.Offset; i < int(cp.Size) && i < q.Offset+q.Limit; i++ {
		idx := cp.Size - 1 - uint64(i)
		e, err := f.log.Entry(ctx, idx)
		if err != nil {
			return console.LogPage{}, err
		}
		p, err := f.log.InclusionProof(ctx, idx, cp.Size)
		if err != nil {
			return console.LogPage{}, err
		}
		if f.tamper && i == 0 && len(p) > 0 {
			p[0] = bytes.Repeat([]byte{7}, 32)
		}
		out.Entries = append(out.Entries, console.Entry{Index: e.Index, Time: e.Time, Artifact: e.Artifact, Device: e.Device, LeafHash: e.LeafHash, Envelope: e.Envelope, Proof: p, TreeSize: cp.Size})
	}
	return out, nil
}

func (f *fake) Export(ctx context.Context, q console.ExportQuery) (*console.Pack, error) {
	b := []byte(fmt.Sprintf("pack since=%s device=%s", q.Since.Format(time.RFC3339), q.Device))
	return &console.Pack{ReadCloser: io.NopCloser(bytes.NewReader(b)), Size: int64(len(b)), TreeSize: f.log.Checkpoint().Size, Entries: 2}, nil
}

// hostile is HTML that must come out escaped wherever a string reaches a
// page.
const hostile = `<script>alert("x")</script><img src=x onerror=alert(1)>`

const (
	pumpDigest  = "sha256:1bb9998cc1c40e0f1bfd1a8a4a0d357548b295e01cb1e5fe91b541a676f1d187"
	otherDigest = "sha256:8ad002f1e0260b4b61c8f83b3c4ddc80f6ed6efe95ecb345e80639343ee2e8ce"
	auditorTok  = "wgt_auditor-token-000000000000000000000000000000000"
	adminTok    = "wgt_admin-token-00000000000000000000000000000000000"
	sensorTok   = "wgt_sensor-token-0000000000000000000000000000000000"
)

var t0 = time.Date(2026, 1, 20, 0, 0, 0, 0, time.UTC)

// newFake is the demo story's shape, with hostile strings where a
// vendor, a device or telemetry could put them.
func newFake(t testing.TB) *fake {
	t.Helper()
	ctx := context.Background()
	t.Setenv(attest.PasswordEnv, "")
	dir := t.TempDir()
	key, _, err := attest.Keygen(filepath.Join(dir, "signing"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := attest.LoadSigner(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	lg, err := attest.OpenLog(ctx, st, signer, "wardgate/test")
	if err != nil {
		t.Fatal(err)
	}
	for i, dev := range []string{"", "HOSP-IOT-PUMP-05", "HOSP-IOT-PUMP-06"} {
		st, err := attest.NewStatement(attest.Verdict{SubjectName: "infusion-pump-2.4.0.bin", SubjectDigest: map[string]string{"sha256": pumpDigest[7:]},
			Passed: i < 2, ReasonCodes: map[bool][]string{true: nil, false: {"quarantined"}}[i < 2], DeviceID: dev, DeviceClass: "infusion-pump", Time: t0.Add(time.Duration(i) * time.Hour)}, "test")
		if err != nil {
			t.Fatal(err)
		}
		env, err := signer.SignStatement(ctx, st)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := lg.Append(ctx, attest.Item{Envelope: env, Artifact: pumpDigest, Device: dev, Time: t0.Add(time.Duration(i) * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	hostileDev := "PUMP-" + hostile
	pump := console.UpdateSummary{Digest: pumpDigest, Vendor: "acme-infusion", Product: "infusion-pump", Version: "2.4.0", Classes: []string{"infusion-pump"},
		Evaluated: true, Allow: true, EvaluatedAt: t0.Add(-48 * time.Hour), State: "quarantined", Installed: 3, Affected: 2}
	other := console.UpdateSummary{Digest: otherDigest, Vendor: "<b>vendor</b>", Product: "pump " + hostile, Version: "1.0", Evaluated: true, Allow: false,
		Codes: []string{"sbom-drift"}, EvaluatedAt: t0.Add(-72 * time.Hour), State: "clean"}
	ev := evidence.Evidence{Schema: evidence.Schema, Artifact: evidence.Artifact{Kind: "blob", Name: "fw " + hostile, Digest: pumpDigest, Vendor: "acme-infusion", Product: "infusion-pump", Version: "2.4.0", DeviceClasses: []string{"infusion-pump"}},
		Verification: evidence.Verification{Verified: true, Threshold: 2, Message: "verified " + hostile, TrustedSigners: []evidence.Signer{{KeyID: "c1abc4fb5351e674"}, {Identity: "release@acme-infusion.example", Issuer: "https://accounts.acme-infusion.example"}},
			Signatures: []evidence.Signature{{Source: "infusion-pump-2.4.0.bin.sig", Format: "cosign-signature", Verified: true, Signer: &evidence.Signer{KeyID: "c1abc4fb5351e674a7ad6572b3dd3bfa"}},
				{Source: "bundle " + hostile, Format: "sigstore-bundle-0.3", Verified: true, Signer: &evidence.Signer{Identity: "release@acme-infusion.example", Issuer: "https://accounts.acme-infusion.example"}}}},
		SBOM: &evidence.SBOM{Source: "vendor", Format: "cyclonedx-json", SpecVersion: "1.6", Digest: "sha256:95c8250b5466",
			Components: []evidence.Component{{Name: "libssl3", Version: "3.1.4-r6", PURL: "pkg:apk/alpine/libssl3@3.1.4-r6"}, {Name: "comp " + hostile, Version: "1"}},
			Diff:       &evidence.Diff{FromVersion: "2.3.0", Summary: map[string]int{"upgraded": 1, "added": 1}, Changes: []evidence.Change{{Code: "upgraded", Name: "libssl3", From: "3.1.4-r5", To: "3.1.4-r6"}, {Code: "added", Name: "added " + hostile, To: "1"}}}},
		Drift: &evidence.Drift{Summary: map[string]int{"missing": 1}, Changes: []evidence.Change{{Code: "missing", Name: "drift " + hostile, From: "2.4.0"}}}}
	dec := policy.Decision{Allow: true, PolicyDigest: "sha256:c7cd3ba76bae", Warnings: []policy.Violation{{Code: "downgraded-component", Rule: "sbom", Message: "warn " + hostile, Severity: "medium"}}}
	logIdx := uint64(0)
	installed := t0
	findings := []console.Finding{
		{Code: "fleet-correlation", Severity: "quarantined", Update: pumpDigest, Product: "infusion-pump", Version: "2.4.0", Class: "infusion-pump",
			Devices: []string{"HOSP-IOT-PUMP-01", hostileDev}, Destinations: []string{"raw.githubusercontent.com"}, FirstSeen: t0.Add(10 * time.Hour), LastSeen: t0.Add(30 * time.Hour),
			Bytes: 5400, Connections: 6, Explanation: "2 of the 3 infusion-pump devices reached raw.githubusercontent.com " + hostile},
		{Code: "new-destination", Severity: "suspicious", Update: pumpDigest, Class: "infusion-pump", Devices: []string{"HOSP-IOT-PUMP-01"}, Destinations: []string{"dest " + hostile},
			FirstSeen: t0.Add(11 * time.Hour), LastSeen: t0.Add(12 * time.Hour), Explanation: "new"},
	}
	detail := console.UpdateDetail{Summary: pump, Record: &console.UpdateRecord{Evidence: ev, Decision: dec, RecordedAt: pump.EvaluatedAt, LogIndex: &logIdx}, Findings: findings,
		Devices: []console.Impact{{Device: "HOSP-IOT-PUMP-01", Class: "infusion-pump", Segment: "clinical", Installed: installed, Affected: true},
			{Device: hostileDev, Class: "infusion-pump", Segment: "seg " + hostile, Installed: installed.Add(time.Hour), Affected: true},
			{Device: "HOSP-IOT-PUMP-05", Class: "infusion-pump", Segment: "clinical", Installed: installed.Add(2 * time.Hour)}},
		Contacts: []console.Contact{
			{Device: "HOSP-IOT-PUMP-01", Destination: "raw.githubusercontent.com", Installed: installed, First: t0.Add(10 * time.Hour), Last: t0.Add(20 * time.Hour), Connections: 3, Bytes: 2700,
				Hours: []console.Hour{{Start: t0.Add(10 * time.Hour), Connections: 2, Bytes: 1800}, {Start: t0.Add(20 * time.Hour), Connections: 1, Bytes: 900}}},
			{Device: hostileDev, Destination: "raw.githubusercontent.com", Installed: installed.Add(time.Hour), First: t0.Add(13 * time.Hour), Last: t0.Add(13 * time.Hour), Connections: 3, Bytes: 2700,
				Hours: []console.Hour{{Start: t0.Add(13 * time.Hour), Connections: 3, Bytes: 2700}}},
			{Device: "HOSP-IOT-PUMP-01", Destination: "dest " + hostile, Installed: installed, First: t0.Add(11 * time.Hour), Last: t0.Add(11 * time.Hour), Connections: 1, Bytes: 10,
				Hours: []console.Hour{{Start: t0.Add(11 * time.Hour), Connections: 1, Bytes: 10}}},
		},
		Baseline: console.Baseline{Class: "infusion-pump", Start: t0.Add(-14 * 24 * time.Hour), End: t0, DeviceHourP95: 1000, DeviceHours: 480, ClassDevices: 6, HasObservation: true},
	}
	otherDetail := console.UpdateDetail{Summary: other}
	devs := []console.Device{{Name: "HOSP-IOT-PUMP-01", Class: "infusion-pump", Segment: "clinical", Addresses: []string{"10.20.1.11"}, Findings: 2,
		Current: console.Install{Digest: pumpDigest, Product: "infusion-pump", Version: "2.4.0", Time: installed, State: "quarantined"}},
		{Name: hostileDev, Class: "infusion-pump", Segment: "clinical", Findings: 1}}
	return &fake{
		tokens:  map[string]console.Principal{auditorTok: {Name: "auditor-1", Role: "auditor"}, adminTok: {Name: "admin-1", Role: "admin"}, sensorTok: {Name: "sensor-1", Role: "sensor"}},
		updates: []console.UpdateSummary{pump, other},
		details: map[string]console.UpdateDetail{pumpDigest: detail, otherDigest: otherDetail},
		finds:   findings,
		devices: devs,
		device: map[string]console.DeviceDetail{"HOSP-IOT-PUMP-01": {Device: devs[0], Installs: []console.Install{devs[0].Current}, Findings: findings},
			hostileDev: {Device: devs[1], Findings: findings[:1]}},
		log: lg,
	}
}
