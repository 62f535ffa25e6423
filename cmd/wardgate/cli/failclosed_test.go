package cli_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/wardgate/wardgate/cmd/wardgate/cli"
	"github.com/wardgate/wardgate/fixtures/fleet"
	"github.com/wardgate/wardgate/internal/tufrepo"
)

// release is one update as both drivers send it: the file (and the name it
// is sent under), the caller's claims, and the signatures and SBOM given.
type release struct {
	file, name               string
	vendor, product, version string
	signature, bundle, sbom  string
}

func pumpRelease(version string) release {
	return release{file: fx + "/firmware/infusion-pump-" + version + ".bin", vendor: "acme-infusion", product: "infusion-pump", version: version,
		signature: fx + "/sig/infusion-pump-" + version + ".bin.sig", bundle: fx + "/keyless/infusion-pump-" + version + ".bin.v0.3.sigstore.json",
		sbom: fx + "/sbom/infusion-pump-" + version + ".cdx.json"}
}

func mriRelease(version string) release {
	return release{file: fx + "/firmware/mri-console-" + version + ".bin", vendor: "medimaging", product: "mri-console", version: version,
		signature: fx + "/sig/mri-console-" + version + ".bin.sig", sbom: fx + "/sbom/mri-console-" + version + ".cdx.json"}
}

// device is the device an admission is for.
type device struct{ id, class, installed string }

// failCase removes, unsigns, or contradicts the input of one configured
// check, and names the codes the deny must carry (none: the control case
// of a row, which must be allowed, so that a check that blocks everything
// does not pass for one that fails closed).
type failCase struct {
	check string
	prior []release // admitted first (each must be allowed)
	rel   release
	dev   device
	want  []string
	// config edits fixtures/trust.yaml for this case; nil: the fixtures'.
	config func(string) string
	// scan runs syft over the artifact (the table skips it elsewhere, to
	// stay fast).
	scan bool
	// state prepares the state directory (fleet telemetry) before both
	// the priors and the release.
	state func(t *testing.T, state string)
}

// matrixRun is one case as a driver runs it.
type matrixRun struct {
	state, config string
	scan          bool
	prior         []release
	rel           release
	dev           device
}

