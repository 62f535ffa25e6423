package sbom

import (
	"fmt"
	"strings"

	"github.com/anchore/syft/syft/format/common/cyclonedxhelpers"
	"github.com/anchore/syft/syft/format/syftjson"
)

// decodeSyftJSON reads syft's own JSON (syft -o json, sbom generate -o
// json) with syft's decoder, and normalises it through syft's CycloneDX
// model, so that a syft-json and a CycloneDX SBOM of the same scan are the
// same document to Diff and Drift.
func decodeSyftJSON(data, schemaVersion string) (*Document, error) {
	s, _, _, err := syftjson.NewFormatDecoder().Decode(strings.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: syft JSON: %v", ErrMalformed, err)
	}
	if s == nil {
		return nil, fmt.Errorf("%w: syft JSON: no SBOM in it", ErrMalformed)
	}
	bom := cyclonedxhelpers.ToFormatModel(*s)
	d, err := fromCycloneDX(bom, FormatSyftJSON, schemaVersion)
	if err != nil {
		return nil, err
	}
	return d, nil
}
