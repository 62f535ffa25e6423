package sbom

import (
	"bytes"
	"encoding/json"
	"maps"
	"path/filepath"
	"slices"
	"testing"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"github.com/wardgate/wardgate/internal/fwtest"
)

// TestGenerateFirmwareFormats: the SBOM of each firmware image, made by
// the real tool from a root filesystem, has the same components as syft's
// SBOM of that root filesystem as a directory, and says in which layer and
// at which path each package was found.
func TestGenerateFirmwareFormats(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		links  bool
		build  func(t *testing.T, root string) string
		layer  string // the layer holding lib/apk/db/installed
		format string
	}{
		{"squashfs", true, func(t *testing.T, r string) string { return fwtest.Squashfs(t, r, "xz") }, ".", "squashfs"},
		{"ext4", true, func(t *testing.T, r string) string { return fwtest.Ext(t, r, "ext4") }, ".", "ext"},
		{"ext2 1 KiB blocks", true, func(t *testing.T, r string) string { return fwtest.ExtWith(t, r, "ext2", 1024, "") }, ".", "ext"},
		{"ext3 2 KiB blocks", true, func(t *testing.T, r string) string {
			return fwtest.ExtWith(t, r, "ext3", 2048, "")
		}, ".", "ext"},
		{"cpio-newc.gz", true, func(t *testing.T, r string) string {
			return fwtest.Compress(t, fwtest.CPIO(t, r, "newc"), "gzip", ".gz")
		}, ".", "gzip+cpio-newc"},
		{"cpio-odc", true, func(t *testing.T, r string) string { return fwtest.CPIO(t, r, "odc") }, ".", "cpio-odc"},
		{"fat", false, func(t *testing.T, r string) string { return fwtest.FAT(t, r) }, ".", "fat"},
		{"iso9660", true, func(t *testing.T, r string) string { return fwtest.ISO(t, r) }, ".", "iso9660"},
		{"zip", true, func(t *testing.T, r string) string { return fwtest.Zip(t, r) }, ".", "zip"},
		{"tar.xz", true, func(t *testing.T, r string) string { return fwtest.Compress(t, fwtest.Tar(t, r), "xz", ".xz", "-0") }, ".", "xz+tar"},
		{"tar.bz2", true, func(t *testing.T, r string) string { return fwtest.Compress(t, fwtest.Tar(t, r), "bzip2", ".bz2") }, ".", "bzip2+tar"},
		{"tar.zst", true, func(t *testing.T, r string) string { return fwtest.Compress(t, fwtest.Tar(t, r), "zstd", ".zst", "-q") }, ".", "zstd+tar"},
		{"tar.lz4", true, func(t *testing.T, r string) string { return fwtest.Compress(t, fwtest.Tar(t, r), "lz4", ".lz4", "-q") }, ".", "lz4+tar"},
		{"uimage", true, func(t *testing.T, r string) string {
			return fwtest.UImage(t, "rootfs", "ramdisk", "gzip", fwtest.Compress(t, fwtest.CPIO(t, r, "newc"), "gzip", ".gz"))
		}, "rootfs", "cpio-newc"},
		{"fit", true, func(t *testing.T, r string) string {
			return fwtest.FIT(t, "pump 4.2", true, fwtest.FITImage{Node: "rootfs-1", Type: "filesystem", Compression: "none", File: fwtest.Squashfs(t, r, "gzip")})
		}, "rootfs-1", "squashfs"},
		{"vendor header + squashfs", true, func(t *testing.T, r string) string { return fwtest.WithHeader(t, fwtest.Squashfs(t, r, "gzip"), 256) }, ".", "squashfs"},
	}
	root := fwtest.Rootfs(t, true)
	want := packagesOf(t, generate(t, "dir:"+root))
	rootNoLinks := fwtest.Rootfs(t, false)
	wantNoLinks := packagesOf(t, generate(t, "dir:"+rootNoLinks))
	if len(want) != 3 {
		t.Fatalf("syft found %v in the root filesystem, want the 3 apk packages", want)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, w := root, want
			if !tc.links {
				r, w = rootNoLinks, wantNoLinks
			}
			img := tc.build(t, r)
			data := generate(t, img)
			if got := packagesOf(t, data); !maps.Equal(got, w) {
				t.Errorf("components %v, want %v (syft on the directory)", got, w)
			}
			props := layerProps(t, data, "busybox")
			if props["wardgate:firmware:location:0:layer"] != tc.layer || props["wardgate:firmware:location:0:formats"] != tc.format ||
				props["wardgate:firmware:location:0:path"] != "/lib/apk/db/installed" {
				t.Errorf("busybox's layer properties %v, want layer %q formats %q path /lib/apk/db/installed", props, tc.layer, tc.format)
			}
			if tc.name == "vendor header + squashfs" && props["wardgate:firmware:location:0:offset"] != "256" {
				t.Errorf("carved squashfs: offset %q, want 256", props["wardgate:firmware:location:0:offset"])
			}
		})
	}
}

