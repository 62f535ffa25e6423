package tuf_test

import (
	"os"
	"testing"
	"time"

	"github.com/wardgate/wardgate/internal/proccpu"
	"github.com/wardgate/wardgate/tuf"
)

// BenchmarkLookup is one TUF lookup of the fixtures' MRI console target
// against the medimaging mirror (fixtures/testdata/tuf): with a fresh
// state (the whole workflow from the pinned root, every file read and
// verified) and with the trusted metadata of an earlier lookup (the state
// a second admit of the vendor starts from); then the artifact's check
// (VerifyLengthHashes over the 160 KiB firmware). cpu-ms/op is the CPU
// time the process used per lookup (GC and the state's file system work
// included), which a loaded machine disturbs less than the wall time.
func BenchmarkLookup(b *testing.B) {
	const fx = "../fixtures/testdata/"
	root, err := os.ReadFile(fx + "tuf/medimaging-root.json")
	if err != nil {
		b.Fatal(err)
	}
	src := tuf.Dir(fx + "tuf/medimaging")
	const target = "mri-console/mri-console-7.2.0.bin"
	now := time.Now()
	lookup := func(b *testing.B, c *tuf.Client) {
		rel, err := c.Lookup(b.Context(), src, target, now)
		if err != nil || !rel.OK() {
			b.Fatalf("%v %+v", err, rel)
		}
		if err := rel.CheckFile(fx + "firmware/mri-console-7.2.0.bin"); err != nil || !rel.OK() {
			b.Fatalf("%v %+v", err, rel)
		}
	}
	cpu := func(b *testing.B, start time.Duration) {
		if c := proccpu.Time(); c > 0 {
			b.ReportMetric(float64(c-start)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
		}
	}
	b.Run("fresh", func(b *testing.B) {
		b.ReportAllocs()
		start := proccpu.Time()
		for b.Loop() {
			c, err := tuf.NewClient("medimaging", root, tuf.NewMemState())
			if err != nil {
				b.Fatal(err)
			}
			lookup(b, c)
		}
		cpu(b, start)
	})
	b.Run("trusted", func(b *testing.B) {
		c, err := tuf.NewClient("medimaging", root, tuf.NewDirState(b.TempDir()))
		if err != nil {
			b.Fatal(err)
		}
		lookup(b, c)
		b.ReportAllocs()
		start := proccpu.Time()
		for b.Loop() {
			lookup(b, c)
		}
		cpu(b, start)
	})
}
