package evidence_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/wardgate/wardgate/evidence"
)

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func typical(t testing.TB) evidence.Evidence {
	t.Helper()
	ev, err := evidence.Decode(bytes.NewReader(readFile(t, "testdata/typical.json")))
	if err != nil {
		t.Fatalf("decode typical.json: %v", err)
	}
	return ev
}

func TestDecodeRoundTrip(t *testing.T) {
	ev := typical(t)
	if ev.Artifact.Version != "2.4.0" || len(ev.SBOM.Components) != 8 || ev.SBOM.Diff.Summary["upgraded"] != 2 {
		t.Fatalf("decoded %+v", ev.Artifact)
	}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	back, err := evidence.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("decode encoded: %v", err)
	}
	if !reflect.DeepEqual(ev, back) {
		t.Fatalf("round trip changed the document:\n%+v\n%+v", ev, back)
	}
}

// mutate decodes typical.json into a generic map, applies f, and re-encodes.
func mutate(t testing.TB, f func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(readFile(t, "testdata/typical.json"), &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sub(m map[string]any, key string) map[string]any { return m[key].(map[string]any) }

// badDocuments are documents both Validate and the JSON Schema must reject,
// with the exact error Decode gives.
var badDocuments = []struct {
	name    string
	mutate  func(m map[string]any)
	wantErr string
}{
	{"wrong schema", func(m map[string]any) { m["schema"] = "wardgate.dev/evidence/v0" },
		`evidence: schema: want "wardgate.dev/evidence/v1", got "wardgate.dev/evidence/v0"`},
	{"bad artifact digest", func(m map[string]any) { sub(m, "artifact")["digest"] = "sha256:ABC" },
		`evidence: artifact.digest: want sha256:<64 lowercase hex digits>, got "sha256:ABC"`},
	{"empty version", func(m map[string]any) { sub(m, "artifact")["version"] = "" },
		`evidence: artifact.version: required, must not be empty`},
	{"unknown kind", func(m map[string]any) { sub(m, "artifact")["kind"] = "tarball" },
		`evidence: artifact.kind: want one of blob, image, got "tarball"`},
	{"unknown diff code", func(m map[string]any) {
		sub(sub(m, "sbom"), "diff")["changes"].([]any)[1].(map[string]any)["code"] = "moved"
	}, `evidence: sbom.diff.changes[1].code: want one of added, removed, upgraded, downgraded, hash-changed, license-changed, supplier-changed, dependency-added, dependency-removed, got "moved"`},
	{"unknown drift summary code", func(m map[string]any) { sub(m, "drift")["summary"] = map[string]any{"lost": 1} },
		`evidence: drift.summary.lost: unknown change code; want one of undeclared, missing, version-mismatch, hash-mismatch`},
	{"bad risk state", func(m map[string]any) { m["fleet"] = map[string]any{"riskState": "burning"} },
		`evidence: fleet.riskState: want one of clean, suspicious, quarantined, got "burning"`},
	{"keyless signer without issuer", func(m map[string]any) {
		sub(m, "verification")["trustedSigners"] = []any{map[string]any{"identity": "x@example.com"}}
	}, `evidence: verification.trustedSigners[0].issuer: required with identity`},
	{"device without class", func(m map[string]any) { sub(m, "device")["class"] = "" },
		`evidence: device.class: required, must not be empty`},
	{"admitted release without version", func(m map[string]any) {
		sub(m, "ledger")["admitted"] = []any{map[string]any{"version": "", "digest": "sha256:" + strings.Repeat("ab", 32), "admittedAt": "2026-01-01T00:00:00Z"}}
	}, `evidence: ledger.admitted[0].version: required, must not be empty`},
	{"null signatures", func(m map[string]any) { sub(m, "verification")["signatures"] = nil },
		`evidence: verification.signatures: required (may be empty)`},
	{"unknown field", func(m map[string]any) { sub(m, "artifact")["colour"] = "blue" },
		`evidence: colour: unknown field (the schema allows no additional properties)`},
	{"wrong type", func(m map[string]any) { sub(m, "artifact")["size"] = "big" },
		`evidence: artifact.size: want int64, got JSON string`},
	{"verified TUF with a reason", func(m map[string]any) {
		sub(m, "metadata")["tuf"] = map[string]any{"verified": true, "reason": "metadata-expired", "target": "infusion-pump/x.bin", "version": "2.4.0", "roles": []any{}}
	}, `evidence: metadata.tuf.reason: must be empty when verified, got "metadata-expired"`},
	{"unknown TUF reason", func(m map[string]any) {
		sub(m, "metadata")["tuf"] = map[string]any{"verified": false, "reason": "sunspots", "target": "infusion-pump/x.bin", "roles": []any{}}
	}, `evidence: metadata.tuf.reason: want one of metadata-missing, metadata-untrusted, metadata-rollback, metadata-expired, unknown-target, digest-mismatch, got "sunspots"`},
	{"empty version with verified TUF", func(m map[string]any) {
		sub(m, "artifact")["version"] = ""
		sub(m, "metadata")["tuf"] = map[string]any{"verified": true, "target": "infusion-pump/x.bin", "version": "2.4.0", "roles": []any{}}
	}, `evidence: artifact.version: required, must not be empty`},
	{"TUF role version 0", func(m map[string]any) {
		sub(m, "metadata")["tuf"] = map[string]any{"verified": false, "reason": "metadata-rollback", "target": "infusion-pump/x.bin",
			"roles": []any{map[string]any{"name": "timestamp", "version": 0, "expires": "2027-01-01T00:00:00Z"}}}
	}, `evidence: metadata.tuf.roles[0].version: must be 1 or more, got 0`},
}

// A release whose vendor's TUF metadata could not be verified, and whose
// caller gave no version, has no version: both Validate and the schema
// accept that, and only that.
func TestEmptyVersionOnlyWithUnverifiedTUF(t *testing.T) {
	doc := mutate(t, func(m map[string]any) {
		sub(m, "artifact")["version"] = ""
		sub(m, "metadata")["tuf"] = map[string]any{"verified": false, "reason": "metadata-expired", "detail": "timestamp.json is expired", "target": "infusion-pump/x.bin",
			"roles": []any{map[string]any{"name": "timestamp", "version": 3, "expires": "2026-01-01T00:00:00Z", "digest": "sha256:" + strings.Repeat("ab", 32)}}}
	})
	if _, err := evidence.Decode(bytes.NewReader(doc)); err != nil {
		t.Fatal(err)
	}
	if ok, errs := matchSchema(t, doc); !ok {
		t.Fatalf("schema rejects it: %v", errs)
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, tc := range badDocuments {
		t.Run(tc.name, func(t *testing.T) {
			_, err := evidence.Decode(bytes.NewReader(mutate(t, tc.mutate)))
			if !errors.Is(err, evidence.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if err.Error() != tc.wantErr {
				t.Fatalf("err:\n got %s\nwant %s", err, tc.wantErr)
			}
		})
	}
}

func TestValidateJoinsAllErrors(t *testing.T) {
	ev := typical(t)
	ev.Schema = ""
	ev.Artifact.Vendor = ""
	ev.Device.ID = ""
	err := ev.Validate()
	want := strings.Join([]string{
		`evidence: schema: want "wardgate.dev/evidence/v1", got ""`,
		`evidence: artifact.vendor: required, must not be empty`,
		`evidence: device.id: required, must not be empty`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Fatalf("err:\n%v\nwant\n%s", err, want)
	}
	var fe *evidence.FieldError
	if !errors.As(err, &fe) || fe.Field != "schema" {
		t.Fatalf("errors.As FieldError: %#v", fe)
	}
}

func TestDecodeSyntaxErrorNamesLine(t *testing.T) {
	_, err := evidence.Decode(strings.NewReader("{\n\"schema\": \"x\",\n}"))
	want := `evidence: $: line 3: invalid character '}' looking for beginning of object key string`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
}

func TestIsDigest(t *testing.T) {
	for s, want := range map[string]bool{
		"sha256:" + strings.Repeat("a", 64): true,
		"sha256:" + strings.Repeat("A", 64): false,
		"sha256:" + strings.Repeat("a", 63): false,
		"sha512:" + strings.Repeat("a", 64): false,
		strings.Repeat("a", 64):             false,
		"sha256:" + strings.Repeat("g", 64): false,
	} {
		if got := evidence.IsDigest(s); got != want {
			t.Errorf("IsDigest(%q) = %v", s, got)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(readFile(f, "testdata/typical.json"))
	f.Add(readFile(f, "testdata/minimal.json"))
	f.Add([]byte(`{"schema":"wardgate.dev/evidence/v1"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := evidence.Decode(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, evidence.ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		again, err := evidence.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("re-decode of an accepted document failed: %v", err)
		}
		if !reflect.DeepEqual(ev, again) {
			t.Fatalf("decode -> encode -> decode is not stable")
		}
	})
}
