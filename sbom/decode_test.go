package sbom

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr error
		wantMsg string
	}{
		{"empty", "  \n", ErrUnknownFormat, "empty input"},
		{"not an sbom", "hello world", ErrUnknownFormat, "not JSON, XML or SPDX tag-value"},
		{"malformed json", "{\n  \"bomFormat\": \"CycloneDX\",\n  \"specVersion\": \"1.5\",,\n}", ErrMalformed, "line 3, column 24"},
		{"json neither", `{"foo": 1}`, ErrUnknownFormat, "neither bomFormat"},
		{"other bomFormat", `{"bomFormat": "SWID"}`, ErrUnknownFormat, `bomFormat "SWID"`},
		{"cyclonedx unknown version", `{"bomFormat": "CycloneDX", "specVersion": "2.0"}`, ErrUnsupportedVersion, `specVersion "2.0"`},
		{"cyclonedx json 1.1", `{"bomFormat": "CycloneDX", "specVersion": "1.1"}`, ErrUnsupportedVersion, `specVersion "1.1"`},
		{"cyclonedx no specVersion", `{"bomFormat": "CycloneDX"}`, ErrMissingField, "specVersion is missing"},
		{"cyclonedx wrong type", `{"bomFormat": "CycloneDX", "specVersion": "1.5", "components": {"name": 1}}`, ErrMalformed, "CycloneDX JSON"},
		{"malformed xml", `<bom xmlns="http://cyclonedx.org/schema/bom/1.5"><components><component>`, ErrMalformed, "XML"},
		{"xml other root", `<project xmlns="http://maven.apache.org/POM/4.0.0"></project>`, ErrUnknownFormat, "<project"},
		{"xml unknown version", `<bom xmlns="http://cyclonedx.org/schema/bom/1.9"></bom>`, ErrUnsupportedVersion, "1.9"},
		{"spdx unknown version", `{"spdxVersion": "SPDX-1.2"}`, ErrUnsupportedVersion, `"SPDX-1.2"`},
		{"spdx missing fields", `{"spdxVersion": "SPDX-2.3", "packages": [{"SPDXID": "SPDXRef-p"}]}`, ErrMissingField, "packages[0] has no name"},
		{"spdx tag-value unknown version", "SPDXVersion: SPDX-3.9\nDataLicense: CC0-1.0\n", ErrUnsupportedVersion, `"SPDX-3.9"`},
		{"spdx tag-value missing name", "SPDXVersion: SPDX-2.3\nDataLicense: CC0-1.0\nSPDXID: SPDXRef-DOCUMENT\nCreator: Tool: x\nCreated: 2026-01-01T00:00:00Z\n", ErrMissingField, "document has no name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(strings.NewReader(tc.in))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("err = %q, want it to mention %q", err, tc.wantMsg)
			}
		})
	}
}

func TestDecodeSizeLimit(t *testing.T) {
	big := `{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": []}` + strings.Repeat(" ", 2048)
	_, err := Decode(strings.NewReader(big), WithMaxSize(1024))
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "1 KiB limit") {
		t.Fatalf("err = %v, want ErrTooLarge naming the 1 KiB limit", err)
	}
	if !strings.Contains(fmt.Sprint(MaxDocumentSize>>20), "256") {
		t.Fatalf("default limit is %d", MaxDocumentSize)
	}
	if _, err := Decode(strings.NewReader(big), WithMaxSize(4096)); err != nil {
		t.Fatalf("document under the limit: %v", err)
	}
	if _, err := Decode(strings.NewReader(big), WithMaxSize(0)); err == nil || !strings.Contains(err.Error(), "max size 0") {
		t.Fatalf("WithMaxSize(0) = %v", err)
	}
}

func TestDecodeWarnings(t *testing.T) {
	in := `{"bomFormat": "CycloneDX", "specVersion": "1.5", "components": [
	  {"bom-ref": "a", "type": "library", "name": "a", "version": "1", "purl": "pkg:npm/a@1"},
	  {"bom-ref": "a", "type": "library", "name": "a2", "version": "1", "purl": "pkg:npm/a2@1"},
	  {"bom-ref": "b", "type": "library", "name": "", "version": "2", "purl": "pkg:npm/b@2"},
	  {"bom-ref": "c", "type": "library", "name": ""}
	],
	"dependencies": [{"ref": "a", "dependsOn": ["b"]}, {"ref": "b", "dependsOn": ["a", "nowhere"]}]}`
	d, err := Decode(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`components[2] has no name; named "b" from its purl`,
		`components[3] has no name and no purl; skipped`,
		`duplicate bom-ref "a": the first component with it is used for dependencies`,
		`1 dependency edges name a ref that is no component; ignored`,
		`dependency cycle: pkg:npm/a -> pkg:npm/b -> pkg:npm/a`,
	}
	if strings.Join(d.Warnings, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(d.Warnings, "\n"), strings.Join(want, "\n"))
	}
	if len(d.Components) != 3 || len(d.Dependencies) != 2 {
		t.Errorf("%d components, %d edges; want 3, 2", len(d.Components), len(d.Dependencies))
	}
}

func TestDecodeNesting(t *testing.T) {
	nest := func(depth int) string {
		var b bytes.Buffer
		b.WriteString(`{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [`)
		for i := range depth {
			fmt.Fprintf(&b, `{"type": "library", "name": "n%d", "version": "1", "components": [`, i)
		}
		b.WriteString(strings.Repeat("]}", depth))
		b.WriteString("]}")
		return b.String()
	}
	d, err := Decode(strings.NewReader(nest(10)))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Components) != 10 {
		t.Errorf("flattened %d components, want 10", len(d.Components))
	}
	_, err = Decode(strings.NewReader(nest(maxNesting + 5)))
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "nested deeper than 64 levels") {
		t.Errorf("deep nesting: err = %v", err)
	}
}

func TestDecodeSharedDocument(t *testing.T) {
	d := sharedDoc(t, "proton-bridge-v1.6.3.bom.json")
	if d.Format != FormatCycloneDXJSON || d.SpecVersion != "1.2" {
		t.Errorf("detected %s %s, want cyclonedx-json 1.2", d.Format, d.SpecVersion)
	}
	if len(d.Components) != 201 || d.Subject == nil || d.Subject.Name != "github.com/ProtonMail/proton-bridge" {
		t.Errorf("%d components, subject %+v", len(d.Components), d.Subject)
	}
	c := d.Components[0]
	if c.Name != "github.com/0xAX/notificator" || c.Hashes["SHA-256"] != "8fd1da69f6a90db3db1910e4bba7bf1d1b3a28131c287896726d7ff526f19e5e" || strings.Join(c.Licenses, ",") != "BSD-3-Clause" {
		t.Errorf("first component %+v", c)
	}
	// github.com/ugorji/go and its codec submodule really require each
	// other; the document is read, with a warning.
	want := "dependency cycle: pkg:golang/github.com/ugorji/go -> pkg:golang/github.com/ugorji/go/codec -> pkg:golang/github.com/ugorji/go"
	if len(d.Warnings) != 1 || d.Warnings[0] != want {
		t.Errorf("warnings: %q, want [%q]", d.Warnings, want)
	}
}
