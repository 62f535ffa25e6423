package gate

import (
	"encoding/json"
	"slices"
	"sort"

	"github.com/wardgate/wardgate/evidence"
	"github.com/wardgate/wardgate/verify"
)

// SLSA provenance predicate types read into the evidence's provenance.
const (
	SLSAProvenanceV1  = "https://slsa.dev/provenance/v1"
	SLSAProvenanceV02 = "https://slsa.dev/provenance/v0.2"
)

// provenance is the build provenance of the first verified SLSA provenance
// attestation (v1 or v0.2) among res's signatures; nil when there is none.
// Only a verified attestation is read: an unverified one is listed among
// the attestations, never taken as provenance.
func provenance(res *verify.Result) *evidence.Provenance {
	for _, s := range res.Signatures {
		if !s.Verified || len(s.Predicate) == 0 || !slices.Contains([]string{SLSAProvenanceV1, SLSAProvenanceV02}, s.PredicateType) {
			continue
		}
		p := &evidence.Provenance{PredicateType: s.PredicateType, Verified: true}
		if s.PredicateType == SLSAProvenanceV1 {
			var v1 struct {
				BuildDefinition struct {
					BuildType            string `json:"buildType"`
					ResolvedDependencies []struct {
						URI    string            `json:"uri"`
						Digest map[string]string `json:"digest"`
					} `json:"resolvedDependencies"`
				} `json:"buildDefinition"`
				RunDetails struct {
					Builder struct {
						ID string `json:"id"`
					} `json:"builder"`
				} `json:"runDetails"`
			}
			if json.Unmarshal(s.Predicate, &v1) != nil {
				continue
			}
			p.BuilderID, p.BuildType = v1.RunDetails.Builder.ID, v1.BuildDefinition.BuildType
			if deps := v1.BuildDefinition.ResolvedDependencies; len(deps) > 0 {
				p.SourceURI, p.SourceDigest = deps[0].URI, sourceDigest(deps[0].Digest)
			}
		} else {
			var v02 struct {
				Builder struct {
					ID string `json:"id"`
				} `json:"builder"`
				BuildType  string `json:"buildType"`
				Invocation struct {
					ConfigSource struct {
						URI    string            `json:"uri"`
						Digest map[string]string `json:"digest"`
					} `json:"configSource"`
				} `json:"invocation"`
			}
			if json.Unmarshal(s.Predicate, &v02) != nil {
				continue
			}
			p.BuilderID, p.BuildType = v02.Builder.ID, v02.BuildType
			p.SourceURI, p.SourceDigest = v02.Invocation.ConfigSource.URI, sourceDigest(v02.Invocation.ConfigSource.Digest)
		}
		return p
	}
	return nil
}

// sourceDigest is "ALG:HEX" for the source's digest (gitCommit, sha1,
// sha256...; the first by name when there are several).
func sourceDigest(d map[string]string) string {
	algs := make([]string, 0, len(d))
	for a := range d {
		algs = append(algs, a)
	}
	sort.Strings(algs)
	if len(algs) == 0 {
		return ""
	}
	return algs[0] + ":" + d[algs[0]]
}