// The fail-closed matrix (issue 12): for each check the fixtures' trust
// configuration turns on (or a case's edit of it), its input removed,
// unsigned, stale or contradictory gives a deny with the check's code,
// through wardgate admit and through POST /v1/updates + POST
// /v1/admissions (the same table, two drivers). Where a check could fail
// open by ignoring its input altogether, or pass by denying everything
// (the egress manifest, the TUF mirror, the rollout rings), a row with a
// good input must be allowed.
func TestFailClosedMatrix(t *testing.T) {
	pump := device{"P-1", "infusion-pump", ""}
	mri := device{"M-1", "mri-console", ""}
	unsigned := pumpRelease("2.4.0")
	unsigned.signature, unsigned.bundle = "", ""
	untrusted := pumpRelease("2.4.0")
	untrusted.signature, untrusted.bundle = fx+"/tampered/infusion-pump-2.4.0.bin.wrongkey.sig", fx+"/tampered/infusion-pump-2.4.0.bin.intruder.sigstore.json"
	oneSigner := pumpRelease("2.4.0")
	oneSigner.bundle = ""
	noSBOM := pumpRelease("2.4.0")
	noSBOM.sbom = ""
	padded := pumpRelease("2.4.0")
	padded.sbom = fx + "/sbom/infusion-pump-2.4.0.padded.cdx.json"
	rebuilt := pumpRelease("2.4.0")
	rebuilt.sbom = fx + "/sbom/infusion-pump-2.4.0.rebuilt.cdx.json"
	agpl := pumpRelease("2.4.0")
	agpl.sbom = fx + "/sbom/infusion-pump-2.4.0.agpl.cdx.json"
	vulnerable := pumpRelease("2.4.0")
	vulnerable.sbom = fx + "/sbom/infusion-pump-2.4.0.vulnerable.cdx.json"
	flippedRel := pumpRelease("2.4.0")
	flippedRel.file, flippedRel.name = fx+"/tampered/infusion-pump-2.4.0-flipped.bin", "infusion-pump-2.4.0.bin"
	flippedRel.signature = fx + "/sig/infusion-pump-2.4.0.bin.sigstore.json"
	belowMin := pumpRelease("2.3.0")
	belowMin.version = "2.2.9"
	relabelled := pumpRelease("2.4.0")
	relabelled.version = "9.9.9"
	reissued := pumpRelease("2.3.0")
	reissued.version = "2.4.0"
	mriClaim := mriRelease("7.2.0")
	mriClaim.version = "7.1.0"
	swapped := mriRelease("7.1.0")
	swapped.name, swapped.version, swapped.signature = "mri-console-7.2.0.bin", "7.2.0", fx+"/sig/mri-console-7.1.0.bin.sig"
	// The egress manifests: the pump 2.4.0 firmware's devices (the fleet
	// fixture's 3CX-like update, relabelled) reach raw.githubusercontent.com;
	// a manifest that lists it silences the findings, but only if the
	// vendor signed it for this release.
	m := egressManifests(t)
	tm := tufMirrors(t)
	cases := []failCase{
		{check: "signature: none", rel: unsigned, dev: pump, want: []string{"unsigned"}},
		{check: "signature: untrusted signers", rel: untrusted, dev: pump, want: []string{"untrusted-signer"}},
		{check: "signature: content swapped", rel: flippedRel, dev: pump, want: []string{"digest-mismatch", "untrusted-signer"}},
		{check: "threshold: one of two", rel: oneSigner, dev: pump, want: []string{"threshold-not-met"}},
		{check: "sbom required: none", rel: noSBOM, dev: pump, want: []string{"sbom-missing"}},
		// The vendor SBOM claims components the scan does not find inside
		// the file (more than drift_allowance.missing).
		{check: "sbom drift: claims not inside", rel: padded, dev: pump, scan: true, want: []string{"sbom-drift"}},
		{check: "diff rules: component rebuilt", prior: []release{pumpRelease("2.3.0")}, rel: rebuilt, dev: pump, want: []string{"component-hash-changed"}},
		{check: "deny: license", rel: agpl, dev: pump, want: []string{"denied-license"}},
		{check: "deny: component", rel: vulnerable, dev: pump, want: []string{"denied-component"}},
		// A time-scoped signer (valid_until before the fixture's signing
		// time, its log entry and timestamp): revoked, and one signer is
		// not two.
		{check: "time-scoped identity: revoked", rel: pumpRelease("2.4.0"), dev: pump, want: []string{"key-revoked", "threshold-not-met"},
			config: func(s string) string {
				return strings.Replace(s, "              issuer: https://accounts.acme-infusion.example\n",
					"              issuer: https://accounts.acme-infusion.example\n              valid_until: 2026-06-30\n", 1)
			}},
		// Known vulnerabilities asked for, but no database imported: no
		// evidence, not a clean bill.
		{check: "vulnerabilities: no database", rel: pumpRelease("2.4.0"), dev: pump, want: []string{"could-not-evaluate"},
			config: func(s string) string { return s + "\nvulnerabilities:\n  deny_at: critical\n" }},
		{check: "min version", rel: belowMin, dev: pump, want: []string{"rollback"}},
		{check: "device class", rel: pumpRelease("2.4.0"), dev: device{"P-1", "mri-console", ""}, want: []string{"wrong-device-class"}},
		{check: "installed version", rel: pumpRelease("2.4.0"), dev: device{"P-1", "infusion-pump", "2.5.1"}, want: []string{"rollback"}},
		{check: "ledger: rollback", prior: []release{pumpRelease("2.4.0")}, rel: pumpRelease("2.3.0"), dev: pump, want: []string{"rollback"}},
		{check: "ledger: version conflict", prior: []release{relabelled}, rel: pumpRelease("2.4.0"), dev: pump, want: []string{"rollback", "version-conflict"}},
		{check: "ledger: same version, other file", prior: []release{pumpRelease("2.4.0")}, rel: reissued, dev: pump, want: []string{"same-version-different-digest"}},
		{check: "metadata age: stale", rel: pumpRelease("2.4.0"), dev: pump, want: []string{"metadata-expired"},
			config: func(s string) string { return strings.Replace(s, "max_metadata_age: 3650d", "max_metadata_age: 1h", 1) }},
		// Without TUF metadata nothing stands in for the signature's
		// missing trusted time either.
		{check: "TUF metadata: none", rel: mriRelease("7.2.0"), dev: mri, want: []string{"metadata-missing", "metadata-untimed"},
			config: func(s string) string {
				return regexp.MustCompile(`(?m)^      repository: .*/tuf/medimaging\n`).ReplaceAllString(s, "")
			}},
		{check: "TUF metadata: version claim", rel: mriClaim, dev: mri, want: []string{"metadata-mismatch"}},
		// The TUF metadata did not verify the file, so it cannot stand in
		// for the signature's missing trusted time either.
		{check: "TUF metadata: expected digest", rel: swapped, dev: mri, want: []string{"digest-mismatch", "metadata-untimed"}},
		// The vendor's own repositories (tufMirrors), each the configured
		// mirror of medimaging's pinned root: the good one admits the file;
		// each defect denies, and metadata that does not verify the file
		// cannot stand in for the signature's missing trusted time either.
		{check: "TUF metadata: the vendor's (allowed)", rel: mriRelease("7.2.0"), dev: mri, config: tm.trust(tm.good)},
		{check: "TUF metadata: target not listed", rel: mriRelease("7.2.0"), dev: mri, config: tm.trust(tm.unlisted), want: []string{"metadata-untimed", "unknown-target"}},
		{check: "TUF metadata: expired timestamp", rel: mriRelease("7.2.0"), dev: mri, config: tm.trust(tm.expired), want: []string{"metadata-expired", "metadata-untimed"}},
		{check: "TUF metadata: rolled back after a newer version was seen", rel: mriRelease("7.2.0"), dev: mri, config: tm.trust(tm.good),
			state: tm.seen, want: []string{"metadata-rollback", "metadata-untimed"}},
		{check: "TUF metadata: target hash mismatch", rel: mriRelease("7.2.0"), dev: mri, config: tm.trust(tm.otherHash), want: []string{"digest-mismatch", "metadata-untimed"}},
		// Rollout rings (20% canary soaking 48 h, then all): a pump outside
		// the canary ring is held; rings with no fleet inventory to place
		// the device in do not admit it.
		{check: "rollout: device outside the current ring", rel: pumpRelease("2.4.0"), dev: device{"HOSP-IOT-PUMP-05", "infusion-pump", "2.3.0"},
			config: withRings, state: canaryInventory, want: []string{"rollout-hold"}},
		{check: "rollout: a canary (allowed)", rel: pumpRelease("2.4.0"), dev: device{"HOSP-IOT-PUMP-01", "infusion-pump", "2.3.0"},
			config: withRings, state: canaryInventory},
		{check: "rollout: no fleet inventory", rel: pumpRelease("2.4.0"), dev: device{"HOSP-IOT-PUMP-05", "infusion-pump", "2.3.0"},
			config: withRings, want: []string{"could-not-evaluate"}},
		// Fleet risk: telemetry quarantined the update; an analysis that
		// cannot be had (the telemetry store cannot be read) is no clean
		// bill of health.
		{check: "fleet risk: quarantined", rel: pumpRelease("2.4.0"), dev: pump, state: quarantinedFleet, want: []string{"quarantined"}},
		{check: "fleet risk: analysis unavailable", rel: pumpRelease("2.4.0"), dev: pump, want: []string{"could-not-evaluate"},
			state: func(t *testing.T, state string) { quarantinedFleet(t, state); corruptTelemetry(t, state) }},
		{check: "egress manifest: unsigned", rel: pumpRelease("2.4.0"), dev: pump, state: quarantinedFleet, config: m.trust(m.unsigned), want: []string{"quarantined"}},
		{check: "egress manifest: signed by another key", rel: pumpRelease("2.4.0"), dev: pump, state: quarantinedFleet, config: m.trust(m.otherKey), want: []string{"quarantined"}},
		{check: "egress manifest: another release's", rel: pumpRelease("2.4.0"), dev: pump, state: quarantinedFleet, config: m.trust(m.otherRelease), want: []string{"quarantined"}},
		{check: "egress manifest: the vendor's (allowed)", rel: pumpRelease("2.4.0"), dev: pump, state: quarantinedFleet, config: m.trust(m.signed)},
	}
	drivers := []struct {
		name  string
		admit func(t *testing.T, r matrixRun) (allow bool, codes []string)
	}{
		{"admit", admitDriver},
		{"http", httpDriver},
	}
	t.Setenv("WARDGATE_KEY_PASSWORD", "test-only")
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			for _, tc := range cases {
				t.Run(tc.check, func(t *testing.T) {
					r := matrixRun{state: t.TempDir(), config: "../../../fixtures/trust.yaml", scan: tc.scan, prior: tc.prior, rel: tc.rel, dev: tc.dev}
					if tc.config != nil {
						r.config = fixtureTrust(t, tc.config)
					}
					if tc.state != nil {
						tc.state(t, r.state)
					}
					allow, got := d.admit(t, r)
					if allow != (tc.want == nil) || !slices.Equal(got, tc.want) {
						t.Fatalf("allow %v, codes = %v, want %v", allow, got, tc.want)
					}
				})
			}
		})
	}
}

