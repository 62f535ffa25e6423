package gate_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardgate/wardgate/attest"
	"github.com/wardgate/wardgate/gate"
)

// Open builds the whole pipeline from a state directory and a trust
// configuration; Reload rebuilds the gate and keeps the old one when the
// new configuration does not load.
func TestOpen(t *testing.T) {
	t.Setenv(attest.PasswordEnv, "")
	state := t.TempDir()
	trustPath := filepath.Join(t.TempDir(), "trust.yaml")
	b, err := os.ReadFile("../fixtures/trust.yaml")
	if err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs("../fixtures")
	if err != nil {
		t.Fatal(err)
	}
	good := strings.ReplaceAll(string(b), "testdata/", abs+"/testdata/")
	if err := os.WriteFile(trustPath, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	var created []string
	cfg := gate.Config{State: state, Trust: trustPath, KeyCreated: func(key, pub string, encrypted bool) {
		created = append(created, key, pub, fmt.Sprint(encrypted))
	}}
	// Without a password, the key is not created unless asked for.
	t.Setenv(attest.PasswordEnv, "")
	if _, err := gate.Open(t.Context(), cfg, gate.WithoutSBOMGeneration()); err == nil || !strings.Contains(err.Error(), "pass --unencrypted-key to create it without one") || len(created) != 0 {
		t.Fatalf("no password, no --unencrypted-key: %v (created %q)", err, created)
	}
	cfg.UnencryptedKey = true
	p, err := gate.Open(t.Context(), cfg, gate.WithoutSBOMGeneration())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if len(created) != 3 || created[2] != "false" || created[0] != filepath.Join(state, "signing.key") || p.Log() == nil || p.Inventory() != nil {
		t.Fatalf("created %q, log %v, inventory %v", created, p.Log(), p.Inventory())
	}
	out, err := p.Gate().Evaluate(t.Context(), pump(t))
	if err != nil || !out.Decision.Allow || out.LogEntry == nil {
		t.Fatalf("evaluate: %v %+v", err, out.Decision)
	}
	if err := p.Records().Put(t.Context(), out); err != nil {
		t.Fatal(err)
	}
	if err := p.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	// A configuration that does not load: the gate stays.
	old := p.Gate()
	if err := os.WriteFile(trustPath, []byte("version: 2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Reload(t.Context()); err == nil || p.Gate() != old {
		t.Fatalf("reload of a broken configuration: %v; gate kept: %v", err, p.Gate() == old)
	}
	if err := os.WriteFile(trustPath, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	ng, err := p.Reload(t.Context())
	if err != nil || ng == old || p.Gate() != ng {
		t.Fatalf("reload: %v", err)
	}
	p.Close()

	// Opened again: the key is not created twice; the kept evaluation is
	// there.
	created = nil
	p2, err := gate.Open(t.Context(), cfg, gate.WithoutSBOMGeneration())
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	if _, ok := p2.Records().Get(out.Evidence.Artifact.Digest); !ok || created != nil || p2.Log().Checkpoint().Size != 1 {
		t.Fatalf("reopened: record %v, created %q, log size %d", ok, created, p2.Log().Checkpoint().Size)
	}
}

func TestOpenRefuses(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cfg       gate.Config
		want      string
		untouched bool // the state directory is not made
	}{
		{name: "nothing", want: "gate: no state directory\ngate: no trust configuration"},
		{name: "a backend this wardgate lacks", cfg: gate.Config{State: t.TempDir(), Trust: "../fixtures/trust.yaml", Store: "mysql://db.hospital.example/wardgate", NoLog: true},
			want: "store: no mysql backend in this wardgate (it has: postgres, sqlite)"},
		{name: "a PostgreSQL that is down", cfg: gate.Config{State: t.TempDir(), Trust: "../fixtures/trust.yaml", Store: "postgres://wardgate:secret@127.0.0.1:1/wardgate?connect_timeout=2", NoLog: true},
			want: "open postgres 127.0.0.1:1/wardgate: store: unavailable"},
		{name: "a trust configuration that does not load", cfg: gate.Config{State: filepath.Join(t.TempDir(), "state"), Trust: "no-such.yaml"},
			want: "no-such.yaml", untouched: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := gate.Open(t.Context(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if _, err := os.Stat(tc.cfg.State); tc.untouched && !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the state directory was made: %v", err)
			}
		})
	}
}
