package gate_test

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/wardgate/wardgate/evidence"
	"github.com/wardgate/wardgate/gate"
	"github.com/wardgate/wardgate/policy"
	"github.com/wardgate/wardgate/sbom"
	"github.com/wardgate/wardgate/trust"
)

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// zstdBomb writes a small zstd stream of n zero bytes.
func zstdBomb(t *testing.T, n int64) string {
	t.Helper()
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(zw, zeros{}, n); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "fw.bin.zst")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestNoScanBeforeVerification: an artifact whose signatures did not
// verify is never unpacked or scanned (issue 13 item 2), unless the gate is
// told to scan unsigned uploads, and then within the same limits.
func TestNoScanBeforeVerification(t *testing.T) {
	tc, err := trust.Load("../fixtures/trust.yaml")
	if err != nil {
		t.Fatal(err)
	}
	eng, err := policy.New(t.Context(), policy.WithTrust(tc))
	if err != nil {
		t.Fatal(err)
	}
	bomb := zstdBomb(t, 256<<20)
	u := gate.Update{Source: bomb, Kind: evidence.KindBlob, Vendor: "acme-infusion", Product: "infusion-pump", Version: "2.4.0"}
	work := t.TempDir()
	g, err := gate.New(tc, eng, newStore(t), gate.WithGenerateOptions(sbom.WithTempDir(work), sbom.WithoutCache()))
	if err != nil {
		t.Fatal(err)
	}
	out, err := g.Evaluate(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	if out.Decision.Allow || out.Evidence.SBOM != nil || !slicesContains(out.Decision.Codes(), policy.CodeUnsigned) {
		t.Fatalf("unsigned: allow %v, sbom %+v, codes %v; want a deny for unsigned and no scan", out.Decision.Allow, out.Evidence.SBOM, out.Decision.Codes())
	}
	// Told to scan unsigned uploads: the bomb is opened, and stopped by
	// the limits (the error is logged: the signatures already failed).
	g, err = gate.New(tc, eng, newStore(t), gate.WithUnsignedScanUnsafe(),
		gate.WithGenerateOptions(sbom.WithTempDir(work), sbom.WithoutCache(), sbom.WithArchiveLimits(32<<20, 100)))
	if err != nil {
		t.Fatal(err)
	}
	out, err = g.Evaluate(t.Context(), u)
	if err != nil || out.Decision.Allow || out.Evidence.SBOM != nil {
		t.Fatalf("scan unsigned: err %v, allow %v, sbom %+v", err, out.Decision.Allow, out.Evidence.SBOM)
	}
	if es, _ := os.ReadDir(work); len(es) != 0 {
		t.Errorf("left in the work directory: %v", es)
	}
}

func slicesContains(cs []policy.Code, c policy.Code) bool {
	for _, x := range cs {
		if x == c {
			return true
		}
	}
	return false
}
