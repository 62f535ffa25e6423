package cli_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wardgate/wardgate/cmd/wardgate/cli"
	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/egress/bus"
	"github.com/wardgate/wardgate/internal/natstest"
)

func TestServeTelemetryValidation(t *testing.T) {
	code, _, errOut := run(t, "serve", "--state", t.TempDir(), "--config", "x.yaml", "--telemetry", "http://127.0.0.1:4222")
	if code != 2 || !strings.Contains(errOut, `--telemetry "http://127.0.0.1:4222": want nats://HOST:PORT or tls://HOST:PORT`) {
		t.Fatalf("%d %s", code, errOut)
	}
}

// wardgate serve --telemetry consumes telemetry published on the bus into
// its egress store (counted in /metrics like POST /v1/telemetry's).
func TestServeTelemetryBus(t *testing.T) {
	t.Setenv("WARDGATE_KEY_PASSWORD", "test-only")
	ns := natstest.Start(t)
	state := t.TempDir()
	inv, err := os.ReadFile("../../../fixtures/fleet/testdata/inventory.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, "inventory.json"), inv, 0o600); err != nil {
		t.Fatal(err)
	}
	url, logs, stop := serveWith(t, cli.ServeConfig{Trust: "../../../fixtures/trust.yaml", State: state, LogLevel: "info", NoScan: true, RiskTTL: time.Second,
		Telemetry: ns.URL})
	defer stop()
	nc, err := bus.Dial(ns.URL, "sensor")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	line := `{"Timestamp":"2026-01-05T00:02:22Z","DeviceName":"HOSP-IOT-PUMP-03","ActionType":"ConnectionSuccess","RemoteIP":"52.168.117.170","RemotePort":443,"RemoteUrl":"telemetry.acme-infusion.com","RemoteIPType":"Public","SentBytes":1,"ReceivedBytes":2}` + "\n"
	if _, err := js.Publish(t.Context(), bus.Subject(egress.FormatDefenderJSON), []byte(line+line)); err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^wardgate_telemetry_events_ingested_total (\d+)$`)
	for i := 0; ; i++ {
		resp, err := http.Get(url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if m := re.FindSubmatch(b); m != nil && string(m[1]) == "2" {
			break
		}
		if i > 200 {
			t.Fatalf("telemetry from the bus not counted:\n%s\n%s", b, logs.String())
		}
		time.Sleep(25 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), `"msg":"consuming telemetry","nats":"`+ns.URL+`"`) {
		t.Fatalf("no bus start logged:\n%s", logs.String())
	}
}

// Bad stream settings are refused before anything starts (exit 2).
func TestServeTelemetryStreamValidation(t *testing.T) {
	base := []string{"serve", "--state", t.TempDir(), "--config", "x.yaml"}
	file := filepath.Join(t.TempDir(), "server.yaml")
	for _, tc := range []struct {
		args []string
		yaml string
		want string
	}{
		{[]string{"--telemetry", "nats://127.0.0.1:1", "--telemetry-replicas", "0"}, "", "--telemetry-replicas 0 (telemetry.replicas): want 1 to 5"},
		{[]string{"--telemetry", "nats://127.0.0.1:1", "--telemetry-replicas", "7"}, "", "--telemetry-replicas 7 (telemetry.replicas): want 1 to 5"},
		{[]string{"--telemetry", "nats://127.0.0.1:1", "--telemetry-max-bytes", "10XB"}, "", `--telemetry-max-bytes "10XB": want a number of bytes, or a number with KiB, MiB, GiB or TiB (such as 10GiB); 0 for no limit`},
		{[]string{"--telemetry", "nats://127.0.0.1:1", "--telemetry-max-bytes", "-5"}, "", `--telemetry-max-bytes "-5": want a number of bytes`},
		{[]string{"--telemetry", "nats://127.0.0.1:1", "--telemetry-max-bytes", "99999999999TiB"}, "", `--telemetry-max-bytes "99999999999TiB": want a number of bytes`},
		{[]string{"--telemetry", "nats://127.0.0.1:1", "--telemetry-max-age", "-1h"}, "", "--telemetry-max-age -1h0m0s (telemetry.max_age): want 0 (no limit) or more"},
		{[]string{"--telemetry-replicas", "3"}, "", "need a NATS server (--telemetry or telemetry.nats)"},
		{[]string{"--server-config", file}, "telemetry:\n  nats: nats://127.0.0.1:1\n  replicas: 9\n", "--telemetry-replicas 9 (telemetry.replicas): want 1 to 5"},
		{[]string{"--server-config", file}, "telemetry:\n  replicas: 1\n  max_bytes: 0\n  max_age: 0s\n", "need a NATS server (--telemetry or telemetry.nats)"},
		{[]string{"--server-config", file}, "telemetry:\n  nats: nats://127.0.0.1:1\n  replicas: 0\n  max_bytes: 1048576\n  max_age: 72h\n", "--telemetry-replicas 0 (telemetry.replicas): want 1 to 5"},
		{[]string{"--server-config", file}, "telemetry:\n  nats: nats://127.0.0.1:1\n  max_bytes: 1PB\n", `telemetry.max_bytes "1PB": want a number of bytes`},
		{[]string{"--server-config", file}, "telemetry:\n  nats: nats://127.0.0.1:1\n  max_age: soon\n", `telemetry.max_age "soon": want a duration such as 72h, or 0 for no limit`},
	} {
		if tc.yaml != "" {
			if err := os.WriteFile(file, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		code, _, errOut := run(t, append(append([]string{}, base...), tc.args...)...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v %q: exit %d %s, want 2 and %s", tc.args, tc.yaml, code, errOut, tc.want)
		}
	}
}

func streamConfig(t *testing.T, js jetstream.JetStream, name string) jetstream.StreamConfig {
	t.Helper()
	st, err := js.Stream(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return st.CachedInfo().Config
}

func sensor(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := bus.Dial(url, "sensor")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// waitLog waits until logs hold s.
func waitLog(t *testing.T, logs interface{ String() string }, s string) {
	t.Helper()
	for i := 0; !strings.Contains(logs.String(), s); i++ {
		if i > 400 {
			t.Fatalf("%q not logged:\n%s", s, logs.String())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// serve --telemetry leaves an operator's stream as it is, even with stream
// settings of its own (they are for creation only).
func TestServeTelemetryKeepsExistingStream(t *testing.T) {
	t.Setenv("WARDGATE_KEY_PASSWORD", "test-only")
	ns := natstest.Start(t)
	js := sensor(t, ns.URL)
	op := jetstream.StreamConfig{Name: bus.DefaultStream, Subjects: []string{"wardgate.telemetry.>"}, Retention: jetstream.WorkQueuePolicy,
		MaxBytes: 32 << 20, MaxAge: 96 * time.Hour, MaxMsgs: 5000, Discard: jetstream.DiscardNew, Description: "ops team"}
	if _, err := js.CreateStream(t.Context(), op); err != nil {
		t.Fatal(err)
	}
	before := streamConfig(t, js, bus.DefaultStream)
	_, logs, stop := serveWith(t, cli.ServeConfig{Trust: "../../../fixtures/trust.yaml", State: t.TempDir(), LogLevel: "info", NoScan: true, RiskTTL: time.Second,
		Telemetry: ns.URL, TelemetryStream: &bus.StreamSettings{Replicas: 1, MaxBytes: 1 << 30, MaxAge: time.Hour}})
	waitLog(t, logs, `"msg":"consuming telemetry"`)
	stop()
	after := streamConfig(t, js, bus.DefaultStream)
	if after.MaxBytes != 32<<20 || after.MaxAge != 96*time.Hour || after.MaxMsgs != 5000 || after.Discard != jetstream.DiscardNew ||
		after.Description != "ops team" || after.Replicas != before.Replicas || after.Duplicates != before.Duplicates {
		t.Fatalf("stream changed:\nbefore %+v\nafter  %+v", before, after)
	}
	if !strings.Contains(logs.String(), `"msg":"telemetry stream exists: used as it is","bus":{"stream":"WARDGATE_TELEMETRY","replicas":1,"max_bytes":33554432,"max_age":345600000000000,"retention":"WorkQueue"}`) {
		t.Fatalf("existing stream not logged:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), `"level":"WARN","msg":"telemetry stream exists with other settings than those given: not changed","bus":{"stream":"WARDGATE_TELEMETRY","given_replicas":1,"given_max_bytes":1073741824,"given_max_age":3600000000000}`) {
		t.Fatalf("settings not applied not warned:\n%s", logs.String())
	}
}

// serve creates an absent stream with the settings given.
func TestServeTelemetryCreatesStream(t *testing.T) {
	t.Setenv("WARDGATE_KEY_PASSWORD", "test-only")
	ns := natstest.Start(t)
	_, logs, stop := serveWith(t, cli.ServeConfig{Trust: "../../../fixtures/trust.yaml", State: t.TempDir(), LogLevel: "info", NoScan: true, RiskTTL: time.Second,
		Telemetry: ns.URL, TelemetryStream: &bus.StreamSettings{Replicas: 1, MaxBytes: 16 << 20, MaxAge: 72 * time.Hour}})
	waitLog(t, logs, `"msg":"consuming telemetry"`)
	stop()
	got := streamConfig(t, sensor(t, ns.URL), bus.DefaultStream)
	if got.Replicas != 1 || got.MaxBytes != 16<<20 || got.MaxAge != 72*time.Hour || got.Discard != jetstream.DiscardNew || got.Retention != jetstream.WorkQueuePolicy {
		t.Fatalf("created stream %+v", got)
	}
}

// Refusals at start: a stream that does not hold wardgate's subjects, and
// replicas the server cannot give (flags passed through to the server).
func TestServeTelemetryStreamRefused(t *testing.T) {
	t.Setenv("WARDGATE_KEY_PASSWORD", "test-only")
	ns := natstest.Start(t)
	js := sensor(t, ns.URL)
	code, _, errOut := run(t, "serve", "--state", t.TempDir(), "--config", "../../../fixtures/trust.yaml", "--listen", "127.0.0.1:0", "--no-scan",
		"--telemetry", ns.URL, "--telemetry-replicas", "3", "--telemetry-max-bytes", "1GiB")
	if code != 2 || !strings.Contains(errOut, "telemetry stream WARDGATE_TELEMETRY: creating it with 3 replicas") ||
		!strings.Contains(errOut, "replicas > 1 not supported in non-clustered mode") {
		t.Fatalf("replicas 3 on one server: exit %d %s", code, errOut)
	}
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: bus.DefaultStream, Subjects: []string{"wardgate.telemetry.zeek-json"}}); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = run(t, "serve", "--state", t.TempDir(), "--config", "../../../fixtures/trust.yaml", "--listen", "127.0.0.1:0", "--no-scan", "--telemetry", ns.URL)
	if code != 2 || !strings.Contains(errOut, `telemetry stream WARDGATE_TELEMETRY: existing stream does not cover wardgate's subjects: its subjects ["wardgate.telemetry.zeek-json"] do not hold ["wardgate.telemetry.auto" "wardgate.telemetry.defender-json"`) {
		t.Fatalf("uncovered subjects: exit %d %s", code, errOut)
	}
	if got := streamConfig(t, js, bus.DefaultStream).Subjects; len(got) != 1 || got[0] != "wardgate.telemetry.zeek-json" {
		t.Fatalf("subjects changed: %q", got)
	}
}
