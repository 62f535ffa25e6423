package server

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// tufArchive is a tar.gz of a fixture mirror's metadata/ directory, as an
// update server uploads it with a release.
func tufArchive(t testing.TB, mirror string) string {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	ents, err := os.ReadDir(filepath.Join(mirror, "metadata"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(mirror, "metadata", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(&tar.Header{Name: "metadata/" + e.Name(), Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(b)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "tuf.tar.gz")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func mriFiles(version string) map[string]string {
	return map[string]string{
		"firmware":  fx + "/firmware/mri-console-" + version + ".bin",
		"signature": fx + "/sig/mri-console-" + version + ".bin.sig",
		"sbom":      fx + "/sbom/mri-console-" + version + ".cdx.json",
	}
}

// POST /v1/updates with the vendor's TUF metadata uploaded as an archive
// (a tuf part): the version comes from the signed target, a rolled-back
// archive is refused once newer metadata was seen, and an archive that is
// not one is a 400.
func TestUpdateWithTUFArchive(t *testing.T) {
	e := newEnv(t)
	mri := map[string]string{"vendor": "medimaging", "product": "mri-console"}
	files := mriFiles("7.2.0")
	files["tuf"] = tufArchive(t, fx+"/tuf/medimaging")
	ct, body := upload(t, mri, files)
	r := e.do("POST", "/v1/updates", RoleCI, ct, body)
	var u UpdateResponse
	r.json(t, &u)
	if r.status != 200 || !u.Allow || u.Artifact.Version != "7.2.0" || u.Artifact.ExpectedDigest != u.Digest {
		t.Fatalf("with metadata: %d %s", r.status, r.body)
	}
	files = mriFiles("7.1.0")
	files["tuf"] = tufArchive(t, fx+"/tuf/medimaging-rolled-back")
	ct, body = upload(t, mri, files)
	r = e.do("POST", "/v1/updates", RoleCI, ct, body)
	u = UpdateResponse{}
	r.json(t, &u)
	if r.status != 200 || u.Allow || !slices.Contains(codes(u.Decision), "metadata-rollback") {
		t.Fatalf("rolled back: %d %s", r.status, r.body)
	}
	bad := filepath.Join(t.TempDir(), "tuf.tar")
	if err := os.WriteFile(bad, []byte("not a tar"), 0o644); err != nil {
		t.Fatal(err)
	}
	files["tuf"] = bad
	ct, body = upload(t, mri, files)
	r = e.do("POST", "/v1/updates", RoleCI, ct, body)
	if r.status != 400 || !strings.Contains(string(r.body), "tuf: metadata archive") {
		t.Fatalf("bad archive: %d %s", r.status, r.body)
	}
	// No version, and a vendor that pins no TUF root: nothing says the
	// version.
	ct, body = upload(t, map[string]string{"vendor": "acme-infusion", "product": "infusion-pump"}, pumpFiles())
	r = e.do("POST", "/v1/updates", RoleCI, ct, body)
	if r.status != 400 || r.errorCode(t) != "bad-request" || !strings.Contains(string(r.body), "version is required: the trust configuration pins no TUF root for acme-infusion") {
		t.Fatalf("no version: %d %s", r.status, r.body)
	}
}
