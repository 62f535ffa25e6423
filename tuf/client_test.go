package tuf_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/wardgate/wardgate/internal/tufrepo"
	"github.com/wardgate/wardgate/tuf"
)

const (
	vendor     = "acme-infusion"
	pumpTarget = "infusion-pump/infusion-pump-2.4.0.bin"
)

var pumpFirmware = bytes.Repeat([]byte("pump firmware 2.4.0\n"), 512)

// fixture is a vendor repository published to a mirror directory, the
// firmware it lists, and a client with its own state.
type fixture struct {
	repo   *tufrepo.Repo
	mirror string
	fw     string // the firmware file
	state  tuf.State
	client *tuf.Client
	now    time.Time
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	repo, err := tufrepo.New(now, 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.AddTarget(metadata.TARGETS, pumpTarget, pumpFirmware, tufrepo.Custom{Version: "2.4.0", DeviceClasses: []string{"infusion-pump"}}); err != nil {
		t.Fatal(err)
	}
	f := &fixture{repo: repo, mirror: t.TempDir(), now: now, state: tuf.NewDirState(t.TempDir())}
	if err := repo.Publish(f.mirror); err != nil {
		t.Fatal(err)
	}
	f.fw = filepath.Join(t.TempDir(), "infusion-pump-2.4.0.bin")
	if err := os.WriteFile(f.fw, pumpFirmware, 0o644); err != nil {
		t.Fatal(err)
	}
	f.client = f.newClient(t)
	return f
}

// newClient is a client on the fixture's state, as a new run of wardgate
// makes one.
func (f *fixture) newClient(t testing.TB) *tuf.Client {
	t.Helper()
	c, err := tuf.NewClient(vendor, f.repo.RootJSON(), f.state)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fixture) lookup(t testing.TB, src tuf.Source, target string) *tuf.Release {
	t.Helper()
	rel, err := f.client.Lookup(t.Context(), src, target, f.now)
	if err != nil {
		t.Fatalf("lookup: %v", err)
	}
	return rel
}

func wantReason(t testing.TB, rel *tuf.Release, want tuf.Reason, detail string) {
	t.Helper()
	if rel.Reason != want {
		t.Fatalf("reason = %q (%s), want %q", rel.Reason, rel.Detail, want)
	}
	if !strings.Contains(rel.Detail, detail) {
		t.Fatalf("detail %q does not say %q", rel.Detail, detail)
	}
}

func roleVersions(rel *tuf.Release) string {
	var out []string
	for _, r := range rel.Roles {
		out = append(out, fmt.Sprintf("%s=%d", r.Name, r.Version))
	}
	return strings.Join(out, " ")
}

func TestLookupGood(t *testing.T) {
	f := newFixture(t)
	rel := f.lookup(t, tuf.Dir(f.mirror), pumpTarget)
	if !rel.OK() {
		t.Fatalf("reason %s: %s", rel.Reason, rel.Detail)
	}
	sum := sha256.Sum256(pumpFirmware)
	if rel.Version != "2.4.0" || !slices.Equal(rel.DeviceClasses, []string{"infusion-pump"}) || rel.Length != int64(len(pumpFirmware)) || rel.Hashes["sha256"] != hex.EncodeToString(sum[:]) {
		t.Fatalf("release = %+v", rel)
	}
	if got := roleVersions(rel); got != "root=1 timestamp=1 snapshot=1 targets=1" {
		t.Fatalf("roles = %s", got)
	}
	for _, r := range rel.Roles {
		if !strings.HasPrefix(r.Digest, "sha256:") {
			t.Fatalf("role %s has no digest", r.Name)
		}
	}
	if want := f.now.Add(30 * 24 * time.Hour); !rel.Expires.Equal(want) {
		t.Fatalf("expires = %v, want %v (the timestamp's)", rel.Expires, want)
	}
	if err := rel.CheckFile(f.fw); err != nil || !rel.OK() {
		t.Fatalf("check file: %v, reason %s: %s", err, rel.Reason, rel.Detail)
	}
}

func TestLookupExpiredTimestamp(t *testing.T) {
	f := newFixture(t)
	f.repo.Timestamp.Signed.Expires = f.now.Add(-time.Hour)
	if err := f.repo.Publish(f.mirror); err != nil {
		t.Fatal(err)
	}
	rel := f.lookup(t, tuf.Dir(f.mirror), pumpTarget)
	wantReason(t, rel, tuf.ReasonExpired, "timestamp.json is expired")
	if !rel.Expires.Equal(f.now.Add(-time.Hour)) {
		t.Fatalf("expires = %v, want the timestamp's %v", rel.Expires, f.now.Add(-time.Hour))
	}
}

// A repository frozen at metadata the client already trusts is refused
// once that metadata expires, in a later run.
func TestLookupFrozenAcrossRuns(t *testing.T) {
	f := newFixture(t)
	if rel := f.lookup(t, tuf.Dir(f.mirror), pumpTarget); !rel.OK() {
		t.Fatalf("first run: %s %s", rel.Reason, rel.Detail)
	}
	f.client = f.newClient(t)
	f.now = f.now.Add(31 * 24 * time.Hour)
	wantReason(t, f.lookup(t, tuf.Dir(f.mirror), pumpTarget), tuf.ReasonExpired, "expired")
}

// A mirror rolled back to older metadata after a newer version was seen is
// refused, also by a client of a later run on the same state.
func TestLookupRollbackAcrossRuns(t *testing.T) {
	f := newFixture(t)
	old := t.TempDir()
	if err := os.CopyFS(old, os.DirFS(f.mirror)); err != nil {
		t.Fatal(err)
	}
	if err := f.repo.AddTarget(metadata.TARGETS, "infusion-pump/infusion-pump-2.5.0.bin", []byte("2.5.0"), tufrepo.Custom{Version: "2.5.0"}); err != nil {
		t.Fatal(err)
	}
	if err := f.repo.Publish(f.mirror); err != nil {
		t.Fatal(err)
	}
	rel := f.lookup(t, tuf.Dir(f.mirror), pumpTarget)
	if !rel.OK() || roleVersions(rel) != "root=1 timestamp=2 snapshot=2 targets=2" {
		t.Fatalf("newer metadata: %s %s, roles %s", rel.Reason, rel.Detail, roleVersions(rel))
	}
	f.client = f.newClient(t) // a later run
	rel = f.lookup(t, tuf.Dir(old), pumpTarget)
	wantReason(t, rel, tuf.ReasonRollback, "new timestamp version 1 must be >= 2")
	// The same mirror with a fresh state is not a rollback: the state is
	// what remembers.
	fresh, err := tuf.NewClient(vendor, f.repo.RootJSON(), tuf.NewMemState())
	if err != nil {
		t.Fatal(err)
	}
	if rel, err := fresh.Lookup(t.Context(), tuf.Dir(old), pumpTarget, f.now); err != nil || !rel.OK() {
		t.Fatalf("fresh state: %v %+v", err, rel)
	}
}

// The targets role rolled back under a newer timestamp and snapshot (a
// mix-and-match of old targets with fresh snapshot metadata).
func TestLookupTargetsRollback(t *testing.T) {
	f := newFixture(t)
	f.repo.Touch(metadata.TARGETS)
	if err := f.repo.Publish(f.mirror); err != nil {
		t.Fatal(err)
	}
	if rel := f.lookup(t, tuf.Dir(f.mirror), pumpTarget); !rel.OK() {
		t.Fatalf("v2: %s", rel.Detail)
	}
	f.repo.Targets[metadata.TARGETS].Signed.Version = 0 // Publish makes it 1
	f.repo.Touch(metadata.TARGETS)
	if err := f.repo.Publish(f.mirror); err != nil {
		t.Fatal(err)
	}
	wantReason(t, f.lookup(t, tuf.Dir(f.mirror), pumpTarget), tuf.ReasonRollback, "targets.json")
}

func TestLookupTargetHashMismatch(t *testing.T) {
	f := newFixture(t)
	rel := f.lookup(t, tuf.Dir(f.mirror), pumpTarget)
	other := bytes.Clone(pumpFirmware)
	other[100] ^= 1
	p := filepath.Join(t.TempDir(), "infusion-pump-2.4.0.bin")
	if err := os.WriteFile(p, other, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := rel.CheckFile(p); err != nil {
		t.Fatal(err)
	}
	wantReason(t, rel, tuf.ReasonDigestMismatch, "hash verification failed - mismatch for algorithm sha256")

	rel = f.lookup(t, tuf.Dir(f.mirror), pumpTarget)
	if err := os.WriteFile(p, append(bytes.Clone(pumpFirmware), 'x'), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := rel.CheckFile(p); err != nil {
		t.Fatal(err)
	}
	wantReason(t, rel, tuf.ReasonDigestMismatch, fmt.Sprintf("the artifact is %d bytes, target %s is %d", len(pumpFirmware)+1, pumpTarget, len(pumpFirmware)))
}

// Targets signed by a key the root does not list.
func TestLookupTargetsSignedByUnlistedKey(t *testing.T) {
	f := newFixture(t)
	rogue, err := tufrepo.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := tufrepo.SignWith(f.repo.Targets[metadata.TARGETS], rogue); err != nil {
		t.Fatal(err)
	}
	if err := f.repo.Write(f.mirror); err != nil {
		t.Fatal(err)
	}
	wantReason(t, f.lookup(t, tuf.Dir(f.mirror), pumpTarget), tuf.ReasonUntrusted, "Verifying targets failed, not enough signatures, got 0, want 1")
}

// A product line delegated to its own role and key: the role is found
// through the delegation and listed among the roles relied on; a target
// outside the delegated paths is not taken from the delegated role.
func TestLookupDelegatedProductLine(t *testing.T) {
	f := newFixture(t)
	if err := f.repo.Delegate(metadata.TARGETS, "mri-line", []string{"mri-console/*"}, f.now.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	mri := []byte("mri console 7.2.0")
	if err := f.repo.AddTarget("mri-line", "mri-console/mri-console-7.2.0.bin", mri, tufrepo.Custom{Version: "7.2.0", DeviceClasses: []string{"mri-console"}}); err != nil {
		t.Fatal(err)
	}
	if err := f.repo.AddTarget("mri-line", "infusion-pump/evil.bin", []byte("evil"), tufrepo.Custom{Version: "9.9.9"}); err != nil {
		t.Fatal(err)
	}
	if err := f.repo.Publish(f.mirror); err != nil {
		t.Fatal(err)
	}
	rel := f.lookup(t, tuf.Dir(f.mirror), "mri-console/mri-console-7.2.0.bin")
	if !rel.OK() || rel.Version != "7.2.0" || roleVersions(rel) != "root=1 timestamp=2 snapshot=2 targets=2 mri-line=1" {
		t.Fatalf("delegated target: %s %s, version %q, roles %s", rel.Reason, rel.Detail, rel.Version, roleVersions(rel))
	}
	if want := f.now.Add(24 * time.Hour); !rel.Expires.Equal(want) {
		t.Fatalf("expires = %v, want the delegated role's %v", rel.Expires, want)
	}
	wantReason(t, f.lookup(t, tuf.Dir(f.mirror), "infusion-pump/evil.bin"), tuf.ReasonUnknownTarget, "target infusion-pump/evil.bin not found")
}

// Root rotation: a client pinned to root 1 follows the rotation to root 2
// (new keys for every role), keeps root 2, and from then on refuses
// metadata signed with the old keys.
func TestLookupRootRotation(t *testing.T) {
	f := newFixture(t)
	oldTimestamp := slices.Clone(f.repo.Keys[metadata.TIMESTAMP])
	if err := f.repo.RotateRoot(); err != nil {
		t.Fatal(err)
	}
	if err := f.repo.Publish(f.mirror); err != nil {
		t.Fatal(err)
	}
	rel := f.lookup(t, tuf.Dir(f.mirror), pumpTarget)
	if !rel.OK() || roleVersions(rel) != "root=2 timestamp=2 snapshot=2 targets=2" {
		t.Fatalf("rotated: %s %s, roles %s", rel.Reason, rel.Detail, roleVersions(rel))
	}
	// The old timestamp key signs a newer timestamp: refused, and the
	// client of a later run does not fall back to root 1 when 2.root.json
	// is gone from the mirror.
	if err := os.Remove(filepath.Join(f.mirror, "metadata", "2.root.json")); err != nil {
		t.Fatal(err)
	}
	f.repo.Timestamp.Signed.Version++
	if err := tufrepo.SignWith(f.repo.Timestamp, oldTimestamp...); err != nil {
		t.Fatal(err)
	}
	if err := f.repo.Timestamp.ToFile(filepath.Join(f.mirror, "metadata", "timestamp.json"), true); err != nil {
		t.Fatal(err)
	}
	f.client = f.newClient(t)
	wantReason(t, f.lookup(t, tuf.Dir(f.mirror), pumpTarget), tuf.ReasonUntrusted, "Verifying timestamp failed, not enough signatures")
}

func TestLookupUnknownTargetAndMissing(t *testing.T) {
	f := newFixture(t)
	wantReason(t, f.lookup(t, tuf.Dir(f.mirror), "infusion-pump/infusion-pump-9.9.9.bin"), tuf.ReasonUnknownTarget, "not found")
	wantReason(t, f.lookup(t, nil, pumpTarget), tuf.ReasonMissing, "no TUF metadata was given for acme-infusion")
	wantReason(t, f.lookup(t, tuf.Dir(t.TempDir()), pumpTarget), tuf.ReasonMissing, "the repository has no timestamp.json")
	g := newFixture(t)
	if err := os.Remove(filepath.Join(g.mirror, "metadata", "1.targets.json")); err != nil {
		t.Fatal(err)
	}
	wantReason(t, g.lookup(t, tuf.Dir(g.mirror), pumpTarget), tuf.ReasonMissing, "the repository has no 1.targets.json")
}

// A target without the release version in its custom field is not release
// metadata wardgate can use.
func TestLookupTargetWithoutVersion(t *testing.T) {
	f := newFixture(t)
	if err := f.repo.AddTarget(metadata.TARGETS, "infusion-pump/nover.bin", []byte("x"), tufrepo.Custom{}); err != nil {
		t.Fatal(err)
	}
	if err := f.repo.Publish(f.mirror); err != nil {
		t.Fatal(err)
	}
	wantReason(t, f.lookup(t, tuf.Dir(f.mirror), "infusion-pump/nover.bin"), tuf.ReasonUntrusted, "does not say its version")
}

func TestNewClientRefusesBadRoots(t *testing.T) {
	f := newFixture(t)
	root := f.repo.RootJSON()
	unsigned := bytes.Replace(root, []byte(`"sig": "`), []byte(`"sig": "00`), 1)
	for _, tc := range []struct {
		name, root, want string
	}{
		{"empty", "", "not TUF metadata"},
		{"not json", "root", "not TUF metadata"},
		{"signed is a list", `{"signed": [], "signatures": []}`, `no "signed" object`},
		{"timestamp as root", `{"signed": {"_type": "timestamp", "spec_version": "1.0.31"}, "signatures": []}`, "expected metadata type root, got - timestamp"},
		{"spec version 2", strings.Replace(string(root), `"spec_version": "1.0.31"`, `"spec_version": "2.0.0"`, 1), `TUF specification version "2.0.0"`},
		{"bad signature", string(unsigned), "not enough signatures"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tuf.NewClient(vendor, []byte(tc.root), tuf.NewMemState())
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "root of acme-infusion") {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
