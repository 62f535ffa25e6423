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
