package cli_test

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/wardgate/wardgate/internal/tufrepo"
)

// admitTUF runs admit with JSON output on state.
func admitTUF(t *testing.T, state string, args ...string) (int, admitResult) {
	t.Helper()
	return admit(t, state, append(args, "-o", "json"))
}

// mriArgs admits the MRI console firmware signed with the medimaging key
// (a signature without a trusted time), with its vendor SBOM.
func mriArgs(config, version string, extra ...string) []string {
	return append([]string{"admit", fx + "/firmware/mri-console-" + version + ".bin", "--config", config,
		"--vendor", "medimaging", "--product", "mri-console", "--signature", fx + "/sig/mri-console-" + version + ".bin.sig",
		"--sbom", fx + "/sbom/mri-console-" + version + ".cdx.json", "--no-log"}, extra...)
}

// The fixtures' medimaging pins a TUF root and names a mirror: the MRI
// console is admitted with the version its target says, and the signature
// without a trusted time is fresh by the TUF metadata's expiry; the
// mirror rolled back is refused once newer metadata was seen; a version
// claim the metadata contradicts is refused.
func TestAdmitTUFFixtures(t *testing.T) {
	const config = "../../../fixtures/trust.yaml"
	state := t.TempDir()
	code, r := admitTUF(t, state, mriArgs(config, "7.2.0")...)
	if code != 0 || !r.Allow {
		t.Fatalf("exit %d %+v", code, r)
	}
	ev := r.Evidence
	if ev.Artifact.Version != "7.2.0" || ev.Artifact.ExpectedDigest != ev.Artifact.Digest || ev.Metadata.Expires == nil ||
		ev.Metadata.TUF == nil || !ev.Metadata.TUF.Verified || ev.Metadata.TUF.Target != "mri-console/mri-console-7.2.0.bin" {
		t.Fatalf("evidence %+v", ev)
	}
	if _, err := os.Stat(filepath.Join(state, "tuf", "medimaging", "timestamp.json")); err != nil {
		t.Fatalf("trusted metadata not kept in the state: %v", err)
	}
	code, r = admitTUF(t, state, mriArgs(config, "7.1.0", "--tuf-repo", fx+"/tuf/medimaging-rolled-back")...)
	if code != 1 || !slices.Contains(r.codes(), "metadata-rollback") {
		t.Fatalf("rolled back: exit %d %v", code, r.codes())
	}
	// The file admitted as 7.2.0 above, claimed as 9.9.9: the signed
	// target says otherwise, and the ledger has it as 7.2.0.
	code, r = admitTUF(t, state, mriArgs(config, "7.2.0", "--version", "9.9.9")...)
	if code != 1 || !slices.Equal(r.codes(), []string{"metadata-mismatch", "version-conflict"}) {
		t.Fatalf("version claim: exit %d %v", code, r.codes())
	}
	// A repository with no metadata at all.
	empty := t.TempDir()
	if err := os.Mkdir(filepath.Join(empty, "metadata"), 0o755); err != nil {
		t.Fatal(err)
	}
	code, r = admitTUF(t, t.TempDir(), mriArgs(config, "7.2.0", "--version", "7.2.0", "--tuf-repo", empty)...)
	if code != 1 || !slices.Contains(r.codes(), "metadata-missing") || !strings.Contains(r.Decision.Violations[0].Message+r.Decision.Violations[len(r.Decision.Violations)-1].Message, "the repository has no timestamp.json") {
		t.Fatalf("empty repository: exit %d %+v", code, r.Decision.Violations)
	}
	// --tuf-repo that is not a repository.
	code, r = admitTUF(t, t.TempDir(), mriArgs(config, "7.2.0", "--tuf-repo", t.TempDir())...)
	if code != 2 || !strings.Contains(r.Error, "want a TUF repository directory with a metadata/ directory in it") {
		t.Fatalf("not a repository: exit %d %+v", code, r)
	}
}

