package attest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/transparency-dev/merkle/proof"

	"github.com/wardgate/wardgate/store/sqlite"
)

func newSigner(t testing.TB) *Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := signature.LoadECDSASignerVerifier(k, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(sv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func verdict(i int, passed bool) Verdict {
	sum := sha256.Sum256([]byte(fmt.Sprint("artifact", i%7)))
	codes := []string{}
	if !passed {
		codes = []string{"untrusted-signer"}
	}
	return Verdict{
		SubjectName: fmt.Sprintf("infusion-pump-%d.bin", i%7), SubjectDigest: map[string]string{"sha256": hex.EncodeToString(sum[:])},
		ResourceURI: "urn:wardgate:artifact:sha256:" + hex.EncodeToString(sum[:]), Passed: passed, ReasonCodes: codes,
		PolicyURI: "https://wardgate.dev/policy/default", PolicyDigest: map[string]string{"sha256": strings.Repeat("ab", 32)},
		Inputs:      []Input{{URI: "sig/pump.sig", Digest: map[string]string{"sha256": strings.Repeat("cd", 32)}}},
		DeviceClass: "infusion-pump", DeviceID: fmt.Sprintf("pump-%03d", i%5), Time: t0.Add(time.Duration(i) * time.Minute),
	}
}

func envelopeFor(t testing.TB, s *Signer, i int) ([]byte, Verdict) {
	t.Helper()
	v := verdict(i, i%3 != 0)
	st, err := NewStatement(v, "test")
	if err != nil {
		t.Fatal(err)
	}
	env, err := s.SignStatement(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	return env, v
}

func TestStatementRoundTrip(t *testing.T) {
	s := newSigner(t)
	env, v := envelopeFor(t, s, 1)
	st, err := s.Verifier().VerifyStatement(env)
	if err != nil {
		t.Fatal(err)
	}
	if st.Predicate.VerificationResult != "PASSED" || st.Subject[0].Digest["sha256"] != v.SubjectDigest["sha256"] ||
		st.Predicate.Wardgate.DeviceClass != "infusion-pump" || st.Predicate.Verifier.ID != VerifierID || st.Predicate.TimeVerified != "2026-11-28T12:01:00Z" {
		t.Fatalf("statement = %+v", st)
	}
	other := newSigner(t)
	if _, err := other.Verifier().VerifyStatement(env); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("other key: %v", err)
	}
}

// cosign's own attestation verification accepts wardgate's envelopes with
// the service public key, as `cosign verify-blob-attestation` would.
func TestCosignAcceptsEnvelope(t *testing.T) {
	s := newSigner(t)
	env, v := envelopeFor(t, s, 2)
	att, err := static.NewAttestation(env)
	if err != nil {
		t.Fatal(err)
	}
	h := v1.Hash{Algorithm: "sha256", Hex: v.SubjectDigest["sha256"]}
	co := &cosign.CheckOpts{SigVerifier: s.sv, IgnoreTlog: true, ClaimVerifier: cosign.IntotoSubjectClaimVerifier} // as verify-blob-attestation sets it
	if _, err := cosign.VerifyBlobAttestation(context.Background(), att, h, co); err != nil {
		t.Fatalf("cosign rejected the envelope: %v", err)
	}
	wrong := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("00", 32)}
	if _, err := cosign.VerifyBlobAttestation(context.Background(), att, wrong, co); err == nil {
		t.Fatal("cosign accepted the envelope for another digest")
	}
	co.SigVerifier = newSigner(t).sv
	if _, err := cosign.VerifyBlobAttestation(context.Background(), att, h, co); err == nil {
		t.Fatal("cosign accepted the envelope with another key")
	}
}

// openLogDir opens the log kept in the store in dir (a state directory on
// real SQLite files); the store is closed when the test ends.
func openLogDir(t testing.TB, dir string, s *Signer, opts ...LogOption) (*Log, error) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return OpenLog(context.Background(), st, s, "", opts...)
}

// openLog opens a log in a new state directory and returns both.
func openLog(t testing.TB, s *Signer) (*Log, string) {
	t.Helper()
	dir := t.TempDir()
	l, err := openLogDir(t, dir, s)
	if err != nil {
		t.Fatal(err)
	}
	return l, dir
}