// tufMirrorSet are medimaging repositories made once with go-tuf's metadata
// API (shared by the rows of both drivers) under one root, listing the MRI
// console 7.2.0 (or not).
type tufMirrorSet struct {
	root                                      string // the pinned root.json
	good, newer, unlisted, expired, otherHash string // mirrors
}

func tufMirrors(t *testing.T) tufMirrorSet {
	t.Helper()
	fw, err := os.ReadFile(fx + "/firmware/mri-console-7.2.0.bin")
	must(t, err)
	const target = "mri-console/mri-console-7.2.0.bin"
	custom := tufrepo.Custom{Version: "7.2.0", DeviceClasses: []string{"mri-console"}}
	r, err := tufrepo.New(time.Now(), 7*24*time.Hour)
	must(t, err)
	var m tufMirrorSet
	dir := t.TempDir()
	m.root = filepath.Join(dir, "root.json")
	must(t, os.WriteFile(m.root, r.RootJSON(), 0o644))
	publish := func(name string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		must(t, r.Publish(p))
		return p
	}
	// The 7.1.0 file listed, not 7.2.0.
	other, err := os.ReadFile(fx + "/firmware/mri-console-7.1.0.bin")
	must(t, err)
	must(t, r.AddTarget(metadata.TARGETS, "mri-console/mri-console-7.1.0.bin", other, tufrepo.Custom{Version: "7.1.0", DeviceClasses: []string{"mri-console"}}))
	m.unlisted = publish("unlisted")
	// 7.2.0 listed with the hashes of other bytes.
	flipped := slices.Clone(fw)
	flipped[0] ^= 0xff
	must(t, r.AddTarget(metadata.TARGETS, target, flipped, custom))
	m.otherHash = publish("other-hash")
	must(t, r.AddTarget(metadata.TARGETS, target, fw, custom))
	m.good = publish("good")
	r.Touch(metadata.TARGETS)
	m.newer = publish("newer")
	// The newest metadata, its timestamp expired (a frozen repository).
	r.Timestamp.Signed.Expires = time.Now().Add(-time.Minute).UTC()
	m.expired = publish("expired")
	return m
}

