package sbom

import (
	"fmt"
	"strconv"
	"strings"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"github.com/wardgate/wardgate/firmware"
)

// Property names recording where in a firmware image a component was found:
// for each of syft's syft:location:N:path, the layer of the firmware that
// holds it and the path inside that layer.
const (
	PropLayerPath    = "wardgate:firmware:location:%d:layer"   // the layer's place in the unpacked tree ("." the root)
	PropLayerFormats = "wardgate:firmware:location:%d:formats" // the formats unpacked to reach it ("gzip+tar")
	PropLayerSource  = "wardgate:firmware:location:%d:source"  // the file the layer was found in
	PropLayerOffset  = "wardgate:firmware:location:%d:offset"  // the byte offset in that file, when not 0
	PropLayerInner   = "wardgate:firmware:location:%d:path"    // the path inside the layer
)

// annotateLayers returns the amendment (see encode) that adds to each
// component of a CycloneDX SBOM of an unpacked firmware tree where each of
// its locations lies: properties (JSON and XML) and evidence occurrences
// (JSON; CycloneDX XML has no occurrences in cyclonedx-go). It is applied
// to the model before it is encoded, so the document is encoded once.
// Other formats are written as they are: syft-json and SPDX carry syft's
// own locations, which are paths in the unpacked tree.
// scanRoot is the tree path syft scanned (see firmware.Result.RootFS);
// syft's locations are relative to it.
func annotateLayers(res *firmware.Result, scanRoot string) func(*cdx.BOM, cdx.BOMFileFormat) {
	return func(bom *cdx.BOM, ff cdx.BOMFileFormat) {
		if bom.Components == nil {
			return
		}
		for i := range *bom.Components {
			annotateComponent(&(*bom.Components)[i], res, scanRoot, ff == cdx.BOMFileFormatJSON)
		}
	}
}

func annotateComponent(c *cdx.Component, res *firmware.Result, scanRoot string, occurrences bool) {
	if c.Properties == nil {
		return
	}
	var add []cdx.Property
	var occ []cdx.EvidenceOccurrence
	for _, p := range *c.Properties {
		rest, ok := strings.CutPrefix(p.Name, "syft:location:")
		if !ok {
			continue
		}
		ns, field, ok := strings.Cut(rest, ":")
		n, err := strconv.Atoi(ns)
		if !ok || err != nil || field != "path" {
			continue
		}
		full := p.Value
		if scanRoot != "." {
			full = "/" + scanRoot + full
		}
		l, inner, ok := res.LayerOf(full)
		if !ok {
			continue
		}
		formats := layerFormats(l)
		add = append(add,
			cdx.Property{Name: fmt.Sprintf(PropLayerPath, n), Value: l.Path},
			cdx.Property{Name: fmt.Sprintf(PropLayerFormats, n), Value: formats},
			cdx.Property{Name: fmt.Sprintf(PropLayerSource, n), Value: l.Source},
			cdx.Property{Name: fmt.Sprintf(PropLayerInner, n), Value: inner})
		if l.Offset != 0 {
			add = append(add, cdx.Property{Name: fmt.Sprintf(PropLayerOffset, n), Value: strconv.FormatInt(l.Offset, 10)})
		}
		ctx := fmt.Sprintf("firmware layer %s (%s, in %s", l.Path, formats, l.Source)
		if l.Offset != 0 {
			ctx += fmt.Sprintf(" at offset %d", l.Offset)
		}
		occ = append(occ, cdx.EvidenceOccurrence{Location: full, AdditionalContext: ctx + "), path " + inner})
	}
	*c.Properties = append(*c.Properties, add...)
	if occurrences && len(occ) > 0 {
		if c.Evidence == nil {
			c.Evidence = &cdx.Evidence{}
		}
		if c.Evidence.Occurrences != nil {
			occ = append(*c.Evidence.Occurrences, occ...)
		}
		c.Evidence.Occurrences = &occ
	}
}

func layerFormats(l firmware.Layer) string {
	s := make([]string, len(l.Formats))
	for i, f := range l.Formats {
		s[i] = string(f)
	}
	return strings.Join(s, "+")
}
