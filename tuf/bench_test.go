package tuf_test

import (
	"os"
	"testing"
	"time"

	"github.com/wardgate/wardgate/tuf"
)

// BenchmarkLookup is one TUF lookup of the fixtures' MRI console target
// against the medimaging mirror (fixtures/testdata/tuf): with a fresh
// state (the whole workflow from the pinned root, every file read and
// verified) and with the trusted metadata of an earlier lookup (the state
// a second admit of the vendor starts from); then the artifact's check
// (VerifyLengthHashes over the 160 KiB firmware).
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
	b.Run("fresh", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c, err := tuf.NewClient("medimaging", root, tuf.NewMemState())
			if err != nil {
				b.Fatal(err)
			}
			lookup(b, c)
		}
	})
	b.Run("trusted", func(b *testing.B) {
		c, err := tuf.NewClient("medimaging", root, tuf.NewDirState(b.TempDir()))
		if err != nil {
			b.Fatal(err)
		}
		lookup(b, c)
		b.ReportAllocs()
		for b.Loop() {
			lookup(b, c)
		}
	})
}
