package firmware

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"testing"
)

func TestDiffManifests(t *testing.T) {
	old := &Manifest{Schema: ManifestSchema, Files: []File{
		{Path: "bin/busybox", SHA256: "aa", Type: TypeELF, Package: "busybox", Version: "1.36.1-r29"},
		{Path: "etc/motd", SHA256: "m1", Type: TypeOther},
		{Path: "usr/lib/libz.so.1.3.1", SHA256: "z1", Type: TypeELF, Package: "zlib", Version: "1.3.1-r0"},
		{Path: "usr/share/gone", SHA256: "g", Type: TypeOther},
	}}
	new := &Manifest{Schema: ManifestSchema, Files: []File{
		{Path: "bin/busybox", SHA256: "bb", Type: TypeELF, Package: "busybox", Version: "1.36.1-r29"}, // trojaned
		{Path: "bin/helper", SHA256: "hh", Type: TypeELF},
		{Path: "etc/motd", SHA256: "m2", Type: TypeOther},
		{Path: "etc/new.conf", SHA256: "n", Type: TypeOther},
		{Path: "usr/lib/libz.so.1.3.1", SHA256: "z2", Type: TypeELF, Package: "zlib", Version: "1.3.1-r1"}, // upgraded
	}}
	want := []FileChange{
		{Code: ExecutableChangedSameVersion, Path: "bin/busybox", Package: "busybox", Version: "1.36.1-r29", From: "aa", To: "bb"},
		{Code: ExecutableAdded, Path: "bin/helper", To: "hh"},
		{Code: FileChanged, Path: "etc/motd", From: "m1", To: "m2"},
		{Code: FileChanged, Path: "usr/lib/libz.so.1.3.1", Package: "zlib", Version: "1.3.1-r1", From: "z1", To: "z2"},
		{Code: FileAdded, Path: "etc/new.conf", To: "n"},
		{Code: FileRemoved, Path: "usr/share/gone", From: "g"},
	}
	if got := DiffManifests(old, new); !reflect.DeepEqual(got, want) {
		t.Errorf("diff:\n got %+v\nwant %+v", got, want)
	}
	if got := DiffManifests(new, new); len(got) != 0 {
		t.Errorf("same manifest: %+v", got)
	}
}

// releases builds two manifests of n files each, as JSON: every 100th file
// changed, every 1000th ELF rebuilt under the same package version.
func releases(n int) ([]byte, []byte) {
	mk := func(gen int) []byte {
		m := Manifest{Schema: ManifestSchema, Files: make([]File, 0, n)}
		for i := range n {
			f := File{Path: fmt.Sprintf("usr/lib/pkg%03d/file%05d", i%500, i), Size: int64(i), SHA256: fmt.Sprintf("%064x", i), Type: TypeOther}
			if i%10 == 0 {
				f.Type, f.Package, f.Version, f.BuildID = TypeELF, fmt.Sprintf("pkg%03d", i%500), "1.0", fmt.Sprintf("%040x", i)
			}
			if gen == 1 && i%100 == 0 {
				f.SHA256 = fmt.Sprintf("%064x", i+1_000_000)
			}
			m.Files = append(m.Files, f)
		}
		b, _ := json.Marshal(m)
		return b
	}
	return mk(0), mk(1)
}

// BenchmarkDiffManifests reads two releases' manifests of 20,000 files
// each and diffs them (issue 17: under 300 ms).
func BenchmarkDiffManifests(b *testing.B) {
	a, c := releases(20_000)
	b.ReportAllocs()
	for b.Loop() {
		ma, err := ReadManifest(bytes.NewReader(a))
		if err != nil {
			b.Fatal(err)
		}
		mc, err := ReadManifest(bytes.NewReader(c))
		if err != nil {
			b.Fatal(err)
		}
		if d := DiffManifests(ma, mc); len(d) != 200 {
			b.Fatalf("%d changes, want 200", len(d))
		}
	}
}

// BenchmarkUnpackFile unpacks the image named by $WARDGATE_FIRMWARE_IMAGE
// (bench/firmware.sh's 64 MiB squashfs, for one) into a TreeDir, as sbom
// does, for profiling; skipped when unset.
func BenchmarkUnpackFile(b *testing.B) {
	img := os.Getenv("WARDGATE_FIRMWARE_IMAGE")
	if img == "" {
		b.Skip("WARDGATE_FIRMWARE_IMAGE not set")
	}
	fi, err := os.Stat(img)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(fi.Size())
	for b.Loop() {
		dir, remove, err := TreeDir("", "unpack-bench")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Unpack(b.Context(), img, dir, Limits{}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		remove()
		b.StartTimer()
	}
}
