package sbom

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
)

// MaxDocumentSize is the largest document Decode reads: 256 MiB. The largest
// real SBOMs (full OS images with file listings) are tens of MiB.
const MaxDocumentSize = 256 << 20

// maxNesting bounds CycloneDX component nesting; real documents nest a few
// levels (an image, its layers' packages, a jar's shaded jars).
const maxNesting = 64

// DecodeOption changes how Decode reads.
type DecodeOption func(*decodeConfig) error

type decodeConfig struct {
	maxSize int64
}

// WithMaxSize sets the largest document Decode accepts, in bytes.
func WithMaxSize(n int64) DecodeOption {
	return func(c *decodeConfig) error {
		if n <= 0 {
			return fmt.Errorf("sbom: max size %d: want > 0", n)
		}
		c.maxSize = n
		return nil
	}
}

// Decode reads a CycloneDX (JSON or XML, 1.2-1.7) or SPDX (2.2 or 2.3, JSON
// or tag-value) document, detecting format and version from the content,
// and returns it normalised.
func Decode(r io.Reader, opts ...DecodeOption) (*Document, error) {
	cfg := decodeConfig{maxSize: MaxDocumentSize}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	data, err := readString(r, cfg.maxSize+1)
	if err != nil {
		return nil, fmt.Errorf("read sbom: %w", err)
	}
	if int64(len(data)) > cfg.maxSize {
		return nil, fmt.Errorf("%w: more than the %s limit", ErrTooLarge, humanBytes(cfg.maxSize))
	}
	return decodeString(data)
}

// readString reads at most limit bytes into a string, sized up front when
// r says how much there is, so a large document is held once, not copied
// while a buffer grows; decoded strings are slices of it.
func readString(r io.Reader, limit int64) (string, error) {
	var b strings.Builder
	var size int64
	switch v := r.(type) {
	case interface{ Len() int }: // bytes.Reader, strings.Reader, bytes.Buffer
		size = int64(v.Len())
	case interface{ Stat() (fs.FileInfo, error) }: // *os.File
		if fi, err := v.Stat(); err == nil && fi.Mode().IsRegular() {
			size = fi.Size()
		}
	}
	if size > 0 {
		b.Grow(int(min(size, limit)))
	}
	_, err := io.Copy(&b, io.LimitReader(r, limit))
	return b.String(), err
}

func decodeString(data string) (*Document, error) {
	body := strings.TrimLeft(strings.TrimPrefix(data, "\xef\xbb\xbf"), " \t\r\n")
	if len(body) == 0 {
		return nil, fmt.Errorf("%w: empty input", ErrUnknownFormat)
	}
	switch body[0] {
	case '{':
		return decodeJSON(body)
	case '<':
		return decodeCycloneDXXML(body)
	}
	if isSPDXTagValue(body) {
		return decodeSPDXTagValue(body)
	}
	return nil, fmt.Errorf("%w: not JSON, XML or SPDX tag-value", ErrUnknownFormat)
}

// decodeJSON tells CycloneDX from SPDX by their format-identifying fields.
// The fast reader detects and, for CycloneDX, decodes in one pass; what it
// does not handle exactly goes to decodeJSONReference.
func decodeJSON(data string) (*Document, error) {
	switch route, d, version := fastJSON(data); route {
	case routeCycloneDX:
		return d, nil
	case routeSPDX:
		return decodeSPDXJSON(data, version)
	}
	return decodeJSONReference(data)
}

// decodeJSONReference detects the format with encoding/json and decodes
// CycloneDX with cyclonedx-go: the behaviour fastJSON must reproduce.
func decodeJSONReference(data string) (*Document, error) {
	var probe struct {
		BOMFormat   *string         `json:"bomFormat"`
		SpecVersion json.RawMessage `json:"specVersion"`
		SPDXVersion *string         `json:"spdxVersion"`
		Artifacts   json.RawMessage `json:"artifacts"`
		Schema      *struct {
			Version string `json:"version"`
			URL     string `json:"url"`
		} `json:"schema"`
	}
	if err := json.Unmarshal([]byte(data), &probe); err != nil {
		return nil, fmt.Errorf("%w: JSON: %s", ErrMalformed, jsonErrorAt(data, err))
	}
	switch {
	case probe.BOMFormat != nil:
		if *probe.BOMFormat != "CycloneDX" {
			return nil, fmt.Errorf("%w: bomFormat %q, want CycloneDX", ErrUnknownFormat, *probe.BOMFormat)
		}
		var v string
		if err := json.Unmarshal(probe.SpecVersion, &v); err != nil {
			return nil, fmt.Errorf("%w: CycloneDX JSON: specVersion is missing or not a string", ErrMissingField)
		}
		return decodeCycloneDXJSON(data, v)
	case probe.SPDXVersion != nil:
		return decodeSPDXJSON(data, *probe.SPDXVersion)
	case probe.Artifacts != nil && probe.Schema != nil && strings.Contains(probe.Schema.URL, "anchore/syft"):
		return decodeSyftJSON(data, probe.Schema.Version)
	}
	return nil, fmt.Errorf("%w: JSON with neither bomFormat (CycloneDX), spdxVersion (SPDX) nor syft's schema and artifacts", ErrUnknownFormat)
}

// jsonErrorAt describes a JSON syntax error with its line and column.
func jsonErrorAt(data string, err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line, col := lineCol(data, se.Offset-1) // Offset is just past the bad byte
		return fmt.Sprintf("%v at line %d, column %d", se, line, col)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		line, col := lineCol(data, te.Offset)
		return fmt.Sprintf("%v at line %d, column %d", te, line, col)
	}
	return err.Error()
}

func lineCol(data string, off int64) (int, int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	before := data[:off]
	line := strings.Count(before, "\n") + 1
	return line, int(off) - strings.LastIndexByte(before, '\n')
}

func xmlRootNamespace(data string) (name, ns string, err error) {
	dec := xml.NewDecoder(strings.NewReader(data))
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", "", err
		}
		if se, ok := tok.(xml.StartElement); ok {
			return se.Name.Local, se.Name.Space, nil
		}
	}
}

func isSPDXTagValue(data string) bool {
	for i, line := range strings.SplitN(data[:min(len(data), 4096)], "\n", 20) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "SPDXVersion:") {
			return true
		}
		if i > 15 {
			break
		}
	}
	return false
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
