package gate_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardgate/wardgate/attest"
	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/evidence"
	"github.com/wardgate/wardgate/gate"
	"github.com/wardgate/wardgate/policy"
	"github.com/wardgate/wardgate/store"
	"github.com/wardgate/wardgate/store/sqlite"
	"github.com/wardgate/wardgate/trust"
	"github.com/wardgate/wardgate/verify"
)

const (
	fixtureDir = "../fixtures/testdata"
	fleetDir   = "../fixtures/fleet/testdata/"
	// compromised is the 3CX-like update of the fleet fixture.
	compromised = "sha256:7889dee97295a5ad686303faf86796bcb60b09eddd8af8ccac51b789affed93b"
)

type harness struct {
	gate    *gate.Gate
	recs    *gate.Records
	log     *attest.Log
	st      *sqlite.DB
	risk    *gate.RiskCache
	digest  string
	dir     string
	analyze gate.Analyze
}

func sig(t testing.TB, path string) verify.Signature {
	t.Helper()
	s, err := verify.LoadSignature(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// pump is the genuine pump 2.4.0 release: both trusted signers and the
// vendor SBOM.
func pump(t testing.TB) gate.Update {
	t.Helper()
	sb, err := os.ReadFile(fixtureDir + "/sbom/infusion-pump-2.4.0.cdx.json")
	if err != nil {
		t.Fatal(err)
	}
	return gate.Update{Source: fixtureDir + "/firmware/infusion-pump-2.4.0.bin", Kind: evidence.KindBlob, Vendor: "acme-infusion", Product: "infusion-pump", Version: "2.4.0",
		Signatures: []verify.Signature{sig(t, fixtureDir+"/sig/infusion-pump-2.4.0.bin.sig"), sig(t, fixtureDir+"/keyless/infusion-pump-2.4.0.bin.v0.3.sigstore.json")},
		VendorSBOM: sb}
}

func fileDigest(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// newHarness builds a gate on the fixture trust configuration with a log,
// an egress store (fleet inventory of the fixture) behind a RiskCache, and
// evaluates and records the pump release.
func newHarness(t testing.TB, opts ...gate.Option) *harness {
	t.Helper()
	ctx := t.Context()
	h := &harness{dir: t.TempDir()}
	tc, err := trust.Load("../fixtures/trust.yaml")
	if err != nil {
		t.Fatal(err)
	}
	eng, err := policy.New(ctx, policy.WithTrust(tc))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(attest.PasswordEnv, "")
	key, _, err := attest.Keygen(filepath.Join(h.dir, "signing"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := attest.LoadSigner(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if h.st, err = sqlite.Open(ctx, h.dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.st.Close() })
	if h.log, err = attest.OpenLog(ctx, h.st, s, ""); err != nil {
		t.Fatal(err)
	}
	inv, err := egress.ReadInventoryFile(fleetDir + "inventory.json")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := egress.ReadConfigFile(fleetDir + "config.json")
	if err != nil {
		t.Fatal(err)
	}
	h.analyze = func(ctx context.Context) (egress.Report, error) { return egress.AnalyzeStore(ctx, h.st, inv, cfg) }
	// A long fresh wait: an admission right after an invalidation waits for
	// the analysis that covers it however loaded the test machine is.
	if h.risk, err = gate.NewRiskCache(func(ctx context.Context) (egress.Report, error) { return h.analyze(ctx) }, time.Hour, nil, gate.WithFreshWait(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	base := []gate.Option{gate.WithLog(h.log), gate.WithFleet(h.risk), gate.WithInstallations(h.st), gate.WithoutSBOMGeneration()}
	if h.gate, err = gate.New(tc, eng, h.st, append(base, opts...)...); err != nil {
		t.Fatal(err)
	}
	if h.recs, err = gate.OpenRecords(ctx, h.st); err != nil {
		t.Fatal(err)
	}
	out, err := h.gate.Evaluate(ctx, pump(t))
	if err != nil || !out.Decision.Allow {
		t.Fatalf("evaluate: %v %+v", err, out.Decision)
	}
	if err := h.recs.Put(t.Context(), out); err != nil {
		t.Fatal(err)
	}
	h.digest = out.Evidence.Artifact.Digest
	if want := fileDigest(t, fixtureDir+"/firmware/infusion-pump-2.4.0.bin"); h.digest != want {
		t.Fatalf("digest %s, want %s", h.digest, want)
	}
	return h
}

func codes(d policy.Decision) []string {
	var out []string
	for _, v := range d.Violations {
		out = append(out, string(v.Code))
	}
	return out
}

func TestAdmit(t *testing.T) {
	h := newHarness(t)
	pumpDev := evidence.Device{ID: "HOSP-IOT-PUMP-09", Class: "infusion-pump", InstalledVersion: "2.3.0"}
	cases := []struct {
		name    string
		req     gate.AdmitRequest
		allow   bool
		codes   []string
		message string // in the first violation's message
		err     error
	}{
		{name: "allowed by digest", req: gate.AdmitRequest{Digest: h.digest, Device: pumpDev}, allow: true},
		{name: "allowed by release", req: gate.AdmitRequest{Vendor: "acme-infusion", Product: "infusion-pump", Version: "2.4.0", Device: pumpDev}, allow: true},
		{name: "wrong device class", req: gate.AdmitRequest{Digest: h.digest, Device: evidence.Device{ID: "mri-001", Class: "mri-console"}},
			codes: []string{"wrong-device-class", "wrong-device-class"}, message: "mri-001"},
		{name: "rollback below installed", req: gate.AdmitRequest{Digest: h.digest, Device: evidence.Device{ID: "pump-007", Class: "infusion-pump", InstalledVersion: "2.5.1"}},
			codes: []string{"rollback"}, message: "installed on device pump-007"},
		{name: "memo keeps each device's ID", req: gate.AdmitRequest{Digest: h.digest, Device: evidence.Device{ID: "pump-008", Class: "infusion-pump", InstalledVersion: "2.5.1"}},
			codes: []string{"rollback"}, message: "installed on device pump-008"},
		{name: "unknown digest", req: gate.AdmitRequest{Digest: "sha256:" + strings.Repeat("0", 64), Device: pumpDev},
			codes: []string{"could-not-evaluate"}, message: "update not evaluated", err: gate.ErrUnknownUpdate},
		{name: "unknown release", req: gate.AdmitRequest{Vendor: "acme-infusion", Product: "infusion-pump", Version: "9.9.9", Device: pumpDev},
			codes: []string{"could-not-evaluate"}, err: gate.ErrUnknownUpdate},
		{name: "no device class", req: gate.AdmitRequest{Digest: h.digest, Device: evidence.Device{ID: "x"}},
			codes: []string{"could-not-evaluate"}, err: gate.ErrInvalidDevice},
		{name: "newline in device id", req: gate.AdmitRequest{Digest: h.digest, Device: evidence.Device{ID: "pump-1\nforged", Class: "infusion-pump"}},
			codes: []string{"could-not-evaluate"}, message: "device.id holds control character U+000A", err: gate.ErrInvalidDevice},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := h.gate.Admit(t.Context(), h.recs, tc.req)
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if out.Decision.Allow != tc.allow || !slices.Equal(codes(out.Decision), tc.codes) {
				t.Fatalf("allow %v codes %v, want %v %v: %+v", out.Decision.Allow, codes(out.Decision), tc.allow, tc.codes, out.Decision.Violations)
			}
			if out.Evaluated != (tc.err == nil) {
				t.Fatalf("evaluated = %v", out.Evaluated)
			}
			if tc.message != "" && !strings.Contains(out.Decision.Violations[0].Message, tc.message) {
				t.Fatalf("message %q lacks %q", out.Decision.Violations[0].Message, tc.message)
			}
			for _, v := range out.Decision.Violations {
				if strings.Contains(v.Message, "\x00") {
					t.Fatalf("sentinel leaked: %q", v.Message)
				}
			}
			if tc.err == nil && (out.LogEntry == nil || out.Evidence.Device.ID != tc.req.Device.ID) {
				t.Fatalf("log entry %+v, device %+v", out.LogEntry, out.Evidence.Device)
			}
		})
	}
	// Every admission, whatever its end, is done with the log's group
	// commit: none is still announced (a leak would hold later commits).
	if n := h.st.Expecting(); n != 0 {
		t.Fatalf("%d writes still announced to the store's group committers", n)
	}
	// Allowed admissions are installation intents; each decision on a known
	// update is in the log with its device.
	ins, err := h.st.Installations(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) != 1 || ins[0].Device != "HOSP-IOT-PUMP-09" || ins[0].Digest != h.digest || ins[0].Version != "2.4.0" {
		t.Fatalf("installations = %+v", ins)
	}
	var devices []string
	err = h.log.Entries(t.Context(), attest.Filter{Artifact: h.digest}, func(e attest.Entry) error { devices = append(devices, e.Device); return nil })
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"", "HOSP-IOT-PUMP-09", "HOSP-IOT-PUMP-09", "mri-001", "pump-007", "pump-008", "x"}
	slices.Sort(devices)
	if !slices.Equal(devices, want[:6]) {
		t.Fatalf("logged devices %q, want %q", devices, want[:6])
	}
}

// A restarted server (here another process on the same state) knows
// every update it evaluated; a kept record it cannot read stops it.
func TestRecordsSurviveRestart(t *testing.T) {
	h := newHarness(t)
	st, err := sqlite.Open(t.Context(), h.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := gate.OpenRecords(t.Context(), st)
	if err != nil {
		t.Fatal(err)
	}
	rec, ok := recs.Get(h.digest)
	if !ok || !rec.Decision.Allow || rec.Evidence.Artifact.Version != "2.4.0" || rec.Evidence.SBOM == nil {
		t.Fatalf("record = %+v", rec)
	}
	out, err := h.gate.Admit(t.Context(), recs, gate.AdmitRequest{Digest: h.digest, Device: evidence.Device{ID: "p1", Class: "infusion-pump"}})
	if err != nil || !out.Decision.Allow {
		t.Fatalf("admit after restart: %v %+v", err, out.Decision)
	}
	bad := "sha256:" + strings.Repeat("a", 64)
	if err := st.PutEvaluation(t.Context(), store.Evaluation{Digest: bad, Vendor: "v", Product: "p", Version: "1", Record: []byte("{")}); err != nil {
		t.Fatal(err)
	}
	if _, err := gate.OpenRecords(t.Context(), st); err == nil || err.Error() != "records: evaluation of "+bad+": unexpected end of JSON input" {
		t.Fatalf("a corrupt record: %v", err)
	}
}

// An update evaluated by another process after this one opened its
// records is found in the store, by digest and by release.
func TestRecordsFindWhatAnotherProcessKept(t *testing.T) {
	h := newHarness(t)
	st, err := sqlite.Open(t.Context(), h.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := gate.OpenRecords(t.Context(), st) // the other process
	if err != nil {
		t.Fatal(err)
	}
	u := pump(t)
	u.Version, u.Source = "2.3.0", fixtureDir+"/firmware/infusion-pump-2.3.0.bin"
	u.Signatures = []verify.Signature{sig(t, fixtureDir+"/sig/infusion-pump-2.3.0.bin.sig"), sig(t, fixtureDir+"/keyless/infusion-pump-2.3.0.bin.v0.3.sigstore.json")}
	out, err := h.gate.Evaluate(t.Context(), u)
	if err != nil || !out.Evaluated {
		t.Fatalf("evaluate 2.3.0: %v %+v", err, out.Decision)
	}
	if err := h.recs.Put(t.Context(), out); err != nil {
		t.Fatal(err)
	}
	if _, known := recs.Get(out.Evidence.Artifact.Digest); known {
		t.Fatal("the other process knew the record before it was kept")
	}
	dev := evidence.Device{ID: "p2", Class: "infusion-pump"}
	for _, req := range []gate.AdmitRequest{{Digest: out.Evidence.Artifact.Digest, Device: dev}, {Vendor: "acme-infusion", Product: "infusion-pump", Version: "2.3.0", Device: dev}} {
		got, err := h.gate.Admit(t.Context(), recs, req)
		if err != nil || !got.Evaluated || got.Evidence.Artifact.Digest != out.Evidence.Artifact.Digest {
			t.Fatalf("admit %+v through the other process's records: %v %+v", req, err, got.Decision)
		}
	}
	empty, err := sqlite.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Close()
	none, err := gate.OpenRecords(t.Context(), empty)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.gate.Admit(t.Context(), none, gate.AdmitRequest{Digest: h.digest, Device: dev}); !errors.Is(err, gate.ErrUnknownUpdate) {
		t.Fatalf("admit from an empty store: %v, want ErrUnknownUpdate", err)
	}
}

// relabelled installations: the fleet fixture's compromised update is the
// pump 2.4.0 firmware.
func ingestCompromised(t testing.TB, h *harness) {
	t.Helper()
	b, err := os.ReadFile(fleetDir + "installations.json")
	if err != nil {
		t.Fatal(err)
	}
	ins, err := egress.ReadInstallations(strings.NewReader(strings.ReplaceAll(string(b), compromised, h.digest)))
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range ins {
		if err := h.st.RecordInstallation(t.Context(), in); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(fleetDir + "defender.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = h.st.Ingest(t.Context(), egress.Source{Name: "defender.jsonl", Digest: fileDigest(t, fleetDir+"defender.jsonl")}, func(add func(*egress.Event) error) error {
		_, err := egress.Scan(f, add)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A quarantine takes effect on the very next admission: the memo and the
// risk cache never serve the allow made before the telemetry.
func TestAdmitQuarantineTakesEffectAtOnce(t *testing.T) {
	h := newHarness(t)
	req := gate.AdmitRequest{Digest: h.digest, Device: evidence.Device{ID: "HOSP-IOT-PUMP-07", Class: "infusion-pump", InstalledVersion: "2.3.0"}}
	out, err := h.gate.Admit(t.Context(), h.recs, req)
	if err != nil || !out.Decision.Allow {
		t.Fatalf("before telemetry: %v %+v", err, out.Decision)
	}
	ingestCompromised(t, h)
	// Without invalidation the cache still holds the clean analysis.
	if out, _ := h.gate.Admit(t.Context(), h.recs, req); !out.Decision.Allow {
		t.Fatalf("cache was not used: %+v", out.Decision)
	}
	h.risk.Invalidate()
	out, err = h.gate.Admit(t.Context(), h.recs, req)
	if err != nil || out.Decision.Allow || !slices.Equal(codes(out.Decision), []string{"quarantined"}) {
		t.Fatalf("after telemetry: %v %+v", err, out.Decision)
	}
	if out.Evidence.Fleet.RiskState != evidence.RiskQuarantined || !strings.Contains(out.Decision.Violations[0].Message, "raw.githubusercontent.com") {
		t.Fatalf("fleet %+v message %q", out.Evidence.Fleet, out.Decision.Violations[0].Message)
	}
}

// A fleet store that cannot be read means deny, not allow.
func TestAdmitFleetDownDenies(t *testing.T) {
	h := newHarness(t)
	boom := errors.New("database is locked")
	h.analyze = func(context.Context) (egress.Report, error) { return egress.Report{}, boom }
	h.risk.Invalidate()
	out, err := h.gate.Admit(t.Context(), h.recs, gate.AdmitRequest{Digest: h.digest, Device: evidence.Device{ID: "p", Class: "infusion-pump"}})
	if !errors.Is(err, boom) || out.Decision.Allow || out.Evaluated || !slices.Equal(codes(out.Decision), []string{"could-not-evaluate"}) {
		t.Fatalf("err %v outcome %+v", err, out.Decision)
	}
}

// An update evaluated under another trust configuration is not admitted
// until it is evaluated again.
func TestAdmitStaleTrust(t *testing.T) {
	h := newHarness(t)
	b, err := os.ReadFile("../fixtures/trust.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tc, err := trust.Parse(filepath.Join("..", "fixtures", "trust.yaml"), []byte(strings.Replace(string(b), "max_clock_skew: 5m", "max_clock_skew: 4m", 1)))
	if err != nil {
		t.Fatal(err)
	}
	eng, err := policy.New(t.Context(), policy.WithTrust(tc))
	if err != nil {
		t.Fatal(err)
	}
	g2, err := gate.New(tc, eng, h.st, gate.WithLog(h.log))
	if err != nil {
		t.Fatal(err)
	}
	out, err := g2.Admit(t.Context(), h.recs, gate.AdmitRequest{Digest: h.digest, Device: evidence.Device{ID: "p", Class: "infusion-pump"}})
	if !errors.Is(err, gate.ErrStaleEvaluation) || out.Decision.Allow || !slices.Equal(codes(out.Decision), []string{"could-not-evaluate"}) {
		t.Fatalf("err %v decision %+v", err, out.Decision)
	}
}

// Two evaluated digests for one release: asking by release is ambiguous.
func TestAdmitAmbiguousRelease(t *testing.T) {
	h := newHarness(t)
	u := pump(t)
	u.Source = fixtureDir + "/firmware/infusion-pump-2.3.0.bin"
	out, err := h.gate.Evaluate(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.recs.Put(t.Context(), out); err != nil {
		t.Fatal(err)
	}
	_, err = h.gate.Admit(t.Context(), h.recs, gate.AdmitRequest{Vendor: "acme-infusion", Product: "infusion-pump", Version: "2.4.0", Device: evidence.Device{ID: "p", Class: "infusion-pump"}})
	if !errors.Is(err, gate.ErrAmbiguousRelease) {
		t.Fatalf("err = %v", err)
	}
}

// Concurrent admissions across a second boundary all get the decision for
// their own device.
func TestAdmitConcurrent(t *testing.T) {
	h := newHarness(t)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Go(func() {
			id := "dev-" + strings.Repeat("x", i%3) + string(rune('a'+i%26))
			inst := "2.3.0"
			if i%2 == 1 {
				inst = "2.5.0"
			}
			out, err := h.gate.Admit(t.Context(), h.recs, gate.AdmitRequest{Digest: h.digest, Device: evidence.Device{ID: id, Class: "infusion-pump", InstalledVersion: inst}})
			switch {
			case err != nil:
				errs <- err
			case i%2 == 0 && !out.Decision.Allow:
				errs <- errors.New("even device denied")
			case i%2 == 1 && (out.Decision.Allow || !strings.Contains(out.Decision.Violations[0].Message, "device "+id+";")):
				errs <- errors.New("odd device: " + out.Decision.Violations[0].Message)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func BenchmarkAdmit(b *testing.B) {
	h := newHarness(b)
	req := gate.AdmitRequest{Digest: h.digest, Device: evidence.Device{ID: "HOSP-IOT-PUMP-09", Class: "infusion-pump", InstalledVersion: "2.3.0"}}
	b.ReportAllocs()
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			out, err := h.gate.Admit(context.Background(), h.recs, req)
			if err != nil || !out.Decision.Allow {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "admissions/s")
}

// The caller's Record hook gets the policy's decision, while the log and
// installation are written; its failure is a could-not-evaluate deny. It
// is not called when there is no decision.
func TestAdmitRecordHook(t *testing.T) {
	h := newHarness(t)
	dev := evidence.Device{ID: "pump-rec-1", Class: "infusion-pump", InstalledVersion: "2.3.0"}
	var got []policy.Decision
	var digests []string
	record := func(_ context.Context, digest string, d policy.Decision) error {
		got, digests = append(got, d), append(digests, digest)
		return nil
	}
	// Named by release: the hook gets the digest of the record.
	out, err := h.gate.Admit(t.Context(), h.recs, gate.AdmitRequest{Vendor: "acme-infusion", Product: "infusion-pump", Version: "2.4.0", Device: dev, Record: record})
	if err != nil || !out.Decision.Allow || len(got) != 1 || !got[0].Allow || !slices.Equal(digests, []string{h.digest}) {
		t.Fatalf("err %v allow %v, recorded %+v for %q", err, out.Decision.Allow, got, digests)
	}
	boom := errors.New("audit.db: disk I/O error")
	out, err = h.gate.Admit(t.Context(), h.recs, gate.AdmitRequest{Digest: h.digest, Device: dev,
		Record: func(context.Context, string, policy.Decision) error { return boom }})
	if !errors.Is(err, boom) || out.Decision.Allow || out.Evaluated || !slices.Equal(codes(out.Decision), []string{"could-not-evaluate"}) ||
		!strings.Contains(out.Decision.Violations[0].Message, "record decision: audit.db: disk I/O error") {
		t.Fatalf("failing hook: err %v outcome %+v", err, out.Decision)
	}
	got = nil
	_, err = h.gate.Admit(t.Context(), h.recs, gate.AdmitRequest{Digest: "sha256:" + strings.Repeat("0", 64), Device: dev, Record: record})
	if !errors.Is(err, gate.ErrUnknownUpdate) || len(got) != 0 {
		t.Fatalf("unknown update: err %v, recorded %+v", err, got)
	}
}

// Past its TTL the risk cache answers from the previous analysis while a
// new one runs (for at most the staleness bound, here another TTL); after
// Invalidate callers are answered from the previous analysis and Sync
// waits for the new one; past the bound callers wait for it.
func TestRiskCacheRefreshesInBackground(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	runs := 0
	release := make(chan struct{}, 10)
	c, err := gate.NewRiskCache(func(ctx context.Context) (egress.Report, error) {
		<-release
		mu.Lock()
		runs++
		n := runs
		mu.Unlock()
		return egress.Report{Events: int64(n)}, nil
	}, time.Minute, clock)
	if err != nil {
		t.Fatal(err)
	}
	events := func() int64 {
		t.Helper()
		done := make(chan int64, 1)
		go func() {
			r, err := c.Report(t.Context())
			if err != nil {
				t.Error(err)
			}
			done <- r.Events
		}()
		select {
		case n := <-done:
			return n
		case <-time.After(5 * time.Second):
			release <- struct{}{} // let the waiting call finish before failing
			t.Fatal("the call waited for an analysis")
			return 0
		}
	}
	release <- struct{}{}
	if n := events(); n != 1 {
		t.Fatalf("first analysis: events %d", n)
	}
	// Past the TTL: answered at once from analysis 1 while analysis 2 runs.
	advance(90 * time.Second)
	if n := events(); n != 1 {
		t.Fatalf("stale answer: events %d, want 1", n)
	}
	release <- struct{}{}
	deadline := time.Now().Add(5 * time.Second)
	for events() != 2 {
		if time.Now().After(deadline) {
			t.Fatal("the background analysis never replaced the stale one")
		}
		time.Sleep(time.Millisecond)
	}
	// A call that must wait for the analysis the test holds back: it gets
	// no answer until that analysis is released, then the new one's.
	waits := func(what string, want int64) {
		t.Helper()
		got := make(chan int64, 1)
		go func() {
			r, _ := c.Report(t.Context())
			got <- r.Events
		}()
		select {
		case n := <-got:
			t.Fatalf("%s: answered %d without a new analysis", what, n)
		case <-time.After(20 * time.Millisecond):
		}
		release <- struct{}{}
		if n := await(t, got); n != want {
			t.Fatalf("%s: events %d, want %d", what, n, want)
		}
	}
	// Invalidated: callers are answered from the previous analysis at
	// once (within the staleness bound); Sync waits for the new one.
	c.Invalidate()
	if n := events(); n != 2 {
		t.Fatalf("after Invalidate: events %d, want 2", n)
	}
	synced := make(chan int64, 1)
	go func() {
		r, _ := c.Sync(t.Context())
		synced <- r.Events
	}()
	select {
	case n := <-synced:
		t.Fatalf("Sync answered %d without a new analysis", n)
	case <-time.After(20 * time.Millisecond):
	}
	release <- struct{}{}
	if n := await(t, synced); n != 3 {
		t.Fatalf("Sync: events %d, want 3", n)
	}
	// Past the TTL by more than the staleness bound (the TTL here): too old
	// to answer from; the caller waits.
	advance(3 * time.Minute)
	waits("past twice the TTL", 4)
}

func await(t *testing.T, ch <-chan int64) int64 {
	t.Helper()
	select {
	case n := <-ch:
		return n
	case <-time.After(5 * time.Second):
		t.Fatal("no answer within 5 s")
		return 0
	}
}

// AdmitBatch decides each request as Admit does, and writes the verdicts
// of the whole batch in one log append: consecutive indexes under one
// checkpoint; record gets every decision once; the allowed ones are
// installation intents (not on a dry run); a failing record fails the
// decided requests closed.
func TestAdmitBatch(t *testing.T) {
	h := newHarness(t)
	size := h.log.Checkpoint().Size
	unknown := "sha256:" + strings.Repeat("0", 64)
	reqs := []gate.AdmitRequest{
		{Digest: h.digest, Device: evidence.Device{ID: "pump-b1", Class: "infusion-pump", InstalledVersion: "2.3.0"}},
		{Digest: h.digest, Device: evidence.Device{ID: "mri-b2", Class: "mri-console"}},
		{Digest: unknown, Device: evidence.Device{ID: "pump-b3", Class: "infusion-pump"}},
		{Digest: h.digest, Device: evidence.Device{ID: "pump-b4", Class: "infusion-pump"}, DryRun: true},
	}
	var calls int
	var got []policy.Decision
	outs, errs := h.gate.AdmitBatch(t.Context(), h.recs, reqs, func(_ context.Context, ds []policy.Decision) error {
		calls++
		got = ds
		return nil
	})
	if calls != 1 || len(got) != 4 || !got[0].Allow || got[1].Allow || got[2].Allow || !got[3].Allow {
		t.Fatalf("record called %d times with %+v", calls, got)
	}
	for i, want := range []struct {
		allow bool
		codes []string
		err   error
		index uint64
	}{
		{true, nil, nil, size},
		{false, []string{"wrong-device-class", "wrong-device-class"}, nil, size + 1},
		{false, []string{"could-not-evaluate"}, gate.ErrUnknownUpdate, 0},
		{true, nil, nil, size + 2},
	} {
		o := outs[i]
		if o.Decision.Allow != want.allow || !slices.Equal(codes(o.Decision), want.codes) || !errors.Is(errs[i], want.err) || (want.err == nil) != (errs[i] == nil) {
			t.Fatalf("%d: allow %v codes %v err %v", i, o.Decision.Allow, codes(o.Decision), errs[i])
		}
		if want.err != nil {
			if o.LogEntry != nil {
				t.Fatalf("%d: unknown update logged at %d", i, o.LogEntry.Index)
			}
			continue
		}
		if o.LogEntry == nil || o.LogEntry.Index != want.index || o.LogEntry.TreeSize != size+3 || len(o.Envelope) == 0 {
			t.Fatalf("%d: log entry %+v", i, o.LogEntry)
		}
		e, err := h.log.Entry(t.Context(), want.index)
		if err != nil || e.Device != reqs[i].Device.ID || e.Artifact != h.digest {
			t.Fatalf("%d: entry %+v %v", i, e, err)
		}
	}
	if n := h.log.Checkpoint().Size; n != size+3 {
		t.Fatalf("log size %d, want %d", n, size+3)
	}
	if n := h.st.Expecting(); n != 0 {
		t.Fatalf("%d writes still announced", n)
	}
	ins, err := h.st.Installations(t.Context())
	if err != nil || len(ins) != 1 || ins[0].Device != "pump-b1" {
		t.Fatalf("installations %+v %v", ins, err)
	}
	boom := errors.New("audit: disk I/O error")
	outs, errs = h.gate.AdmitBatch(t.Context(), h.recs, reqs[:1], func(context.Context, []policy.Decision) error { return boom })
	if !errors.Is(errs[0], boom) || outs[0].Decision.Allow || outs[0].Evaluated || !strings.Contains(outs[0].Decision.Violations[0].Message, "record decision: audit: disk I/O error") {
		t.Fatalf("failing record: %v %+v", errs[0], outs[0].Decision)
	}
}
