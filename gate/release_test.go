package gate_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/wardgate/wardgate/attest"
	"github.com/wardgate/wardgate/gate"
	"github.com/wardgate/wardgate/internal/tufrepo"
	"github.com/wardgate/wardgate/policy"
	"github.com/wardgate/wardgate/store"
	"github.com/wardgate/wardgate/store/sqlite"
	"github.com/wardgate/wardgate/trust"
	"github.com/wardgate/wardgate/tuf"
)

// tufRig is the fixtures' trust configuration with acme-infusion pinning
// the root of a repository made with go-tuf's metadata API, which lists
// the pump 2.4.0 firmware.
type tufRig struct {
	repo   *tufrepo.Repo
	mirror string
	trust  *trust.Config
	state  tuf.State
	log    *attest.Log
	st     store.Store
}

func newTUFRig(t *testing.T, mirrorInConfig bool) *tufRig {
	t.Helper()
	r := &tufRig{mirror: t.TempDir(), state: tuf.NewDirState(t.TempDir())}
	var err error
	if r.repo, err = tufrepo.New(time.Now(), 30*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	fw, err := os.ReadFile(fx + "firmware/infusion-pump-2.4.0.bin")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.repo.AddTarget(metadata.TARGETS, "infusion-pump/infusion-pump-2.4.0.bin", fw, tufrepo.Custom{Version: "2.4.0", DeviceClasses: []string{"infusion-pump"}}); err != nil {
		t.Fatal(err)
	}
	if err := r.repo.Publish(r.mirror); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "acme-root.json")
	if err := os.WriteFile(root, r.repo.RootJSON(), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("../fixtures/trust.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pin := "  acme-infusion:\n    tuf:\n      root: " + root + "\n"
	if mirrorInConfig {
		pin += "      repository: " + r.mirror + "\n"
	}
	body := strings.Replace(string(b), "  acme-infusion:\n", pin, 1)
	if r.trust, err = trust.Parse(filepath.Join("..", "fixtures", "trust.yaml"), []byte(body)); err != nil {
		t.Fatal(err)
	}
	t.Setenv(attest.PasswordEnv, "")
	dir := t.TempDir()
	key, _, err := attest.Keygen(filepath.Join(dir, "signing"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := attest.LoadSigner(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if r.st, err = sqlite.Open(t.Context(), dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.st.Close() })
	if r.log, err = attest.OpenLog(t.Context(), r.st, s, ""); err != nil {
		t.Fatal(err)
	}
	return r
}

// gate is a new Gate on the rig's state, as a new run of wardgate makes.
func (r *tufRig) gate(t *testing.T) *gate.Gate {
	t.Helper()
	eng, err := policy.New(t.Context(), policy.WithTrust(r.trust))
	if err != nil {
		t.Fatal(err)
	}
	g, err := gate.New(r.trust, eng, r.st, gate.WithoutSBOMGeneration(), gate.WithTUFState(r.state), gate.WithLog(r.log))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func decisionCodes(d policy.Decision) []string {
	var out []string
	for _, c := range d.Codes() {
		out = append(out, string(c))
	}
	return out
}

// statement decodes the signed verdict's in-toto statement.
func statement(t *testing.T, env []byte) *attest.Statement {
	t.Helper()
	var e struct{ Payload string }
	if err := json.Unmarshal(env, &e); err != nil {
		t.Fatal(err)
	}
	p, err := base64.StdEncoding.DecodeString(e.Payload)
	if err != nil {
		t.Fatal(err)
	}
	st, err := attest.ParseStatement(p)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// A release of a vendor that pins a TUF root, admitted with the version
// the vendor's metadata gives it: the expected digest, expiry and device
// classes come from the target, and the verdict lists the metadata relied
// on.
func TestEvaluateTUFAdmits(t *testing.T) {
	r := newTUFRig(t, true)
	u := pumpUpdate(t)
	u.Version = ""
	out, err := r.gate(t).Evaluate(t.Context(), u)
	if err != nil || !out.Decision.Allow {
		t.Fatalf("err %v, decision %+v", err, out.Decision)
	}
	ev := out.Evidence
	if ev.Artifact.Version != "2.4.0" || ev.Artifact.ExpectedDigest != ev.Artifact.Digest || ev.Metadata.Expires == nil || !slices.Equal(ev.Artifact.DeviceClasses, []string{"infusion-pump"}) {
		t.Fatalf("artifact %+v, expires %v", ev.Artifact, ev.Metadata.Expires)
	}
	tu := ev.Metadata.TUF
	if tu == nil || !tu.Verified || tu.Target != "infusion-pump/infusion-pump-2.4.0.bin" || tu.Version != "2.4.0" || len(tu.Roles) != 4 {
		t.Fatalf("tuf %+v", tu)
	}
	var got []string
	for _, m := range statement(t, out.Envelope).Predicate.Wardgate.ReleaseMetadata {
		got = append(got, fmt.Sprintf("%s=%d", m.Role, m.Version))
		if len(m.Digest["sha256"]) != 64 {
			t.Fatalf("metadata %s has no digest: %+v", m.Role, m)
		}
	}
	if strings.Join(got, " ") != "root=1 timestamp=1 snapshot=1 targets=1" {
		t.Fatalf("VSA releaseMetadata = %v", got)
	}
}

func TestEvaluateTUFDenies(t *testing.T) {
	t.Run("version claim disagrees", func(t *testing.T) {
		r := newTUFRig(t, true)
		u := pumpUpdate(t)
		u.Version = "2.5.0"
		out, err := r.gate(t).Evaluate(t.Context(), u)
		if err != nil || !slices.Equal(decisionCodes(out.Decision), []string{"metadata-mismatch"}) {
			t.Fatalf("err %v, codes %v", err, decisionCodes(out.Decision))
		}
	})
	t.Run("no metadata", func(t *testing.T) {
		r := newTUFRig(t, false)
		out, err := r.gate(t).Evaluate(t.Context(), pumpUpdate(t))
		if err != nil || !slices.Equal(decisionCodes(out.Decision), []string{"metadata-missing"}) {
			t.Fatalf("err %v, codes %v", err, decisionCodes(out.Decision))
		}
	})
	t.Run("metadata given with the update, and expired", func(t *testing.T) {
		r := newTUFRig(t, false)
		r.repo.Timestamp.Signed.Expires = time.Now().Add(-time.Hour).UTC()
		if err := r.repo.Publish(r.mirror); err != nil {
			t.Fatal(err)
		}
		u := pumpUpdate(t)
		u.Version, u.TUF = "", tuf.Dir(r.mirror)
		out, err := r.gate(t).Evaluate(t.Context(), u)
		if err != nil || !out.Evaluated || !slices.Equal(decisionCodes(out.Decision), []string{"metadata-expired"}) {
			t.Fatalf("err %v, codes %v", err, decisionCodes(out.Decision))
		}
		if out.Evidence.Artifact.Version != "" || out.Evidence.Metadata.Expires == nil || out.Envelope == nil {
			t.Fatalf("version %q, expires %v, signed %v", out.Evidence.Artifact.Version, out.Evidence.Metadata.Expires, out.Envelope != nil)
		}
	})
	t.Run("file not listed", func(t *testing.T) {
		r := newTUFRig(t, true)
		u := pumpUpdate(t)
		renamed := filepath.Join(t.TempDir(), "infusion-pump-2.4.0-hotfix.bin")
		b, err := os.ReadFile(u.Source)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(renamed, b, 0o644); err != nil {
			t.Fatal(err)
		}
		u.Source = renamed
		out, err := r.gate(t).Evaluate(t.Context(), u)
		if err != nil || !slices.Equal(decisionCodes(out.Decision), []string{"unknown-target"}) {
			t.Fatalf("err %v, codes %v", err, decisionCodes(out.Decision))
		}
	})
	t.Run("target hash differs", func(t *testing.T) {
		r := newTUFRig(t, true)
		if err := r.repo.AddTarget(metadata.TARGETS, "infusion-pump/infusion-pump-2.4.0.bin", []byte("other"), tufrepo.Custom{Version: "2.4.0"}); err != nil {
			t.Fatal(err)
		}
		if err := r.repo.Publish(r.mirror); err != nil {
			t.Fatal(err)
		}
		out, err := r.gate(t).Evaluate(t.Context(), pumpUpdate(t))
		if err != nil || !slices.Equal(decisionCodes(out.Decision), []string{"digest-mismatch"}) || out.Evidence.Artifact.ExpectedDigest == out.Evidence.Artifact.Digest {
			t.Fatalf("err %v, codes %v, artifact %+v", err, decisionCodes(out.Decision), out.Evidence.Artifact)
		}
	})
	t.Run("rolled back after a newer version was seen, in a later run", func(t *testing.T) {
		r := newTUFRig(t, false)
		old := t.TempDir()
		if err := os.CopyFS(old, os.DirFS(r.mirror)); err != nil {
			t.Fatal(err)
		}
		r.repo.Touch(metadata.TARGETS)
		if err := r.repo.Publish(r.mirror); err != nil {
			t.Fatal(err)
		}
		u := pumpUpdate(t)
		u.TUF = tuf.Dir(r.mirror)
		if out, err := r.gate(t).Evaluate(t.Context(), u); err != nil || !out.Decision.Allow {
			t.Fatalf("newer metadata: err %v, codes %v", err, decisionCodes(out.Decision))
		}
		u.TUF = tuf.Dir(old)
		out, err := r.gate(t).Evaluate(t.Context(), u)
		if err != nil || !slices.Equal(decisionCodes(out.Decision), []string{"metadata-rollback"}) {
			t.Fatalf("err %v, codes %v", err, decisionCodes(out.Decision))
		}
	})
	t.Run("metadata for a vendor that pins no root", func(t *testing.T) {
		r := newTUFRig(t, false)
		u := gate.Update{Source: fx + "firmware/mri-console-7.2.0.bin", Kind: "blob", Vendor: "imaging-startup", Product: "mri-console", Version: "7.2.0", TUF: tuf.Dir(r.mirror)}
		out, err := r.gate(t).Evaluate(t.Context(), u)
		if err == nil || !strings.Contains(err.Error(), "pins no TUF root for that vendor") || out.Evaluated {
			t.Fatalf("err %v, evaluated %v", err, out.Evaluated)
		}
	})
}
