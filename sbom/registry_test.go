package sbom

import (
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// pushFirmwareImage pushes an image whose one layer is the firmwareFiles
// tree to a registry served over HTTP, and returns the tag and digest.
func pushFirmwareImage(t testing.TB) (tag, digest string) {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	files := map[string][]byte{}
	for k, v := range firmwareFiles {
		files[k] = []byte(v)
	}
	layer, err := crane.Layer(files)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	tag = strings.TrimPrefix(srv.URL, "http://") + "/acme/pump-fw:2.4.0"
	ref, err := name.ParseReference(tag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	h, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return tag, h.String()
}

// Issue 12, finding 7: a registry source given by tag has no cache key (a
// tag is mutable); Generate with a cache directory panicked in cachePath
// on it. By tag it scans and caches nothing; by digest it caches.
func TestGenerateRegistryTagWithCache(t *testing.T) {
	t.Parallel()
	tag, digest := pushFirmwareImage(t)
	cache := t.TempDir()
	g, err := Generate(t.Context(), "registry:"+tag, WithCacheDir(cache))
	if err != nil {
		t.Fatal(err)
	}
	if g.Key != "" || g.Cached || componentVersions(t, g.Data)["pkg:deb/debian/busybox?arch=amd64"] != "1:1.35.0-4" {
		t.Fatalf("by tag: key %q, cached %v, components %v", g.Key, g.Cached, componentVersions(t, g.Data))
	}
	byDigest := "registry:" + strings.Split(tag, ":2.4.0")[0] + "@" + digest
	for i, want := range []bool{false, true} {
		g, err := Generate(t.Context(), byDigest, WithCacheDir(cache))
		if err != nil {
			t.Fatal(err)
		}
		if g.Key == "" || g.Cached != want {
			t.Fatalf("by digest, run %d: key %q, cached %v", i, g.Key, g.Cached)
		}
	}
}

// Issue 12, finding 8: a reference without a registry host would go to
// Docker Hub; it is refused before anything is fetched.
func TestGenerateRegistryNeedsHost(t *testing.T) {
	for _, ref := range []string{"oci/pump-agent", "pump-agent:2.4.0", "acme/pump-agent@sha256:" + strings.Repeat("a", 64)} {
		_, err := Generate(t.Context(), "registry:"+ref, WithoutCache())
		if !errors.Is(err, ErrBadSource) || !strings.Contains(err.Error(), "names no registry") {
			t.Errorf("%s: %v", ref, err)
		}
	}
}