// trust is the edit of the fixtures' trust configuration that pins m's
// root for medimaging, with mirror as its repository.
func (m tufMirrorSet) trust(mirror string) func(string) string {
	return func(s string) string {
		return regexp.MustCompile(`(?m)^(    tuf:\n)      root: .*/tuf/medimaging-root\.json\n      repository: .*/tuf/medimaging\n`).
			ReplaceAllLiteralString(s, "    tuf:\n      root: "+m.root+"\n      repository: "+mirror+"\n")
	}
}

// seen admits the MRI console with m's newer metadata into state: the
// trusted metadata a client keeps, newer than m.good's.
func (m tufMirrorSet) seen(t *testing.T, state string) {
	t.Helper()
	config := fixtureTrust(t, m.trust(m.newer))
	if code, res := admit(t, state, append(mriArgs(config, "7.2.0", "--no-scan"), "-o", "json")); code != 0 {
		t.Fatalf("newer metadata: exit %d %v %s", code, res.codes(), res.Error)
	}
}

// withRings gives the pump rollout rings: a 20% canary (two of the fleet
// fixture's six pumps) soaking 48 h, then all.
func withRings(s string) string {
	return strings.Replace(s, "        device_classes: [infusion-pump]\n", "        device_classes: [infusion-pump]\n"+
		"        rollout:\n          rings:\n            - {name: canary, share: 20%, soak: 48h, min_reporting: 2}\n            - {name: broad, share: 100%}\n", 1)
}

