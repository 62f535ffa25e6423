package verify_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/wardgate/wardgate/verify"
)

type noNetwork struct{ t *testing.T }

func (n noNetwork) RoundTrip(r *http.Request) (*http.Response, error) {
	n.t.Errorf("request to %s: nothing may reach the network for a reference without a registry", r.URL)
	return nil, errors.New("no network")
}

// Issue 12, finding 8: `verify image oci/pump-agent` went to
// index.docker.io. A reference must name its registry host.
func TestImageShortNameRefused(t *testing.T) {
	key, err := verify.LoadPublicKey(fx + "/keys/acme-infusion.pub")
	if err != nil {
		t.Fatal(err)
	}
	pol := &verify.Policy{Keys: []verify.Key{key}}
	for _, ref := range []string{"oci/pump-agent", "pump-agent", "pump-agent:2.4.0", "library/alpine@sha256:" + strings.Repeat("0", 64)} {
		_, err := verify.Image(t.Context(), ref, pol, verify.WithTransport(noNetwork{t}))
		var ie *verify.InputError
		if !errors.As(err, &ie) || ie.Code != verify.ReasonBadInput || !strings.Contains(err.Error(), "names no registry") {
			t.Errorf("%s: %v", ref, err)
		}
	}
}
