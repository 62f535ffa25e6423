# Shared inputs and data for the default rules' unit tests.
package wardgate.testdata

trust := {
	"max_metadata_age_ns": 15552000000000000,
	"max_metadata_age": "180d",
	"max_clock_skew_ns": 300000000000,
	"rules": {},
	"sbom": {"required": true, "drift_allowance": {"missing": 1}},
	"deny": {
		"licenses": ["AGPL-3.0-only"],
		"components": [{"purl": "pkg:generic/xz-utils", "name": "", "below": "5.6.2", "reason": "CVE-2024-3094"}],
	},
	"vendors": {"acme": {"products": {"pump": {
		"device_classes": ["pump"],
		"min_version": {"*": "2.0.0"},
		"authorities": {
			"threshold": 2,
			"keys": [{"id": "k1", "path": "k1.pub"}],
			"keyless": [{"identity": "rel@acme", "identity_regexp": "", "issuer": "https://iss", "issuer_regexp": ""}],
		},
	}}}},
}

key_sig := {"source": "a.sig", "format": "cosign-signature", "verified": true, "signer": {"keyId": "k1"}}

keyless_sig := {"source": "a.json", "format": "sigstore-bundle-v0.3", "verified": true, "signer": {"identity": "rel@acme", "issuer": "https://iss"}}

input_ok := {
	"schema": "wardgate.dev/evidence/v1",
	"evaluatedAt": "2026-11-28T14:00:00Z",
	"artifact": {"kind": "blob", "name": "pump-2.4.0.bin", "digest": "sha256:aa", "vendor": "acme", "product": "pump", "version": "2.4.0", "deviceClasses": ["pump"]},
	"verification": {"verified": true, "threshold": 2, "reasons": [], "message": "", "trustedSigners": [], "signatures": [key_sig, keyless_sig]},
	"attestations": [],
	"metadata": {"signedAt": "2026-11-20T00:00:00Z"},
	"sbom": {"source": "vendor", "format": "cyclonedx-json", "specVersion": "1.6", "digest": "sha256:bb", "components": [{"name": "zlib", "version": "1.3.1", "licenses": ["Zlib"]}]},
	"ledger": {"entries": []},
	"device": {"id": "d1", "class": "pump", "installedVersion": "2.3.0"},
	"fleet": {},
}

# tuf_ok is verified TUF metadata for input_ok's artifact.
tuf_ok := {
	"verified": true, "target": "pump/pump-2.4.0.bin", "version": "2.4.0", "deviceClasses": ["pump"],
	"roles": [{"name": "timestamp", "version": 3, "expires": "2026-12-05T00:00:00Z"}],
}

# with_(path, value) is input_ok with the value at path replaced.
with_(path, value) := json.patch(input_ok, [{"op": "add", "path": path, "value": value}])

without(path) := json.patch(input_ok, [{"op": "remove", "path": path}])