// canaryInventory writes the fleet fixture's inventory into state with
// HOSP-IOT-PUMP-01 and -02 labelled canaries: withRings' canary ring holds
// exactly these.
func canaryInventory(t *testing.T, state string) {
	t.Helper()
	b, err := os.ReadFile(fleetFx + "/inventory.json")
	must(t, err)
	inv := string(b)
	for _, d := range []string{"HOSP-IOT-PUMP-01", "HOSP-IOT-PUMP-02"} {
		if !strings.Contains(inv, `"name": "`+d+`",`) {
			t.Fatalf("fleet inventory has no %s", d)
		}
		inv = strings.Replace(inv, `"name": "`+d+`",`, `"name": "`+d+`", "ring": "canary",`, 1)
	}
	must(t, os.WriteFile(filepath.Join(state, "inventory.json"), []byte(inv), 0o600))
}

// quarantinedFleet fills state with the fleet fixture's telemetry, in
// which the pump 2.4.0 firmware is the 3CX-like update (fleetScenario):
// the update is quarantined.
func quarantinedFleet(t *testing.T, state string) {
	t.Helper()
	insPath, _ := fleetScenario(t, state)
	if code, out, errOut := run(t, "egress", "ingest", "--state", state, "--inventory", fleetFx+"/inventory.json", "--installs", insPath, fleetFx+"/defender.jsonl"); code != 0 {
		t.Fatalf("ingest: %d %s %s", code, out, errOut)
	}
}

