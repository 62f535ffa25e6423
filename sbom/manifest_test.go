package sbom

import (
	"testing"

	"github.com/wardgate/wardgate/firmware"
	"github.com/wardgate/wardgate/internal/fwtest"
)

// TestFileManifestOwners: the manifest of a squashfs firmware lists each
// file with its type, the ELF's build ID, and the package owning it.
func TestFileManifestOwners(t *testing.T) {
	t.Parallel()
	root := fwtest.Rootfs(t, true)
	m, _, err := FileManifest(t.Context(), fwtest.Squashfs(t, root, "gzip"), WithTempDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]firmware.File{}
	for _, f := range m.Files {
		byPath[f.Path] = f
	}
	for p, pkg := range fwtest.Owned {
		if f := byPath[p]; f.Package != pkg || f.Version != fwtest.Packages[pkg] {
			t.Errorf("%s owned by %q %q, want %s %s", p, f.Package, f.Version, pkg, fwtest.Packages[pkg])
		}
	}
	if f := byPath["bin/busybox"]; f.Type != firmware.TypeELF || f.Size != 35664 || len(f.SHA256) != 64 {
		t.Errorf("bin/busybox: %+v", f)
	}
	if f := byPath["etc/init.d/app"]; f.Type != firmware.TypeScript || f.Package != "" {
		t.Errorf("etc/init.d/app: %+v", f)
	}
	if _, ok := byPath["bin/sh"]; ok {
		t.Error("the link bin/sh is listed as a file")
	}
}
