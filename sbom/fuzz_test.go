package sbom

import (
	"bytes"
	"os"
	"reflect"
	"testing"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/anchore/syft/syft/format/spdxtagvalue"
)

// FuzzDecode checks Decode's invariants on any input: it never panics, a
// decoded document has named components and identity-keyed edges, decoding
// is deterministic, and a document never differs from itself.
func FuzzDecode(f *testing.F) {
	// Seeds are small (a few KB): the mutator spends its time on structure,
	// not on copying the 190 KB real documents, which TestFastJSONMatchesReference and the
	// diff tests read instead. The excerpt keeps their shape: metadata with
	// tools, hashes, licenses, and the ugorji/go dependency cycle.
	excerpt, err := os.ReadFile("testdata/proton-bridge-excerpt.cdx.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(excerpt)
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
