package cli_test

import (
	"strings"
	"testing"
)

// admit --device for a product with rollout rings in a state directory
// with no fleet inventory is not allowed: no ring can be computed, so the
// rings are not skipped but the admission fails closed.
func TestAdmitRolloutWithoutInventoryFailsClosed(t *testing.T) {
	p := fixtureTrust(t, func(s string) string {
		return strings.Replace(s, "        device_classes: [infusion-pump]\n", "        device_classes: [infusion-pump]\n"+
			"        rollout:\n          rings:\n            - {name: canary, share: 20%, soak: 48h, min_reporting: 2}\n            - {name: broad, share: 100%}\n", 1)
	})
	code, r := admit(t, t.TempDir(), replace(pumpArgs("2.4.0", "--device", "HOSP-IOT-PUMP-01", "--device-class", "infusion-pump", "--installed-version", "2.3.0"), "--config", p))
	if code == 0 || r.Allow || !strings.Contains(r.Error, "rollout rings need the fleet inventory") {
		t.Fatalf("exit %d %+v", code, r)
	}
}
