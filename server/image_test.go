package server

import (
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/wardgate/wardgate/internal/ocisign"
)

// POST /v1/updates with an image reference fetches it from a registry named
// in the configuration (a real registry served over HTTP on loopback),
// verifies its cosign signature against the trust configuration and keeps
// the evaluation; registries not named, and tags, are refused.
func TestUpdateFromRegistry(t *testing.T) {
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(reg.Close)
	host := strings.TrimPrefix(reg.URL, "http://")
	signer, err := ocisign.LoadSigner(fx + "/keys/acme-infusion.key")
	if err != nil {
		t.Fatal(err)
	}
	tag := host + "/acme/pump:2.4.0"
	d, err := ocisign.PushSignedImage(t.Context(), tag, signer)
	if err != nil {
		t.Fatal(err)
	}
	h := d.DigestStr()
	sbom, err := os.ReadFile(fx + "/sbom/infusion-pump-2.4.0.cdx.json")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(_ *Deps, opts *[]Option) { *opts = append(*opts, WithRegistries(host)) })
	body := func(ref string) *strings.Reader {
		b, _ := json.Marshal(map[string]any{"image": ref, "vendor": "acme-infusion", "product": "infusion-pump", "version": "2.4.0", "sbom": json.RawMessage(sbom)})
		return strings.NewReader(string(b))
	}
	r := e.do("POST", "/v1/updates", RoleCI, "application/json", body(d.String()))
	var u struct {
		Evaluated bool   `json:"evaluated"`
		Digest    string `json:"digest"`
		Artifact  struct {
			Kind string `json:"kind"`
		} `json:"artifact"`
		Decision struct {
			Violations []struct {
				Code string `json:"code"`
			} `json:"violations"`
		} `json:"decision"`
	}
	if r.status != 200 || json.Unmarshal(r.body, &u) != nil {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var codes []string
	for _, v := range u.Decision.Violations {
		codes = append(codes, v.Code)
	}
	// The trust configuration wants the release key and the keyless release
	// identity; the image carries only the key's signature.
	if !u.Evaluated || u.Digest != h || u.Artifact.Kind != "image" || !slices.Equal(codes, []string{"threshold-not-met"}) {
		t.Fatalf("evaluation %+v", u)
	}
	if r := e.do("GET", "/v1/updates/"+h, RoleAuditor, "", nil); r.status != 200 {
		t.Fatalf("kept evaluation: %d %s", r.status, r.body)
	}
	// A registry the configuration does not name, and a tag, are refused.
	for _, ref := range []string{"other.registry.example/acme/pump@" + h, tag} {
		if r := e.do("POST", "/v1/updates", RoleCI, "application/json", body(ref)); r.status/100 != 4 || !strings.Contains(string(r.body), `"error"`) {
			t.Fatalf("%s: %d %s", ref, r.status, r.body)
		}
	}
}
