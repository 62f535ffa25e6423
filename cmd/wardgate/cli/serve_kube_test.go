package cli_test

import (
	"os"
	"path/filepath"
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

// The server configuration file's kubernetes.tag_ttl is bounded as the
// flag is, and must be a duration.
func TestServeKubernetesTagTTLFile(t *testing.T) {
	for _, c := range []struct{ value, want string }{
		{"10m", "--kubernetes-tag-ttl 10m0s: want from 0 to 5m0s"},
		{"soon", `kubernetes.tag_ttl "soon": want a positive duration`},
	} {
		sc := filepath.Join(t.TempDir(), "server.yaml")
		if err := os.WriteFile(sc, []byte("kubernetes:\n  tag_ttl: "+c.value+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		code, _, errOut := run(t, "serve", "--state", t.TempDir(), "--config", "x.yaml", "--server-config", sc)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Fatalf("tag_ttl %s: %d %s", c.value, code, errOut)
		}
	}
}
