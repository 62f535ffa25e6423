package trust_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardgate/wardgate/trust"
)

// withKubernetes is the fixture trust configuration with a kubernetes
// section appended, written beside the fixture's keys.
func withKubernetes(t *testing.T, section string) (string, error) {
	t.Helper()
	b, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(filepath.Dir(fixture))
	if err != nil {
		t.Fatal(err)
	}
	// Every relative path in it (keys, trusted root, TUF roots and
	// repositories) is written "KEY: testdata/...".
	s := strings.ReplaceAll(string(b), ": testdata/", ": "+abs+"/testdata/")
	p := filepath.Join(t.TempDir(), "trust.yaml")
	if err := os.WriteFile(p, []byte(s+section), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = trust.Load(p)
	return p, err
}

func TestKubernetesSection(t *testing.T) {
	p, err := withKubernetes(t, `
kubernetes:
  default: warn
  namespaces:
    enforce: [facility-*, icu]
    warn: [icu-*]
    exempt: [kube-*, facility-sandbox]
  images:
    - repository: registry.hospital.example/buildctl/hvac-*
      vendor: buildctl
      product: hvac-controller
    - repository: registry.hospital.example/medimaging/console
      vendor: medimaging
      product: mri-console
      device_class: mri-console
`)
	if err != nil {
		t.Fatal(err)
	}
	c := load(t, p)
	k := c.Kubernetes
	for ns, want := range map[string]trust.NamespaceMode{
		"kube-system":      trust.NamespaceExempt,
		"facility-bms":     trust.NamespaceEnforce,
		"facility-sandbox": trust.NamespaceExempt, // an exact name wins over a pattern
		"icu":              trust.NamespaceEnforce,
		"icu-staging":      trust.NamespaceWarn,
		"default":          trust.NamespaceWarn, // default: warn
	} {
		if got := k.NamespaceMode(ns); got != want {
			t.Errorf("%s: %s, want %s", ns, got, want)
		}
	}
	m, ok := k.Image("registry.hospital.example/buildctl/hvac-api")
	if !ok || m.Vendor != "buildctl" || m.Product != "hvac-controller" || m.DeviceClass != "hvac-controller" {
		t.Fatalf("hvac-api: %+v %v", m, ok)
	}
	for _, repo := range []string{"registry.hospital.example/buildctl/hvac/api", "other.example/buildctl/hvac-api", "registry.hospital.example/medimaging/console-x"} {
		if m, ok := k.Image(repo); ok {
			t.Fatalf("%s mapped to %+v", repo, m)
		}
	}
	// The section decides which evaluation a workload needs, not how an
	// image is evaluated: the digest is the fixture's.
	plain, err := withKubernetes(t, "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Digest() != load(t, plain).Digest() {
		t.Fatal("the kubernetes section changed the trust digest")
	}
	// Without the section every namespace is enforced and nothing maps.
	if k := load(t, fixture).Kubernetes; k.Configured || k.NamespaceMode("anything") != trust.NamespaceEnforce || len(k.Images) != 0 {
		t.Fatalf("no section: %+v", k)
	}
}

func TestKubernetesSectionErrors(t *testing.T) {
	for _, c := range []struct{ section, want string }{
		{"kubernetes:\n  default: block\n", `kubernetes.default: want enforce, warn or exempt, got "block"`},
		{"kubernetes:\n  namespaces:\n    enforce: [icu]\n    exempt: [icu]\n", `namespace "icu" is in both enforce and exempt`},
		{"kubernetes:\n  namespaces:\n    warn: [\"Bad_NS\"]\n", `"Bad_NS": want a namespace name or a pattern`},
		{"kubernetes:\n  images:\n    - repository: r.example/a\n      vendor: nobody\n      product: x\n", "kubernetes.images[0]: product nobody/x is not under vendors"},
		{"kubernetes:\n  images:\n    - repository: r.example/a\n      vendor: buildctl\n      product: hvac-controller\n      device_class: mri-console\n", "device class mri-console is not in buildctl/hvac-controller's device_classes"},
		{"kubernetes:\n  images:\n    - repository: r.example/a:1.0\n      vendor: buildctl\n      product: hvac-controller\n", "kubernetes.images[0].repository: want registry/repository"},
		{"kubernetes:\n  images:\n    - repository: r.example/a\n      vendor: buildctl\n", "repository, vendor and product are required"},
		{"kubernetes:\n  namespace: {}\n", "kubernetes.namespace: unknown field"},
	} {
		_, err := withKubernetes(t, c.section)
		if !errors.Is(err, trust.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.section, err, c.want)
		}
	}
}
