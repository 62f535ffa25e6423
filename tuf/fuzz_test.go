package tuf_test

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/wardgate/wardgate/internal/tufrepo"
	"github.com/wardgate/wardgate/tuf"
)

// FuzzLookup replaces one file of a real repository (made with go-tuf's
// metadata API: a delegated product line, a rotated root) with arbitrary
// bytes and looks up a target. Whatever the bytes, the lookup ends in a
// release with a known reason, never a panic or an error, and a release
// that verifies says exactly what the vendor signed.
func FuzzLookup(f *testing.F) {
	fx := newFixture(f)
	if err := fx.repo.Delegate(metadata.TARGETS, "mri-line", []string{"mri-console/*"}, fx.now.Add(24*time.Hour)); err != nil {
		f.Fatal(err)
	}
	if err := fx.repo.AddTarget("mri-line", "mri-console/mri-console-7.2.0.bin", []byte("mri"), tufrepo.Custom{Version: "7.2.0", DeviceClasses: []string{"mri-console"}}); err != nil {
		f.Fatal(err)
	}
	if err := fx.repo.RotateRoot(metadata.TIMESTAMP); err != nil {
		f.Fatal(err)
	}
	if err := fx.repo.Publish(fx.mirror); err != nil {
		f.Fatal(err)
	}
	files := mirrorFiles(f, fx, "")
	names := slices.Sorted(maps.Keys(files))
	for i, n := range names {
		f.Add(uint8(i), files[n])
		f.Add(uint8(i)|0x80, files[n][:len(files[n])/3])
	}
	f.Add(uint8(0), []byte(`{"signed": {"_type": "root", "spec_version": "1.0.31", "version": 2, "roles": {"root": {"keyids": [], "threshold": 0}}}, "signatures": []}`))
	targets := []string{pumpTarget, "mri-console/mri-console-7.2.0.bin"}
	want := map[string]*tuf.Release{}
	for _, target := range targets {
		c, err := tuf.NewClient(vendor, fx.repo.RootJSON(), tuf.NewMemState())
		if err != nil {
			f.Fatal(err)
		}
		rel, err := c.Lookup(f.Context(), tuf.MemSource(files), target, fx.now)
		if err != nil || !rel.OK() {
			f.Fatalf("unchanged repository: %v %+v", err, rel)
		}
		want[target] = rel
	}
	root := fx.repo.RootJSON()
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		// The low bits choose the file replaced, the high bit the target.
		m := maps.Clone(files)
		m[names[int(which&0x7f)%len(names)]] = data
		target := targets[int(which>>7)]
		c, err := tuf.NewClient(vendor, root, tuf.NewMemState())
		if err != nil {
			t.Fatal(err)
		}
		rel, err := c.Lookup(t.Context(), tuf.MemSource(m), target, fx.now)
		if err != nil {
			t.Fatalf("lookup error (want a release with a reason): %v", err)
		}
		if !rel.OK() {
			if !slices.Contains(tuf.Reasons, rel.Reason) || rel.Detail == "" {
				t.Fatalf("reason %q, detail %q", rel.Reason, rel.Detail)
			}
			return
		}
		w := want[target]
		if rel.Version != w.Version || !slices.Equal(rel.DeviceClasses, w.DeviceClasses) || rel.Length != w.Length || !maps.Equal(rel.Hashes, w.Hashes) {
			t.Fatalf("verified release differs from what the vendor signed: %+v, want %+v", rel, w)
		}
	})
}