func appendN(t testing.TB, l *Log, s *Signer, n int) {
	t.Helper()
	for i := range n {
		env, v := envelopeFor(t, s, i)
		if _, err := l.Append(context.Background(), Item{Envelope: env, Artifact: "sha256:" + v.SubjectDigest["sha256"], Device: v.DeviceID, Time: v.Time,
			Blobs: []Blob{{MediaType: "application/yaml", Data: []byte("vendors: []\n")}}}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLogProofs(t *testing.T) {
	s := newSigner(t)
	l, path := openLog(t, s)
	appendN(t, l, s, 37)
	cp := l.Checkpoint()
	if cp.Size != 37 {
		t.Fatalf("size %d", cp.Size)
	}
	parsed, err := ParseCheckpoint(cp.Note, l.Origin(), s.Verifier())
	if err != nil || parsed.Size != 37 || hex.EncodeToString(parsed.Root) != hex.EncodeToString(cp.Root) {
		t.Fatalf("checkpoint: %v %+v", err, parsed)
	}
	ctx := context.Background()
	for _, idx := range []uint64{0, 1, 15, 31, 32, 36} {
		e, err := l.Entry(ctx, idx)
		if err != nil {
			t.Fatal(err)
		}
		p, err := l.InclusionProof(ctx, idx, 37)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyInclusion(hasher, idx, 37, hasher.HashLeaf(e.Envelope), p, cp.Root); err != nil {
			t.Fatalf("inclusion %d: %v", idx, err)
		}
	}
	// Consistency from an earlier checkpoint, taken at 20.
	l2, err := openLogDir(t, path, s)
	if err != nil {
		t.Fatal(err)
	}
	if l2.Checkpoint().Size != 37 {
		t.Fatalf("reopened size %d", l2.Checkpoint().Size)
	}
	appendN(t, l2, s, 5)
	cp2 := l2.Checkpoint()
	p, err := l2.ConsistencyProof(ctx, 37, cp2.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(hasher, 37, 42, p, cp.Root, cp2.Root); err != nil {
		t.Fatalf("consistency: %v", err)
	}
	if _, err := ParseCheckpoint(cp.Note, "another-log", s.Verifier()); err == nil {
		t.Fatal("checkpoint accepted under another origin")
	}
	if _, err := ParseCheckpoint(cp.Note, l.Origin(), newSigner(t).Verifier()); err == nil {
		t.Fatal("checkpoint accepted with another key")
	}
	if _, err := openLogDir(t, path, newSigner(t)); err == nil || !strings.Contains(err.Error(), "another log, or another key") {
		t.Fatalf("opening with another key: %v", err)
	}
}

// A batch that fails half-way leaves the log exactly as it was, and the
// next append works.
func TestAppendBatchIsAtomic(t *testing.T) {
	s := newSigner(t)
	l, path := openLog(t, s)
	appendN(t, l, s, 3)
	before := l.Checkpoint()
	raw, err := sql.Open("sqlite", filepath.Join(path, "wardgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`CREATE TRIGGER boom BEFORE INSERT ON entries WHEN NEW.artifact = 'boom' BEGIN SELECT RAISE(ABORT, 'injected failure'); END;`); err != nil {
		t.Fatal(err)
	}
	env, _ := envelopeFor(t, s, 9)
	_, err = l.AppendBatch(context.Background(), []Item{{Envelope: env, Artifact: "ok"}, {Envelope: env, Artifact: "boom"}})
	if err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("want injected failure, got %v", err)
	}
	if after := l.Checkpoint(); after.Size != before.Size || string(after.Root) != string(before.Root) {
		t.Fatalf("checkpoint moved: %d -> %d", before.Size, after.Size)
	}
	appendN(t, l, s, 1)
	l2, err := openLogDir(t, path, s)
	if err != nil {
		t.Fatalf("reopen after failed batch: %v", err)
	}
	if l2.Checkpoint().Size != 4 {
		t.Fatalf("size %d, want 4", l2.Checkpoint().Size)
	}
}

func TestKeygenAndLoad(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(PasswordEnv, "correct horse")
	key, pub, err := Keygen(filepath.Join(dir, "wardgate"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(key)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v %v", st.Mode(), err)
	}
	if _, _, err := Keygen(filepath.Join(dir, "wardgate")); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("second keygen: %v", err)
	}
	s, err := LoadSigner(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(pemBytes)
	if err != nil || v.KeyID() != s.KeyID() {
		t.Fatalf("pub key id %v %v", err, v)
	}
	t.Setenv(PasswordEnv, "wrong")
	if _, err := LoadSigner(context.Background(), key); err == nil || !strings.Contains(err.Error(), "WARDGATE_KEY_PASSWORD") {
		t.Fatalf("wrong password: %v", err)
	}
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSigner(context.Background(), key); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key: %v", err)
	}
	if _, err := LoadSigner(context.Background(), "awskms:///alias/x"); err == nil {
		t.Fatal("KMS URI without a provider loaded")
	}
}

// The log dates entries itself and its times never go backwards: an item
// dated before the newest entry (a clock set back, a replayed evaluation
// time) gets the newest entry's time, also after the log is reopened.
func TestLogTimesNeverGoBack(t *testing.T) {
	ctx := context.Background()
	s := newSigner(t)
	l, path := openLog(t, s)
	at := func(i int, when time.Time) Entry {
		t.Helper()
		env, _ := envelopeFor(t, s, i)
		e, err := l.Append(ctx, Item{Envelope: env, Artifact: "a", Time: when})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	before := time.Now().UTC()
	if e := at(0, time.Time{}); e.Time.Before(before) || e.Time.After(time.Now()) {
		t.Fatalf("zero time: entry dated %v, want the log's clock (after %v)", e.Time, before)
	}
	future := time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC)
	if e := at(1, future); !e.Time.Equal(future) {
		t.Fatalf("entry 1 at %v", e.Time)
	}
	if e := at(2, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)); !e.Time.Equal(future) {
		t.Fatalf("an item dated 2020 after one dated 2040 got %v, want %v", e.Time, future)
	}
	// Reopened on a store of its own over the same files.
	l, err := openLogDir(t, path, s)
	if err != nil {
		t.Fatal(err)
	}
	if e := at(3, time.Time{}); !e.Time.Equal(future) {
		t.Fatalf("after reopening: the log's clock gave %v, want %v (never before the newest entry)", e.Time, future)
	}
	var times []time.Time
	if err := l.Entries(ctx, Filter{Since: future}, func(e Entry) error { times = append(times, e.Time); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(times) != 3 {
		t.Fatalf("entries since %v: %v", future, times)
	}
}