func generate(t *testing.T, src string) []byte {
	t.Helper()
	g, err := Generate(t.Context(), src, WithoutCache(), WithTempDir(t.TempDir()))
	if err != nil {
		t.Fatalf("Generate(%s): %v", filepath.Base(src), err)
	}
	return g.Data
}

// packagesOf maps each package's identity to its version.
func packagesOf(t *testing.T, data []byte) map[string]string {
	t.Helper()
	return componentVersions(t, data)
}

// layerProps returns the wardgate:firmware properties of the named
// component.
func layerProps(t *testing.T, data []byte, name string) map[string]string {
	t.Helper()
	var bom struct {
		Components []struct {
			Name       string `json:"name"`
			Properties []struct{ Name, Value string }
			Evidence   *struct {
				Occurrences []struct{ Location, AdditionalContext string }
			}
		}
	}
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&bom); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range bom.Components {
		if c.Name != name {
			continue
		}
		for _, p := range c.Properties {
			if len(p.Name) > 18 && p.Name[:18] == "wardgate:firmware:" {
				out[p.Name] = p.Value
			}
		}
		if c.Evidence == nil || !slices.ContainsFunc(c.Evidence.Occurrences, func(o struct{ Location, AdditionalContext string }) bool {
			return o.AdditionalContext != ""
		}) {
			t.Errorf("%s has no evidence occurrence naming its firmware layer", name)
		}
	}
	return out
}

// TestFirmwareLayersEncodedOnce: the layer annotations are added to the
// CycloneDX model before it is encoded, and the document is the one the
// earlier way gave (encode, decode with cyclonedx-go, annotate, encode
// again): decoding it and encoding it again changes no byte, in every
// CycloneDX encoding, and each carries the annotations its version can.
func TestFirmwareLayersEncodedOnce(t *testing.T) {
	t.Parallel()
	img := fwtest.Squashfs(t, fwtest.Rootfs(t, true), "gzip")
	var outs []OutputFormat
	for _, name := range []string{"cyclonedx-json", "cyclonedx-json@1.5", "cyclonedx-xml", "cyclonedx-xml@1.4"} {
		of, err := ParseOutputFormat(name)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, of)
	}
	g, err := Generate(t.Context(), img, WithoutCache(), WithTempDir(t.TempDir()), WithOutputs(outs...))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range g.Outputs {
		ff := cdx.BOMFileFormatJSON
		if o.Format.Name == FormatCycloneDXXML {
			ff = cdx.BOMFileFormatXML
		}
		var bom cdx.BOM
		if err := cdx.NewBOMDecoder(bytes.NewReader(o.Data), ff).Decode(&bom); err != nil {
			t.Fatalf("%s: %v", o.Format, err)
		}
		var again bytes.Buffer
		enc := cdx.NewBOMEncoder(&again, ff).SetPretty(true)
		if ff == cdx.BOMFileFormatJSON {
			enc.SetEscapeHTML(false)
		}
		if err := enc.EncodeVersion(&bom, bom.SpecVersion); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again.Bytes(), o.Data) {
			t.Errorf("%s: decoding and encoding again changes the document (%d bytes, then %d)", o.Format, len(o.Data), again.Len())
		}
		n := bytes.Count(o.Data, []byte("wardgate:firmware:location:0:layer"))
		occ := bytes.Count(o.Data, []byte("firmware layer . (squashfs, in "))
		if n != 3 {
			t.Errorf("%s: %d components with layer properties, want the 3 packages", o.Format, n)
		}
		// CycloneDX 1.5 has no additionalContext (cyclonedx-go drops it).
		wantOcc := 0
		if ff == cdx.BOMFileFormatJSON && o.Format.Version != "1.5" {
			wantOcc = 3
		}
		if occ != wantOcc {
			t.Errorf("%s: %d evidence occurrences naming the layer, want %d", o.Format, occ, wantOcc)
		}
	}
}
