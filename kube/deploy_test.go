package kube_test

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"

	"github.com/wardgate/wardgate/kube"
	"github.com/wardgate/wardgate/trust"
)

const deployDir = "../deploy/kubernetes"

// decodeManifests decodes every document of every deploy/kubernetes YAML
// file with the Kubernetes scheme, strictly: an unknown or misspelt field
// fails, as `kubectl apply --validate=strict` would.
func decodeManifests(t *testing.T) []runtime.Object {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, rbacv1.AddToScheme, admissionregistrationv1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	dec := serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
	files, err := filepath.Glob(filepath.Join(deployDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s: %v", deployDir, err)
	}
	var out []runtime.Object
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range bytes.Split(b, []byte("\n---\n")) {
			obj, gvk, err := dec.Decode(doc, nil, nil)
			if err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			if gvk.Kind == "ClusterRole" || gvk.Kind == "ClusterRoleBinding" {
				t.Fatalf("%s: %s: wardgate needs no cluster-wide permission", f, gvk.Kind)
			}
			out = append(out, obj)
		}
	}
	return out
}

func find[T runtime.Object](objs []runtime.Object) []T {
	var out []T
	for _, o := range objs {
		if t, ok := o.(T); ok {
			out = append(out, t)
		}
	}
	return out
}

