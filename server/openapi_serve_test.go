package server

import (
	"bytes"
	"os"
	"testing"
)

// TestServesOpenAPI: GET /openapi.yaml is the document in docs/, served
// without a token.
func TestServesOpenAPI(t *testing.T) {
	e := newEnv(t)
	r := e.do("GET", "/openapi.yaml", "", "", nil)
	want, err := os.ReadFile("../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if r.status != 200 || r.header.Get("Content-Type") != "application/yaml" || !bytes.Equal(r.body, want) {
		t.Fatalf("status %d, content type %q, %d bytes (want %d)", r.status, r.header.Get("Content-Type"), len(r.body), len(want))
	}
}