// tufConfig writes a trust configuration trusting the medimaging key for
// the MRI console, with the vendor pinning root.
func tufConfig(t *testing.T, root []byte) string {
	t.Helper()
	dir := t.TempDir()
	key, err := filepath.Abs(fx + "/keys/medimaging.pub")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "root.json"), root, 0o644); err != nil {
		t.Fatal(err)
	}
	body := "version: 1\nmax_metadata_age: 30d\nsbom:\n  required: true\n  drift_allowance: {missing: 3}\nvendors:\n  medimaging:\n    tuf:\n      root: root.json\n" +
		"    products:\n      mri-console:\n        device_classes: [mri-console]\n        authorities:\n          keys:\n            - path: " + key + "\n"
	p := filepath.Join(dir, "trust.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// The TUF scenarios of issue 12, each a repository made in the test with
// go-tuf's metadata API, through wardgate admit --tuf-repo.
func TestAdmitTUFScenarios(t *testing.T) {
	fw, err := os.ReadFile(fx + "/firmware/mri-console-7.2.0.bin")
	if err != nil {
		t.Fatal(err)
	}
	const target = "mri-console/mri-console-7.2.0.bin"
	custom := tufrepo.Custom{Version: "7.2.0", DeviceClasses: []string{"mri-console"}}
	for _, tc := range []struct {
		name string
		// build publishes the repository into mirror; seen, if set, is
		// published and admitted first (metadata a client saw before).
		build func(t *testing.T, r *tufrepo.Repo, mirror string) (seen string)
		code  int
		want  []string
		roles string
	}{
		{name: "good", code: 0, roles: "root=1 timestamp=1 snapshot=1 targets=1", build: func(t *testing.T, r *tufrepo.Repo, mirror string) string {
			must(t, r.AddTarget(metadata.TARGETS, target, fw, custom))
			must(t, r.Publish(mirror))
			return ""
		}},
		{name: "expired timestamp", code: 1, want: []string{"metadata-expired", "metadata-untimed"}, build: func(t *testing.T, r *tufrepo.Repo, mirror string) string {
			must(t, r.AddTarget(metadata.TARGETS, target, fw, custom))
			r.Timestamp.Signed.Expires = time.Now().Add(-time.Minute).UTC()
			must(t, r.Publish(mirror))
			return ""
		}},
		{name: "rolled back after a newer version was seen", code: 1, want: []string{"metadata-rollback", "metadata-untimed"}, build: func(t *testing.T, r *tufrepo.Repo, mirror string) string {
			must(t, r.AddTarget(metadata.TARGETS, target, fw, custom))
			must(t, r.Publish(mirror))
			newer := t.TempDir()
			must(t, os.CopyFS(newer, os.DirFS(mirror)))
			r.Touch(metadata.TARGETS)
			must(t, r.Publish(newer))
			return newer
		}},
		{name: "target hash mismatch", code: 1, want: []string{"digest-mismatch", "metadata-untimed"}, build: func(t *testing.T, r *tufrepo.Repo, mirror string) string {
			other := append([]byte(nil), fw...)
			other[0] ^= 0xff
			must(t, r.AddTarget(metadata.TARGETS, target, other, custom))
			must(t, r.Publish(mirror))
			return ""
		}},
		{name: "targets signed by a key the root does not list", code: 1, want: []string{"metadata-untimed", "metadata-untrusted"}, build: func(t *testing.T, r *tufrepo.Repo, mirror string) string {
			must(t, r.AddTarget(metadata.TARGETS, target, fw, custom))
			must(t, r.Publish(mirror))
			rogue, err := tufrepo.NewKey()
			must(t, err)
			must(t, tufrepo.SignWith(r.Targets[metadata.TARGETS], rogue))
			must(t, r.Write(mirror))
			return ""
		}},
		{name: "delegated product line", code: 0, roles: "root=1 timestamp=1 snapshot=1 targets=1 mri-line=1", build: func(t *testing.T, r *tufrepo.Repo, mirror string) string {
			must(t, r.Delegate(metadata.TARGETS, "mri-line", []string{"mri-console/*"}, time.Now().Add(24*time.Hour)))
			must(t, r.AddTarget("mri-line", target, fw, custom))
			must(t, r.Publish(mirror))
			return ""
		}},
		{name: "root rotation", code: 0, roles: "root=2 timestamp=2 snapshot=2 targets=2", build: func(t *testing.T, r *tufrepo.Repo, mirror string) string {
			must(t, r.AddTarget(metadata.TARGETS, target, fw, custom))
			must(t, r.Publish(mirror))
			must(t, r.RotateRoot())
			must(t, r.Publish(mirror))
			return ""
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := tufrepo.New(time.Now(), 7*24*time.Hour)
			must(t, err)
			mirror := t.TempDir()
			seen := tc.build(t, r, mirror)
			config := tufConfig(t, r.RootJSON())
			state := t.TempDir()
			if seen != "" {
				if code, res := admitTUF(t, state, mriArgs(config, "7.2.0", "--no-scan", "--tuf-repo", seen)...); code != 0 {
					t.Fatalf("newer metadata: exit %d %v %s", code, res.codes(), res.Error)
				}
			}
			code, res := admitTUF(t, state, mriArgs(config, "7.2.0", "--no-scan", "--tuf-repo", mirror)...)
			if code != tc.code || !slices.Equal(res.codes(), tc.want) {
				t.Fatalf("exit %d, codes %v, want %d %v\n%+v", code, res.codes(), tc.code, tc.want, res.Decision.Violations)
			}
			if tc.roles != "" {
				var got []string
				for _, ro := range res.Evidence.Metadata.TUF.Roles {
					got = append(got, ro.Name+"="+itoa(ro.Version))
				}
				if strings.Join(got, " ") != tc.roles {
					t.Fatalf("roles %v, want %s", got, tc.roles)
				}
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// Time-scoped trust through admit: the pump's keyless release identity
// trusted until a date before the fixture's signing time (its log entry
// and timestamp) is key-revoked; trusted over a window around it, the
// release is admitted; the release key given a window, its raw signature
// (no trusted time) is metadata-untimed.
func TestAdmitTimeScopedTrust(t *testing.T) {
	config := func(t *testing.T, from, until string, onKey bool) string {
		t.Helper()
		window := "              valid_from: " + from + "\n              valid_until: " + until + "\n"
		return fixtureTrust(t, func(s string) string {
			if onKey {
				return pumpKeyLine.ReplaceAllString(s, "${1}"+window)
			}
			return strings.Replace(s, "              issuer: https://accounts.acme-infusion.example\n", "              issuer: https://accounts.acme-infusion.example\n"+window, 1)
		})
	}
	for _, tc := range []struct {
		name        string
		from, until string
		onKey       bool
		code        int
		want        []string
	}{
		{"identity trusted around the signing time", "2020-01-01", "2099-01-01", false, 0, nil},
		{"identity revoked before the signing time", "2020-01-01", "2026-06-30", false, 1, []string{"key-revoked", "threshold-not-met"}},
		{"key with a window, signature without a trusted time", "2020-01-01", "2099-01-01", true, 1, []string{"metadata-untimed", "threshold-not-met"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := replace(pumpArgs("2.4.0", "--no-scan"), "--config", config(t, tc.from, tc.until, tc.onKey))
			code, r := admitTUF(t, t.TempDir(), args...)
			if code != tc.code || !slices.Equal(r.codes(), tc.want) {
				t.Fatalf("exit %d, codes %v, want %d %v\n%+v", code, r.codes(), tc.code, tc.want, r.Decision.Violations)
			}
		})
	}
}
