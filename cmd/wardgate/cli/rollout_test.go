package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/cmd/wardgate/cli"
)

// ringsTrust writes the fixture trust configuration with rings for the
// pump: a 20% canary (two of the six pumps) soaking 48 h, then all.
func ringsTrust(t *testing.T) string {
	t.Helper()
	return fixtureTrust(t, func(s string) string {
		return strings.Replace(s, "        device_classes: [infusion-pump]\n", "        device_classes: [infusion-pump]\n"+
			"        rollout:\n          rings:\n            - {name: canary, share: 20%, soak: 48h, min_reporting: 2}\n            - {name: broad, share: 100%}\n", 1)
	})
}

// admit --device for a product with rollout rings in a state directory
// with no fleet inventory is not allowed: no ring can be computed, so the
// rings are not skipped but the admission fails closed.
func TestAdmitRolloutWithoutInventoryFailsClosed(t *testing.T) {
	code, r := admit(t, t.TempDir(), replace(pumpArgs("2.4.0", "--device", "HOSP-IOT-PUMP-01", "--device-class", "infusion-pump", "--installed-version", "2.3.0"), "--config", ringsTrust(t)))
	if code != cli.ExitNoVerdict || r.Allow || !strings.Contains(r.Error, "rollout rings need the fleet inventory") {
		t.Fatalf("exit %d %+v", code, r)
	}
}

// A device outside the current ring is held: exit 3 (not 1, a deny), the
// reason code rollout-hold alone, and -o json carries the hold and its
// retryAfter (no canary installed yet: the canary's 48 h soak from now).
// A canary is allowed (exit 0); the text output of a hold exits 3 too.
func TestAdmitRolloutHoldExitCode(t *testing.T) {
	state := t.TempDir()
	b, err := os.ReadFile("../../../fixtures/fleet/testdata/inventory.json")
	if err != nil {
		t.Fatal(err)
	}
	// PUMP-01 and PUMP-02 are labelled canaries: the 20% canary ring of
	// six pumps holds two devices, so it holds exactly these.
	inv := string(b)
	for _, d := range []string{"HOSP-IOT-PUMP-01", "HOSP-IOT-PUMP-02"} {
		inv = strings.Replace(inv, `"name": "`+d+`",`, `"name": "`+d+`", "ring": "canary",`, 1)
	}
	if err := os.WriteFile(filepath.Join(state, "inventory.json"), []byte(inv), 0o600); err != nil {
		t.Fatal(err)
	}
	trust := ringsTrust(t)
	dev := func(id string, extra ...string) []string {
		return replace(pumpArgs("2.4.0", append([]string{"--device", id, "--device-class", "infusion-pump", "--installed-version", "2.3.0"}, extra...)...), "--config", trust)
	}
	if code, r := admit(t, state, dev("HOSP-IOT-PUMP-01")); code != cli.ExitOK || !r.Allow {
		t.Fatalf("canary: exit %d %+v", code, r)
	}
	before := time.Now()
	code, out, errOut := run(t, append(dev("HOSP-IOT-PUMP-05"), "--state", state)...)
	after := time.Now()
	var r struct {
		admitResult
		Hold *struct {
			Ring, Current, Status string
		} `json:"hold"`
		RetryAfter *time.Time `json:"retryAfter"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("exit %d: %v\n%s\n%s", code, err, out, errOut)
	}
	if code != 3 || cli.ExitHold != 3 || r.Allow || !r.Evaluated || !slices.Equal(r.codes(), []string{"rollout-hold"}) {
		t.Fatalf("held device: exit %d %+v", code, r.admitResult)
	}
	if r.Hold == nil || r.Hold.Ring != "broad" || r.Hold.Current != "canary" || r.Hold.Status != "active" {
		t.Fatalf("hold: %+v", r.Hold)
	}
	if r.RetryAfter == nil || r.RetryAfter.Before(before.Add(48*time.Hour).Truncate(time.Second)) || r.RetryAfter.After(after.Add(48*time.Hour)) {
		t.Fatalf("retryAfter %v, want 48 h after %s", r.RetryAfter, before)
	}
	if !strings.Contains(out, `"retryAfter":"`) || !strings.Contains(out, `"hold":{"ring":"broad","current":"canary","status":"active"}`) {
		t.Fatalf("JSON output: %s", out)
	}
	// Text output: the same exit code, the hold's message.
	code, text, _ := run(t, append(replace(dev("HOSP-IOT-PUMP-05"), "-o", "text"), "--state", state)...)
	if code != cli.ExitHold || !strings.HasPrefix(text, "DENY   acme-infusion/infusion-pump 2.4.0") ||
		!strings.Contains(text, "[rollout-hold] device HOSP-IOT-PUMP-05 is in rollout ring broad; the rollout is active in ring canary; ask again after ") {
		t.Fatalf("text: exit %d\n%s", code, text)
	}
}
