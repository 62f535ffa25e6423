package cli_test

import (
	"strings"
	"testing"
)

// The webhook listener is TLS only and its flags go together.
func TestServeKubernetesValidation(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--kubernetes-listen", "127.0.0.1:0"}, "--kubernetes-listen needs --tls-cert and --tls-key"},
		{[]string{"--kubernetes-client-ca", "ca.pem"}, "--kubernetes-client-ca needs --kubernetes-listen"},
		{[]string{"--kubernetes-deadline", "45s"}, "--kubernetes-deadline 45s: want at most 30s"},
		{[]string{"--kubernetes-tag-ttl", "10m"}, "--kubernetes-tag-ttl 10m0s: want from 0 to 5m0s"},
	} {
		code, _, errOut := run(t, append([]string{"serve", "--state", t.TempDir(), "--config", "x.yaml"}, c.args...)...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Fatalf("%v: %d %s", c.args, code, errOut)
		}
	}
}
