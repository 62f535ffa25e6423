package cli

import (
	"encoding/json"
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/wardgate/wardgate/internal/buildinfo"
)

// Version is wardgate's version: stamped at build time (make build) with
// -ldflags "-X github.com/wardgate/wardgate/internal/buildinfo.version=...",
// else the module version go install records (see internal/buildinfo).
var Version = buildinfo.Version()

// libraries whose versions `wardgate version` reports: what wardgate
// verifies and decides with.
var libraries = []string{
	"github.com/sigstore/cosign/v2",
	"github.com/sigstore/sigstore-go",
	"github.com/sigstore/sigstore",
	"github.com/google/go-containerregistry",
	"github.com/anchore/syft",
	"github.com/open-policy-agent/opa",
	"github.com/CycloneDX/cyclonedx-go",
}

type versionInfo struct {
	Version   string            `json:"version"`
	Go        string            `json:"go"`
	Libraries map[string]string `json:"libraries"`
}

func buildVersions() versionInfo {
	vi := versionInfo{Version: Version, Libraries: map[string]string{}}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return vi
	}
	vi.Go = bi.GoVersion
	deps := map[string]string{}
	for _, d := range bi.Deps {
		deps[d.Path] = d.Version
		if d.Replace != nil {
			deps[d.Path] = d.Replace.Version
		}
	}
	for _, l := range libraries {
		if v, ok := deps[l]; ok {
			vi.Libraries[l] = v
		}
	}
	return vi
}

// NewVersionCmd prints wardgate's version and its verification libraries'.
func NewVersionCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print wardgate's version and the versions of the libraries it verifies with",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			vi := buildVersions()
			w := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(vi)
			}
			fmt.Fprintf(w, "wardgate %s (%s)\n", vi.Version, vi.Go)
			for _, l := range libraries {
				if v, ok := vi.Libraries[l]; ok {
					fmt.Fprintf(w, "  %-40s %s\n", l, v)
				}
			}
			return nil
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func addOutputFlag(cmd *cobra.Command, output *string) {
	cmd.Flags().StringVarP(output, "output", "o", "text", "output format: text or json")
}
