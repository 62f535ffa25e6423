package kube

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// kube sees the gate only through Gate: it imports neither the gate nor
// the server nor the command line.
func TestDeps(t *testing.T) {
	out, err := exec.CommandContext(t.Context(), "go", "list", "-f", `{{join .Imports "\n"}}`, "github.com/wardgate/wardgate/kube").Output()
	if err != nil {
		t.Fatal(err)
	}
	imports := strings.Fields(string(out))
	for _, bad := range []string{"github.com/wardgate/wardgate/gate", "github.com/wardgate/wardgate/server", "github.com/wardgate/wardgate/policy",
		"github.com/spf13/cobra", "github.com/wardgate/wardgate/cmd/wardgate/cli"} {
		if slices.Contains(imports, bad) {
			t.Errorf("kube imports %s", bad)
		}
	}
}

const hexd = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// References as pods write them, and what the webhook makes of them: the
// repository the mapping matches, the tag (the version), the digest (a
// digest wins over a tag, as the runtime decides), the pinned form.
func TestParseRef(t *testing.T) {
	for _, c := range []struct {
		in, repo, tag, digest, pinned string
	}{
		{"nginx", "index.docker.io/library/nginx", "latest", "", "index.docker.io/library/nginx:latest@" + hexd},
		{"nginx:1.25", "index.docker.io/library/nginx", "1.25", "", "index.docker.io/library/nginx:1.25@" + hexd},
		{"registry.hospital.example/buildctl/bms-api:1.2.0", "registry.hospital.example/buildctl/bms-api", "1.2.0", "", "registry.hospital.example/buildctl/bms-api:1.2.0@" + hexd},
		{"127.0.0.1:5000/a/b/c:v2", "127.0.0.1:5000/a/b/c", "v2", "", "127.0.0.1:5000/a/b/c:v2@" + hexd},
		{"127.0.0.1:5000/a@" + hexd, "127.0.0.1:5000/a", "", hexd, "127.0.0.1:5000/a@" + hexd},
		{"127.0.0.1:5000/a:1.0@" + hexd, "127.0.0.1:5000/a", "1.0", hexd, "127.0.0.1:5000/a:1.0@" + hexd},
	} {
		r, err := parseRef(c.in)
		if err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if r.repository() != c.repo || r.tag != c.tag || r.digest != c.digest || r.pinned(hexd) != c.pinned {
			t.Fatalf("%s: repo %s tag %q digest %q pinned %s", c.in, r.repository(), r.tag, r.digest, r.pinned(hexd))
		}
	}
	for _, bad := range []string{"", "UPPER/case:1", "a@sha256:short", "a:b:c", strings.Repeat("a", 1025)} {
		if _, err := parseRef(bad); err == nil {
			t.Fatalf("%q parsed", bad)
		}
	}
}