// fleetScenario prepares the fleet fixture's 3CX-like scenario for the
// pump 2.4.0 firmware without ingesting it: its detection configuration in
// state, and the fixture's installations relabelled with the firmware's
// digest (the file returned, and the digest).
func fleetScenario(t *testing.T, state string) (installations, digest string) {
	t.Helper()
	ins, err := os.ReadFile(fleetFx + "/installations.json")
	if err != nil {
		t.Fatal(err)
	}
	compromised := fleet.Pump3CX.Digest()
	if !strings.Contains(string(ins), compromised) {
		t.Fatalf("fleet fixture no longer has the 3CX-like update %s", compromised)
	}
	digest = fileDigest(t, fx+"/firmware/infusion-pump-2.4.0.bin")
	installations = filepath.Join(t.TempDir(), "installations.json")
	if err := os.WriteFile(installations, []byte(strings.ReplaceAll(string(ins), compromised, digest)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(fleetFx + "/config.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, "config.json"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	return installations, digest
}

// corruptTelemetry makes one stored block of events and one of the groups
// the fleet analysis reads (the stores keep the events grouped per device,
// remote end and hour, and analyse the groups) unreadable: a block that
// does not decode and an hour that is no number. Every fleet analysis of
// state fails.
func corruptTelemetry(t *testing.T, state string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(state, "egress.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for what, q := range map[string]string{
		"events": `UPDATE event_blocks SET data = x'28b52ffd0000' WHERE id = (SELECT min(id) FROM event_blocks)`,
		"groups": `UPDATE event_groups SET hour = 'not a time' WHERE (device, hour, success, remote_url, remote_ip, remote_ip_type) =
			(SELECT device, hour, success, remote_url, remote_ip, remote_ip_type FROM event_groups ORDER BY device, hour LIMIT 1)`,
	} {
		if res, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", what, err)
		} else if n, _ := res.RowsAffected(); n != 1 {
			t.Fatalf("corrupted %d %s, want 1", n, what)
		}
	}
}

func fileDigest(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// manifestCases are egress manifest files for the pump 2.4.0 firmware
// that list every destination its devices reach in the fleet fixture.
type manifestCases struct {
	signed, unsigned, otherKey, otherRelease string
	pub                                      string // the key that signed signed and otherRelease
}

func egressManifests(t *testing.T) manifestCases {
	t.Helper()
	dir := t.TempDir()
	dests := []string{"acme-infusion.com", "digicert.com", "ntp.org", "raw.githubusercontent.com"}
	key := fleet.ManifestKey(fleet.DefaultSeed)
	_, other, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, k ed25519.PrivateKey, digest string, strip bool) string {
		env, err := fleet.SignedManifest(k, "infusion-pump-2.4.0.bin", digest, dests)
		if err != nil {
			t.Fatal(err)
		}
		if strip {
			var e map[string]any
			if err := json.Unmarshal(env, &e); err != nil {
				t.Fatal(err)
			}
			e["signatures"] = []any{}
			if env, err = json.Marshal(e); err != nil {
				t.Fatal(err)
			}
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, env, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pump := fileDigest(t, fx+"/firmware/infusion-pump-2.4.0.bin")
	pub, err := filepath.Abs(fleetFx + "/manifest-signing.pub")
	if err != nil {
		t.Fatal(err)
	}
	return manifestCases{
		signed:       write("signed.json", key, pump, false),
		unsigned:     write("unsigned.json", key, pump, true),
		otherKey:     write("other-key.json", other, pump, false),
		otherRelease: write("other-release.json", key, fileDigest(t, fx+"/firmware/infusion-pump-2.3.0.bin"), false),
		pub:          pub,
	}
}

// trust is the edit of the fixtures' trust configuration that gives the
// pump the manifest file and the manifest signing key as an authority (the
// release itself still needs its two signers).
func (m manifestCases) trust(file string) func(string) string {
	return func(s string) string {
		s = strings.Replace(s, "        authorities:\n          # The release key", "        egress_manifests: ["+file+"]\n        authorities:\n          # The release key", 1)
		return pumpKeyLine.ReplaceAllString(s, "${1}            - path: "+m.pub+"\n")
	}
}

// admitArgs are the wardgate admit arguments of a release; the file is
// copied under its name when it is sent under another one.
func admitArgs(t *testing.T, config string, r release, scan bool) []string {
	file := r.file
	if r.name != "" {
		file = filepath.Join(t.TempDir(), r.name)
		b, err := os.ReadFile(r.file)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"admit", file, "--config", config, "--vendor", r.vendor, "--product", r.product, "--version", r.version, "--no-log", "-o", "json"}
	if !scan {
		args = append(args, "--no-scan")
	}
	for flag, v := range map[string]string{"--signature": r.signature, "--bundle": r.bundle, "--sbom": r.sbom} {
		if v != "" {
			args = append(args, flag, v)
		}
	}
	return args
}

func admitDriver(t *testing.T, r matrixRun) (bool, []string) {
	t.Helper()
	for _, p := range r.prior {
		if code, res := admit(t, r.state, admitArgs(t, r.config, p, r.scan)); code != 0 {
			t.Fatalf("prior %s: exit %d %+v", p.version, code, res)
		}
	}
	args := append(admitArgs(t, r.config, r.rel, r.scan), "--device", r.dev.id, "--device-class", r.dev.class)
	if r.dev.installed != "" {
		args = append(args, "--installed-version", r.dev.installed)
	}
	code, res := admit(t, r.state, args)
	// The exit codes: 0 allow, 1 deny, 2 could not evaluate, 3 held by
	// the rollout rings (the hold alone).
	want := 1
	switch {
	case res.Allow:
		want = 0
	case slices.Contains(res.codes(), "could-not-evaluate"):
		want = 2
	case slices.Equal(res.codes(), []string{"rollout-hold"}):
		want = cli.ExitHold
	}
	if code != want {
		t.Fatalf("exit %d, want %d: %+v", code, want, res)
	}
	return res.Allow, res.codes()
}

// decided is what both endpoints answer.
type decided struct {
	Allow    bool   `json:"allow"`
	Digest   string `json:"digest"`
	Decision struct {
		Violations []struct {
			Code string `json:"code"`
		} `json:"violations"`
	} `json:"decision"`
}

func (d decided) codes() []string {
	var out []string
	for _, v := range d.Decision.Violations {
		out = append(out, v.Code)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func httpDriver(t *testing.T, r matrixRun) (bool, []string) {
	t.Helper()
	ci, us := token(t, r.state, "ci"), token(t, r.state, "update-server")
	url, _, stop := serveWith(t, cli.ServeConfig{Trust: r.config, State: r.state, LogLevel: "warn", NoScan: !r.scan, RiskTTL: time.Second})
	defer stop()
	for _, p := range r.prior {
		if code, u := postRelease(t, url, ci, p); code != 200 || !u.Allow {
			t.Fatalf("prior %s: %d %+v", p.version, code, u)
		}
	}
	code, u := postRelease(t, url, ci, r.rel)
	if code != 200 || u.Digest == "" {
		t.Fatalf("POST /v1/updates: %d %+v", code, u)
	}
	body, err := json.Marshal(map[string]any{"digest": u.Digest, "device": map[string]string{"id": r.dev.id, "class": r.dev.class, "installedVersion": r.dev.installed}})
	if err != nil {
		t.Fatal(err)
	}
	code, out := postAdmission(t, url, us, string(body))
	var a decided
	if err := json.Unmarshal([]byte(out), &a); err != nil || code != 200 {
		t.Fatalf("POST /v1/admissions: %d %v %s", code, err, out)
	}
	return a.Allow, a.codes()
}

// postRelease sends a release to POST /v1/updates as multipart form data.
func postRelease(t *testing.T, url, tok string, r release) (int, decided) {
	t.Helper()
	name := r.name
	if name == "" {
		name = filepath.Base(r.file)
	}
	code, b := postForm(t, url+"/v1/updates", tok, map[string]string{"vendor": r.vendor, "product": r.product, "version": r.version},
		formFile{"firmware", r.file, name}, formFile{"signature", r.signature, ""}, formFile{"bundle", r.bundle, ""}, formFile{"sbom", r.sbom, ""})
	var d decided
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("POST /v1/updates: %d: %v: %s", code, err, b)
	}
	return code, d
}
