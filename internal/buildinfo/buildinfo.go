// Package buildinfo says which wardgate this is: the version make build
// stamps with -ldflags, else the module version go install records, else a
// development version. It imports only the standard library.
package buildinfo

import "runtime/debug"

// version is set at build time:
// -ldflags "-X github.com/wardgate/wardgate/internal/buildinfo.version=v1.2.3".
var version string

// Dev is the version of a build nobody stamped.
const Dev = "0.1.0-dev"

// Version is wardgate's version: the stamped one, else the module version
// of a go install, else Dev. Never "(devel)".
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return Dev
}
