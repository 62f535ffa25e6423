package verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"github.com/sigstore/rekor/pkg/types"
	hashedrekord "github.com/sigstore/rekor/pkg/types/hashedrekord/v0.0.1"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"google.golang.org/protobuf/encoding/protojson"
)

// keyBundle signs msg with s and returns a Sigstore bundle (v0.1) carrying
// the trusted times asked for: an RFC 3161 timestamp from the virtual TSA,
// and a hashedrekord entry integrated at integrated (zero: none), both
// made with the virtual Sigstore's keys and rekor's own entry types.
func keyBundle(t testing.TB, vs *ca.VirtualSigstore, s signer, msg []byte, tsa bool, integrated time.Time) []byte {
	t.Helper()
	sig, err := s.sv.SignMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256(msg)
	pb := &protobundle.Bundle{
		MediaType: "application/vnd.dev.sigstore.bundle+json;version=0.1",
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content: &protobundle.VerificationMaterial_PublicKey{PublicKey: &protocommon.PublicKeyIdentifier{Hint: s.key.ID}},
		},
		Content: &protobundle.Bundle_MessageSignature{MessageSignature: &protocommon.MessageSignature{
			MessageDigest: &protocommon.HashOutput{Algorithm: protocommon.HashAlgorithm_SHA2_256, Digest: d[:]},
			Signature:     sig,
		}},
	}
	if tsa {
		ts, err := vs.TimestampResponse(sig)
		if err != nil {
			t.Fatal(err)
		}
		pb.VerificationMaterial.TimestampVerificationData = &protobundle.TimestampVerificationData{
			Rfc3161Timestamps: []*protocommon.RFC3161SignedTimestamp{{SignedTimestamp: ts}},
		}
	}
	if !integrated.IsZero() {
		pub, err := cryptoutils.MarshalPublicKeyToPEM(s.key.Public)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		pe, err := hashedrekord.V001Entry{}.CreateFromArtifactProperties(ctx, types.ArtifactProperties{
			ArtifactHash: hex.EncodeToString(d[:]), SignatureBytes: sig, PublicKeyBytes: [][]byte{pub}, PKIFormat: "x509",
		})
		if err != nil {
			t.Fatal(err)
		}
		ei, err := types.UnmarshalEntry(pe)
		if err != nil {
			t.Fatal(err)
		}
		body, err := types.CanonicalizeEntry(ctx, ei)
		if err != nil {
			t.Fatal(err)
		}
		logID, err := vs.RekorLogID()
		if err != nil {
			t.Fatal(err)
		}
		set, err := vs.RekorSignPayload(tlog.RekorPayload{Body: base64.StdEncoding.EncodeToString(body), IntegratedTime: integrated.Unix(), LogIndex: 7, LogID: logID})
		if err != nil {
			t.Fatal(err)
		}
		rawID, _ := hex.DecodeString(logID)
		e, err := tlog.NewEntry(body, integrated.Unix(), 7, rawID, set, nil) //nolint:staticcheck
		if err != nil {
			t.Fatal(err)
		}
		tle := e.TransparencyLogEntry()
		tle.KindVersion = &protorekor.KindVersion{Kind: "hashedrekord", Version: "0.0.1"}
		tle.InclusionPromise = &protorekor.InclusionPromise{SignedEntryTimestamp: set}
		pb.VerificationMaterial.TlogEntries = []*protorekor.TransparencyLogEntry{tle}
	}
	b, err := protojson.Marshal(pb)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A trusted key or identity with a validity window (valid_from,
// valid_until in trust.yaml): a signature whose trusted time lies inside
// it verifies; one made after it fails as key-revoked; one with no trusted
// time fails as untimed. The times are sigstore-go's: the log's integrated
// time checked by sigstore-go against the key's ExpiringKey, and the TSA's.
func TestSignerWindows(t *testing.T) {
	vs, tm := newVirtualSigstore(t)
	s := newSigner(t)
	msg := []byte("pump firmware 2.4.0")
	sum := sha256.Sum256(msg)
	art := Artifact{Name: "fw.bin", Digest: sum[:], Size: int64(len(msg))}
	now := time.Now().UTC()
	day := 24 * time.Hour
	revoked := Window{Until: now.Add(-day)}
	current := Window{From: now.Add(-day), Until: now.Add(day)}

	type tc struct {
		name   string
		window Window
		sig    []byte
		root   bool
		want   Reason
		detail string
	}
	raw := func() []byte {
		b, err := s.sv.SignMessage(bytes.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		return []byte(base64.StdEncoding.EncodeToString(b))
	}
	for _, c := range []tc{
		{"no window, no time", Window{}, raw(), false, "", ""},
		{"window, raw signature without time", current, raw(), false, ReasonUntimed, "the signature carries no trusted time"},
		{"window, TSA time inside", current, keyBundle(t, vs, s, msg, true, time.Time{}), true, "", ""},
		{"window, TSA time after it", revoked, keyBundle(t, vs, s, msg, true, time.Time{}), true, ReasonKeyRevoked, "and the signature was made at"},
		{"window, log time inside", current, keyBundle(t, vs, s, msg, false, now), true, "", ""},
		{"window, log time after it", revoked, keyBundle(t, vs, s, msg, false, now), true, ReasonKeyRevoked, "the transparency log puts this signature outside that"},
		{"window starts later", Window{From: now.Add(day)}, keyBundle(t, vs, s, msg, true, time.Time{}), true, ReasonKeyRevoked, "trusted only from " + now.Add(day).Format(time.RFC3339)},
		// Without a trusted root the log entry cannot be checked: no time.
		{"window, log entry but no trusted root", current, keyBundle(t, vs, s, msg, false, now), false, ReasonUntimed, "no trusted time"},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := s.key
			k.Valid = c.window
			pol := &Policy{Keys: []Key{k}}
			if c.root {
				pol.TrustedRoot = tm
			}
			res, err := Blob(t.Context(), art, []Signature{{Source: "sig", Data: c.sig}}, pol)
			if err != nil {
				t.Fatal(err)
			}
			if c.want == "" {
				if !res.Verified {
					t.Fatalf("not verified: %v %s", res.Reasons, res.Message)
				}
				return
			}
			sr := res.Signatures[0]
			if res.Verified || sr.Reason != c.want || !strings.Contains(sr.Detail, c.detail) {
				t.Fatalf("verified %v, reason %q, detail %q; want %q with %q", res.Verified, sr.Reason, sr.Detail, c.want, c.detail)
			}
			if res.Reasons[0] != c.want {
				t.Fatalf("headline reasons = %v", res.Reasons)
			}
		})
	}
}

