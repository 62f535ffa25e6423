package sbom

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/anchore/syft/syft/format/spdxtagvalue"
)

// FuzzDecode checks Decode's invariants on any input: it never panics, a
// decoded document has named components and identity-keyed edges, decoding
// is deterministic, and a document never differs from itself.
func FuzzDecode(f *testing.F) {
	for _, name := range []string{"proton-bridge-v1.6.3.bom.json", "proton-bridge-v1.8.0.bom.json"} {
		if b, err := os.ReadFile(filepath.Join(sharedSBOMs, name)); err == nil {
			f.Add(b)
		}
	}
	bom := cdxModel()
	for _, v := range []cdx.SpecVersion{cdx.SpecVersion1_2, cdx.SpecVersion1_6} {
		f.Add(encodeCDX(f, bom, cdx.BOMFileFormatJSON, v))
		f.Add(encodeCDX(f, bom, cdx.BOMFileFormatXML, v))
	}
	f.Add(spdxModel(f))
	tv, err := spdxtagvalue.NewFormatEncoderWithConfig(spdxtagvalue.EncoderConfig{Version: "2.2"})
	f.Add(encodeWith(f, tv, err, syftModel(f)))
	f.Add([]byte(`{"bomFormat":"CycloneDX","specVersion":"1.5","components":[{"bom-ref":"a","name":"a","components":[{"bom-ref":"a"}]}],"dependencies":[{"ref":"a","dependsOn":["a"]}]}`))

	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Decode(bytes.NewReader(data))
		if err != nil {
			if d != nil {
				t.Fatal("document returned with an error")
			}
			return
		}
		ids := map[string]bool{}
		if d.Subject != nil {
			ids[d.Subject.Identity()] = true
		}
		for _, c := range d.Components {
			if c.Name == "" {
				t.Fatalf("component without a name: %+v", c)
			}
			ids[c.Identity()] = true
		}
		for _, e := range d.Dependencies {
			if !ids[e.From] || !ids[e.To] {
				t.Fatalf("edge %v names an unknown identity", e)
			}
		}
		again, err := Decode(bytes.NewReader(data))
		if err != nil || !reflect.DeepEqual(d, again) {
			t.Fatalf("decode is not deterministic: %v", err)
		}
		if ch := Diff(d, again); len(ch.Changes) != 0 {
			t.Fatalf("document differs from itself: %+v", ch.Changes)
		}
	})
}
