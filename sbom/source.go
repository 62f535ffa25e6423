package sbom

// FirmwareSource is the Generate source for a firmware file: "archive:PATH"
// when its content is a tar, tar.gz or zip (unpacked safely and scanned as
// a root filesystem), else "file:PATH" (scanned as one opaque file).
func FirmwareSource(path string) string {
	if kind, err := sniffArchive(path); err == nil && kind != notArchive {
		return "archive:" + path
	}
	return "file:" + path
}