// A keyless identity's window is checked against the signature's log and
// TSA times.
func TestIdentityWindow(t *testing.T) {
	vs, tm := newVirtualSigstore(t)
	msg := []byte("pump firmware 2.4.0")
	sum := sha256.Sum256(msg)
	art := Artifact{Name: "fw.bin", Digest: sum[:], Size: int64(len(msg))}
	signedAt := time.Now().UTC().Add(time.Minute).Truncate(time.Second) // inside the fresh certificate
	ent, err := vs.SignAtTime(testIdent, testIssuer, msg, signedAt)
	if err != nil {
		t.Fatal(err)
	}
	b := entityBundle(t, vs, ent)
	for _, c := range []struct {
		name   string
		window Window
		want   Reason
	}{
		{"inside", Window{From: signedAt.Add(-time.Hour), Until: signedAt.Add(time.Hour)}, ""},
		{"revoked before", Window{Until: signedAt.Add(-time.Hour)}, ReasonKeyRevoked},
	} {
		t.Run(c.name, func(t *testing.T) {
			pol := &Policy{TrustedRoot: tm, Identities: []Identity{{Subject: testIdent, Issuer: testIssuer, Valid: c.window}}}
			res, err := Blob(t.Context(), art, []Signature{{Source: "bundle", Data: b}}, pol)
			if err != nil {
				t.Fatal(err)
			}
			if got := res.Signatures[0].Reason; got != c.want {
				t.Fatalf("reason %q (%s), want %q", got, res.Signatures[0].Detail, c.want)
			}
			if c.want != "" && !strings.Contains(res.Signatures[0].Detail, testIdent+" (issuer "+testIssuer+"): trusted only from any time until") {
				t.Fatalf("detail %q", res.Signatures[0].Detail)
			}
		})
	}
}

// entityBundle is a virtual Sigstore keyless signature as a Sigstore bundle
// (v0.1: certificate, Rekor entry with its inclusion promise, RFC 3161
// timestamps).
func entityBundle(t testing.TB, vs *ca.VirtualSigstore, ent *ca.TestEntity) []byte {
	t.Helper()
	vc, err := ent.VerificationContent()
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ent.SignatureContent()
	if err != nil {
		t.Fatal(err)
	}
	ms := sc.MessageSignatureContent()
	pb := &protobundle.Bundle{
		MediaType: "application/vnd.dev.sigstore.bundle+json;version=0.1",
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content:                   &protobundle.VerificationMaterial_Certificate{Certificate: &protocommon.X509Certificate{RawBytes: vc.Certificate().Raw}},
			TimestampVerificationData: &protobundle.TimestampVerificationData{},
		},
		Content: &protobundle.Bundle_MessageSignature{MessageSignature: &protocommon.MessageSignature{
			MessageDigest: &protocommon.HashOutput{Algorithm: protocommon.HashAlgorithm_SHA2_256, Digest: ms.Digest()},
			Signature:     ms.Signature(),
		}},
	}
	tss, err := ent.Timestamps()
	if err != nil {
		t.Fatal(err)
	}
	for _, ts := range tss {
		pb.VerificationMaterial.TimestampVerificationData.Rfc3161Timestamps = append(pb.VerificationMaterial.TimestampVerificationData.Rfc3161Timestamps, &protocommon.RFC3161SignedTimestamp{SignedTimestamp: ts})
	}
	entries, err := ent.TlogEntries()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		tle := e.TransparencyLogEntry()
		tle.KindVersion = &protorekor.KindVersion{Kind: "hashedrekord", Version: "0.0.1"}
		set, err := vs.RekorSignPayload(tlog.RekorPayload{Body: base64.StdEncoding.EncodeToString(tle.CanonicalizedBody),
			IntegratedTime: tle.IntegratedTime, LogIndex: tle.LogIndex, LogID: hex.EncodeToString(tle.LogId.KeyId)})
		if err != nil {
			t.Fatal(err)
		}
		tle.InclusionPromise = &protorekor.InclusionPromise{SignedEntryTimestamp: set}
		pb.VerificationMaterial.TlogEntries = append(pb.VerificationMaterial.TlogEntries, tle)
	}
	b, err := protojson.Marshal(pb)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