// The example manifests decode with the Kubernetes types and say what
// docs/kubernetes.md says: both webhooks fail closed, wait longer than
// wardgate's deadline, send only the kinds the webhook handles (every one
// of them) to the routes the server serves, spare wardgate's own
// namespace, and reach the Service the Deployment's webhook port backs.
func TestManifests(t *testing.T) {
	objs := decodeManifests(t)
	svc := find[*corev1.Service](objs)
	deps := find[*appsv1.Deployment](objs)
	sas := find[*corev1.ServiceAccount](objs)
	cms := find[*corev1.ConfigMap](objs)
	vwc := find[*admissionregistrationv1.ValidatingWebhookConfiguration](objs)
	mwc := find[*admissionregistrationv1.MutatingWebhookConfiguration](objs)
	if len(svc) != 1 || len(deps) != 1 || len(sas) != 1 || len(cms) != 1 || len(vwc) != 1 || len(mwc) != 1 {
		t.Fatalf("want one Service, Deployment, ServiceAccount, ConfigMap and webhook configuration of each kind; got %d %d %d %d %d %d", len(svc), len(deps), len(sas), len(cms), len(vwc), len(mwc))
	}
	if sa := sas[0]; sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Fatal("the service account mounts a token wardgate does not need")
	}
	type hook struct {
		name     string
		cc       admissionregistrationv1.WebhookClientConfig
		rules    []admissionregistrationv1.RuleWithOperations
		fail     *admissionregistrationv1.FailurePolicyType
		side     *admissionregistrationv1.SideEffectClass
		timeout  *int32
		versions []string
		ns       string
	}
	var hooks []hook
	// ns is whether the namespace selector sends wardgate's own namespace
	// (it must not) and an application's (it must).
	nsSel := func(s *metav1.LabelSelector) string {
		sel, err := metav1.LabelSelectorAsSelector(s)
		if err != nil {
			t.Fatal(err)
		}
		own := sel.Matches(labels.Set{"kubernetes.io/metadata.name": "wardgate", "wardgate.dev/webhook": "exclude"}) || sel.Matches(labels.Set{"kubernetes.io/metadata.name": "wardgate"})
		app := sel.Matches(labels.Set{"kubernetes.io/metadata.name": "facility"})
		return fmt.Sprintf("own=%t app=%t", own, app)
	}
	for _, w := range vwc[0].Webhooks {
		hooks = append(hooks, hook{w.Name, w.ClientConfig, w.Rules, w.FailurePolicy, w.SideEffects, w.TimeoutSeconds, w.AdmissionReviewVersions, nsSel(w.NamespaceSelector)})
	}
	for _, w := range mwc[0].Webhooks {
		hooks = append(hooks, hook{w.Name, w.ClientConfig, w.Rules, w.FailurePolicy, w.SideEffects, w.TimeoutSeconds, w.AdmissionReviewVersions, nsSel(w.NamespaceSelector)})
		if w.ReinvocationPolicy == nil || *w.ReinvocationPolicy != admissionregistrationv1.IfNeededReinvocationPolicy {
			t.Fatalf("%s: reinvocationPolicy %v", w.Name, w.ReinvocationPolicy)
		}
	}
	// Resources the webhook handles, as the rules name them.
	want := []string{"/v1/pods", "/v1/pods/ephemeralcontainers", "apps/v1/deployments", "apps/v1/replicasets", "apps/v1/statefulsets", "apps/v1/daemonsets", "batch/v1/jobs", "batch/v1/cronjobs"}
	if len(kube.Handled) != 7 {
		t.Fatalf("the handled kinds changed (%v): update the rules and this list", kube.Handled)
	}
	paths := []string{"/v1/kubernetes/validate", "/v1/kubernetes/mutate"}
	for i, h := range hooks {
		s := h.cc.Service
		if s == nil || s.Name != svc[0].Name || s.Namespace != svc[0].Namespace || s.Path == nil || *s.Path != paths[i] || s.Port == nil || *s.Port != svc[0].Spec.Ports[0].Port {
			t.Fatalf("%s: client config %+v", h.name, h.cc)
		}
		if h.fail == nil || *h.fail != admissionregistrationv1.Fail {
			t.Fatalf("%s: failurePolicy %v, want Fail", h.name, h.fail)
		}
		if h.side == nil || *h.side != admissionregistrationv1.SideEffectClassNoneOnDryRun {
			t.Fatalf("%s: sideEffects %v", h.name, h.side)
		}
		if h.timeout == nil || int64(*h.timeout)*1e9 <= int64(kube.DefaultDeadline) {
			t.Fatalf("%s: timeoutSeconds %v is not longer than wardgate's deadline %s", h.name, h.timeout, kube.DefaultDeadline)
		}
		if !slices.Equal(h.versions, []string{"v1"}) {
			t.Fatalf("%s: admissionReviewVersions %v", h.name, h.versions)
		}
		if h.ns != "own=false app=true" {
			t.Fatalf("%s: namespaceSelector %s does not spare wardgate's namespace", h.name, h.ns)
		}
		var got []string
		for _, r := range h.rules {
			if !slices.Equal(r.Operations, []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}) {
				t.Fatalf("%s: operations %v", h.name, r.Operations)
			}
			for _, g := range r.APIGroups {
				for _, v := range r.APIVersions {
					for _, res := range r.Resources {
						got = append(got, g+"/"+v+"/"+res)
					}
				}
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: rules cover %v, want %v", h.name, got, want)
		}
	}
	// The Service reaches the container's webhook port, where
	// --kubernetes-listen listens.
	c := deps[0].Spec.Template.Spec.Containers[0]
	var port int32
	for _, p := range c.Ports {
		if p.Name == svc[0].Spec.Ports[0].TargetPort.StrVal {
			port = p.ContainerPort
		}
	}
	if port == 0 || !slices.ContainsFunc(c.Args, func(a string) bool {
		return strings.HasPrefix(a, "--kubernetes-listen=") && strings.HasSuffix(a, ":"+strconv.Itoa(int(port)))
	}) {
		t.Fatalf("the Service's target port %v is not where --kubernetes-listen listens: %v", svc[0].Spec.Ports[0].TargetPort, c.Args)
	}
	if *deps[0].Spec.Replicas != 1 || deps[0].Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Fatal("one replica, recreated: the state is one SQLite directory")
	}
	// The example trust configuration's kubernetes section is valid, bar
	// the key placeholder.
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "keys"), 0o755); err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile("../fixtures/testdata/keys/buildctl.pub")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "keys", "buildctl.pub"), key, 0o644); err != nil {
		t.Fatal(err)
	}
	tp := filepath.Join(dir, "trust.yaml")
	if err := os.WriteFile(tp, []byte(cms[0].Data["trust.yaml"]), 0o644); err != nil {
		t.Fatal(err)
	}
	tc, err := trust.Load(tp)
	if err != nil {
		t.Fatal(err)
	}
	k := tc.Kubernetes
	if k.NamespaceMode("kube-system") != trust.NamespaceExempt || k.NamespaceMode("staging-bms") != trust.NamespaceWarn || k.NamespaceMode("facility") != trust.NamespaceEnforce {
		t.Fatalf("namespaces %+v", k)
	}
	if m, ok := k.Image("registry.hospital.example/buildctl/bms-worker"); !ok || m.Product != "bms-worker" || m.DeviceClass != "building-management" {
		t.Fatalf("image mapping %+v %v", m, ok)
	}
}

// certs.sh makes a serving certificate the API server accepts for the
// Service (its DNS name, signed by the CA in caBundle).
func TestCertsScript(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed: certs.sh needs it")
	}
	dir := t.TempDir()
	out, err := exec.Command("sh", filepath.Join(deployDir, "certs.sh"), dir).CombinedOutput()
	if err != nil {
		t.Fatalf("certs.sh: %v\n%s", err, out)
	}
	bundle, err := os.ReadFile(filepath.Join(dir, "ca.bundle"))
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := base64.StdEncoding.DecodeString(string(bundle))
	if err != nil {
		t.Fatalf("caBundle is not base64: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("caBundle holds no certificate")
	}
	b, err := os.ReadFile(filepath.Join(dir, "tls.crt"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatal("tls.crt is not PEM")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{DNSName: "wardgate-webhook.wardgate.svc", Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Fatalf("the API server would refuse the certificate: %v", err)
	}
}
