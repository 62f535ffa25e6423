package sbom

import "os"

// FirmwareSource is the Generate source for a firmware file:
// "firmware:PATH", unpacked when it holds a format firmware.Unpack knows
// (at its start or behind a vendor header) and scanned as a root
// filesystem, else scanned as one opaque file with syft's own archive
// extraction off. A directory is "dir:PATH".
func FirmwareSource(path string) string {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return "dir:" + path
	}
	return "firmware:" + path
}
