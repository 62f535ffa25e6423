package gate_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/evidence"
	"github.com/wardgate/wardgate/gate"
	"github.com/wardgate/wardgate/policy"
	"github.com/wardgate/wardgate/store"
	"github.com/wardgate/wardgate/store/sqlite"
	"github.com/wardgate/wardgate/trust"
	"github.com/wardgate/wardgate/verify"
)

const fx = "../fixtures/testdata/"

// newStore is a store on real SQLite files in a new state directory.
func newStore(t testing.TB) *sqlite.DB {
	t.Helper()
	st, err := sqlite.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newGate(t *testing.T, ledger store.Ledger, opts ...gate.Option) *gate.Gate {
	t.Helper()
	tc, err := trust.Load("../fixtures/trust.yaml")
	if err != nil {
		t.Fatal(err)
	}
	eng, err := policy.New(t.Context(), policy.WithTrust(tc))
	if err != nil {
		t.Fatal(err)
	}
	g, err := gate.New(tc, eng, ledger, append([]gate.Option{gate.WithoutSBOMGeneration()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func pumpUpdate(t *testing.T) gate.Update {
	t.Helper()
	u := gate.Update{Source: fx + "firmware/infusion-pump-2.4.0.bin", Kind: evidence.KindBlob, Vendor: "acme-infusion", Product: "infusion-pump", Version: "2.4.0"}
	for _, p := range []string{"sig/infusion-pump-2.4.0.bin.sig", "keyless/infusion-pump-2.4.0.bin.v0.3.sigstore.json"} {
		s, err := verify.LoadSignature(fx + p)
		if err != nil {
			t.Fatal(err)
		}
		u.Signatures = append(u.Signatures, s)
	}
	b, err := os.ReadFile(fx + "sbom/infusion-pump-2.4.0.cdx.json")
	if err != nil {
		t.Fatal(err)
	}
	u.VendorSBOM = b
	return u
}

func TestEvaluateAllowsAndRecords(t *testing.T) {
	ledger := newStore(t)
	g := newGate(t, ledger, gate.WithBlobs(ledger))
	out, err := g.Evaluate(t.Context(), pumpUpdate(t))
	if err != nil {
		t.Fatal(err)
	}
	if !out.Evaluated || !out.Decision.Allow {
		t.Fatalf("decision %+v", out.Decision)
	}
	if out.Evidence.Metadata.SignedAt == nil || out.Evidence.SBOM == nil || out.Evidence.SBOM.Source != evidence.SBOMSourceVendor {
		t.Fatalf("evidence %+v", out.Evidence)
	}
	r, err := ledger.LatestAdmitted(t.Context(), "acme-infusion", "infusion-pump")
	if err != nil || r.Digest != out.Evidence.Artifact.Digest || r.SBOMDigest != out.Evidence.SBOM.Digest {
		t.Fatalf("ledger %+v %v", r, err)
	}
	// The SBOM is kept by its digest, for the next release's diff.
	b, err := ledger.Blob(t.Context(), r.SBOMDigest)
	if want := pumpUpdate(t).VendorSBOM; err != nil || string(b.Data) != string(want) || b.MediaType != store.SBOMMediaType {
		t.Fatalf("kept SBOM: %d bytes, %q, %v", len(b.Data), b.MediaType, err)
	}
}

// failingLedger is a store that is down.
type failingLedger struct{ store.Ledger }

var errDown = errors.New("database is down")

func (failingLedger) RecordRelease(context.Context, store.Release) error { return errDown }
func (failingLedger) ReleaseByVersion(context.Context, string, string, string) ([]store.Release, error) {
	return nil, errDown
}

// A store that is down means deny, not allow.
func TestStoreDownFailsClosed(t *testing.T) {
	g := newGate(t, failingLedger{newStore(t)})
	out, err := g.Evaluate(t.Context(), pumpUpdate(t))
	if !errors.Is(err, errDown) {
		t.Fatalf("err = %v", err)
	}
	if out.Evaluated || out.Decision.Allow || !slices.Equal(out.Decision.Codes(), []policy.Code{policy.CodeCouldNotEvaluate}) {
		t.Fatalf("decision %+v", out.Decision)
	}
}

type fleet struct {
	f   evidence.Fleet
	err error
}

func (f fleet) Risk(context.Context, string) (evidence.Fleet, error) { return f.f, f.err }

func TestFleetRisk(t *testing.T) {
	q := fleet{f: evidence.Fleet{RiskState: evidence.RiskQuarantined, Findings: []evidence.Finding{{Code: "fleet-correlation", Message: "4 pumps reached raw.githubusercontent.com", ObservedAt: time.Date(2026, 1, 30, 9, 36, 0, 0, time.UTC)}}}}
	out, err := newGate(t, newStore(t), gate.WithFleet(q)).Evaluate(t.Context(), pumpUpdate(t))
	if err != nil {
		t.Fatal(err)
	}
	if out.Decision.Allow || !slices.Equal(out.Decision.Codes(), []policy.Code{policy.CodeQuarantined}) {
		t.Fatalf("decision %+v", out.Decision)
	}
	// Telemetry that cannot be read is no allow either.
	out, err = newGate(t, newStore(t), gate.WithFleet(fleet{err: errors.New("egress store locked")})).Evaluate(t.Context(), pumpUpdate(t))
	if err == nil || !strings.Contains(err.Error(), "fleet risk: egress store locked") || out.Decision.Allow {
		t.Fatalf("err %v decision %+v", err, out.Decision)
	}
}

// The trust configuration's keys are read once, when the gate is built:
// a key file replaced afterwards changes nothing until a reload, and a key
// that could not be read then fails its own product closed, and only it.
func TestKeysParsedOnce(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile("../fixtures/trust.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"acme-infusion.pub", "medimaging.pub", "buildctl.pub"} {
		kb, err := os.ReadFile(fx + "keys/" + k)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, k), kb, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	abs, err := filepath.Abs(fx)
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.ReplaceAll(strings.ReplaceAll(string(b), "testdata/keys/", ""), "testdata/", abs+"/")
	path := filepath.Join(dir, "trust.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	tc, err := trust.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := policy.New(t.Context(), policy.WithTrust(tc))
	if err != nil {
		t.Fatal(err)
	}
	// medimaging's key goes away between loading the configuration and
	// building the gate.
	if err := os.Remove(filepath.Join(dir, "medimaging.pub")); err != nil {
		t.Fatal(err)
	}
	g, err := gate.New(tc, eng, newStore(t), gate.WithoutSBOMGeneration())
	if err != nil {
		t.Fatal(err)
	}
	// The pump's key is replaced after the gate is built: the gate keeps the
	// key it read.
	rogue, err := os.ReadFile(fx + "keys/rogue.pub")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "acme-infusion.pub"), rogue, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := g.Evaluate(t.Context(), pumpUpdate(t))
	if err != nil || !out.Decision.Allow {
		t.Fatalf("pump after its key file changed: %v %+v", err, out.Decision)
	}
	mri := gate.Update{Source: fx + "firmware/mri-console-7.2.0.bin", Kind: evidence.KindBlob, Vendor: "medimaging", Product: "mri-console", Version: "7.2.0"}
	out, err = g.Evaluate(t.Context(), mri)
	if err == nil || !strings.Contains(err.Error(), "medimaging.pub") || out.Decision.Allow || !slices.Equal(out.Decision.Codes(), []policy.Code{policy.CodeCouldNotEvaluate}) {
		t.Fatalf("product whose key could not be read: %v %+v", err, out.Decision)
	}
}
