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
	"github.com/wardgate/wardgate/store/inmem"
	"github.com/wardgate/wardgate/trust"
	"github.com/wardgate/wardgate/verify"
)

const fx = "../fixtures/testdata/"

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
	ledger := inmem.New()
	g := newGate(t, ledger)
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
	g := newGate(t, failingLedger{inmem.New()})
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
	out, err := newGate(t, inmem.New(), gate.WithFleet(q)).Evaluate(t.Context(), pumpUpdate(t))
	if err != nil {
		t.Fatal(err)
	}
	if out.Decision.Allow || !slices.Equal(out.Decision.Codes(), []policy.Code{policy.CodeQuarantined}) {
		t.Fatalf("decision %+v", out.Decision)
	}
	// Telemetry that cannot be read is no allow either.
	out, err = newGate(t, inmem.New(), gate.WithFleet(fleet{err: errors.New("egress store locked")})).Evaluate(t.Context(), pumpUpdate(t))
	if err == nil || !strings.Contains(err.Error(), "fleet risk: egress store locked") || out.Decision.Allow {
		t.Fatalf("err %v decision %+v", err, out.Decision)
	}
}

func TestSBOMStoreRejectsBadDigests(t *testing.T) {
	s, err := gate.NewSBOMStore(filepath.Join(t.TempDir(), "sboms"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"sha256:../../etc/passwd", "md5:abc", "sha256:" + strings.Repeat("A", 64)} {
		if err := s.Put(d, []byte("x")); err == nil {
			t.Fatalf("Put(%q) accepted", d)
		}
	}
	d := "sha256:" + strings.Repeat("ab", 32)
	if err := s.Put(d, []byte("sbom")); err != nil {
		t.Fatal(err)
	}
	if b, err := s.Get(d); err != nil || string(b) != "sbom" {
		t.Fatalf("%q %v", b, err)
	}
	if _, err := s.Get("sha256:" + strings.Repeat("cd", 32)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}
}
