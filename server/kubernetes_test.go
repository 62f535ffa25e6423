package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/sigstore/pkg/signature"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/gate"
	"github.com/wardgate/wardgate/internal/ocisign"
	"github.com/wardgate/wardgate/kube"
	"github.com/wardgate/wardgate/policy"
	"github.com/wardgate/wardgate/store"
	"github.com/wardgate/wardgate/trust"
)

// kubeTrust is the trust configuration of the Kubernetes tests: the
// building-management vendor's images (signed with the buildctl fixture
// key) map to its bms-api product. The images are small random images, so
// scanning is off (TestKubernetesScansImage scans) and the SBOM is not
// required here.
const kubeTrust = `version: 1
sbom:
  required: %[1]s
vendors:
  buildctl:
    products:
      bms-api:
        device_classes: [building-management]
        min_version:
          "*": 1.0.0
        authorities:
          keys:
            - path: %[2]s
kubernetes:
  namespaces:
    exempt: [kube-system]
    warn: [staging]
  images:
    - repository: %[3]s/buildctl/bms-api
      vendor: buildctl
      product: bms-api
    - repository: %[3]s/buildctl/hang/*
      vendor: buildctl
      product: bms-api
`

type kubeEnv struct {
	*env
	host   string
	good   signature.Signer // buildctl's key, trusted
	rogue  signature.Signer // a key nobody trusts
	hangMu sync.Mutex
	hang   chan struct{} // closed at cleanup: releases hanging requests
}

// newKubeEnv is newEnv with the registry (go-containerregistry's, over HTTP
// on loopback, with /v2/buildctl/hang/... never answering) and a gate over
// kubeTrust.
func newKubeEnv(t testing.TB, scan bool, opts ...Option) *kubeEnv {
	t.Helper()
	ke := &kubeEnv{hang: make(chan struct{})}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	rs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v2/buildctl/hang/") {
			select {
			case <-r.Context().Done():
			case <-ke.hang:
			}
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(rs.Close)
	t.Cleanup(func() { close(ke.hang) })
	ke.host = strings.TrimPrefix(rs.URL, "http://")
	var err error
	if ke.good, err = ocisign.LoadSigner(fx + "/keys/buildctl.key"); err != nil {
		t.Fatal(err)
	}
	if ke.rogue, err = ocisign.LoadSigner(fx + "/keys/rogue.key"); err != nil {
		t.Fatal(err)
	}
	pub, err := filepath.Abs(fx + "/keys/buildctl.pub")
	if err != nil {
		t.Fatal(err)
	}
	required := "false"
	if scan {
		required = "true"
	}
	tp := filepath.Join(t.TempDir(), "trust.yaml")
	if err := os.WriteFile(tp, fmt.Appendf(nil, kubeTrust, required, pub, ke.host), 0o644); err != nil {
		t.Fatal(err)
	}
	tc, err := trust.Load(tp)
	if err != nil {
		t.Fatal(err)
	}
	ke.env = newEnv(t, func(d *Deps, o *[]Option) {
		eng, err := policy.New(t.Context(), policy.WithTrust(tc))
		if err != nil {
			t.Fatal(err)
		}
		// As wardgate serve wires it: installations group-committed by the
		// store.
		st := d.Telemetry.(store.Store)
		gopts := []gate.Option{gate.WithLog(d.Log), gate.WithFleet(d.Risk), gate.WithInstallations(st)}
		if !scan {
			gopts = append(gopts, gate.WithoutSBOMGeneration())
		}
		if d.Gate, err = gate.New(tc, eng, st, gopts...); err != nil {
			t.Fatal(err)
		}
		*o = append(*o, WithRegistries(ke.host))
		*o = append(*o, opts...)
	})
	t.Cleanup(func() { ke.srv.Close() }) // before the stores close (cleanups run last first)
	return ke
}

// push pushes a signed (s) or unsigned (nil) random image to
// host/buildctl/<repoTag> and returns its digest.
func (ke *kubeEnv) push(repoTag string, s signature.Signer) string {
	ke.t.Helper()
	tag := ke.host + "/buildctl/" + repoTag
	if s != nil {
		d, err := ocisign.PushSignedImage(ke.t.Context(), tag, s)
		if err != nil {
			ke.t.Fatal(err)
		}
		return d.DigestStr()
	}
	img, err := random.Image(256, 1)
	if err != nil {
		ke.t.Fatal(err)
	}
	ref, err := name.NewTag(tag)
	if err != nil {
		ke.t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		ke.t.Fatal(err)
	}
	h, err := img.Digest()
	if err != nil {
		ke.t.Fatal(err)
	}
	return h.String()
}

func (ke *kubeEnv) image(repoTag string) string { return ke.host + "/buildctl/" + repoTag }

// podSpec is a pod spec as the API server serialises it, defaults filled
// in, with a field no Kubernetes version has (a newer API server's).
func podSpec(initImages, images, ephemeral []string) string {
	ctr := func(n int, prefix, img string) string {
		return fmt.Sprintf(`{"name":"%s-%d","image":%q,"ports":[{"containerPort":8080,"protocol":"TCP"}],"resources":{"limits":{"cpu":"500m","memory":"256Mi"},"requests":{"cpu":"100m","memory":"128Mi"}},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent","securityContext":{"runAsNonRoot":true,"allowPrivilegeEscalation":false}}`, prefix, n, img)
	}
	list := func(prefix string, imgs []string) string {
		var parts []string
		for i, img := range imgs {
			parts = append(parts, ctr(i, prefix, img))
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	s := `{"containers":` + list("app", images)
	if len(initImages) > 0 {
		s += `,"initContainers":` + list("init", initImages)
	}
	if len(ephemeral) > 0 {
		s += `,"ephemeralContainers":` + list("debug", ephemeral)
	}
	return s + `,"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","serviceAccountName":"default","serviceAccount":"default","securityContext":{},"schedulerName":"default-scheduler","tolerations":[{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}],"priority":0,"enableServiceLinks":true,"preemptionPolicy":"PreemptLowerPriority","futureSpecField":{"enabled":true}}`
}

func meta(name, ns string) string {
	return fmt.Sprintf(`{"name":%q,"namespace":%q,"uid":"6b7a9f4e-2c1d-4e8a-9a51-0c2f3d4e5f60","creationTimestamp":null,"labels":{"app":"bms-api"},"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{}"},"managedFields":[{"manager":"kubectl-client-side-apply","operation":"Update","apiVersion":"v1","time":"2026-11-02T08:00:00Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{}}}]}`, name, ns)
}

func podObject(name, ns, spec string) string {
	return `{"kind":"Pod","apiVersion":"v1","metadata":` + meta(name, ns) + `,"spec":` + spec + `,"status":{"phase":"Pending","qosClass":"Burstable"}}`
}

func deploymentObject(name, ns, spec string) string {
	return `{"kind":"Deployment","apiVersion":"apps/v1","metadata":` + meta(name, ns) + `,"spec":{"replicas":2,"selector":{"matchLabels":{"app":"bms-api"}},"template":{"metadata":{"creationTimestamp":null,"labels":{"app":"bms-api"}},"spec":` + spec + `},"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":"25%","maxSurge":"25%"}},"revisionHistoryLimit":10,"progressDeadlineSeconds":600},"status":{}}`
}

func cronJobObject(name, ns, spec string) string {
	return `{"kind":"CronJob","apiVersion":"batch/v1","metadata":` + meta(name, ns) + `,"spec":{"schedule":"*/15 * * * *","concurrencyPolicy":"Forbid","suspend":false,"jobTemplate":{"metadata":{"creationTimestamp":null},"spec":{"backoffLimit":2,"template":{"metadata":{"creationTimestamp":null},"spec":` + strings.Replace(spec, `"restartPolicy":"Always"`, `"restartPolicy":"OnFailure"`, 1) + `}}},"successfulJobsHistoryLimit":3,"failedJobsHistoryLimit":1},"status":{}}`
}

type reviewReq struct {
	op, group, version, kind, resource, subResource, name, ns string
	object, oldObject                                         string
	dryRun                                                    bool
}

var reviewSeq int

// reviewJSON is an AdmissionReview as the API server sends it: userInfo,
// requestKind and options filled in, oldObject on UPDATE, dryRun, and a
// field this version does not know.
func reviewJSON(r reviewReq) string {
	reviewSeq++
	old := "null"
	if r.oldObject != "" {
		old = r.oldObject
	}
	opts := `{"kind":"CreateOptions","apiVersion":"meta.k8s.io/v1","fieldManager":"kubectl-client-side-apply","fieldValidation":"Strict"}`
	if r.op == "UPDATE" {
		opts = `{"kind":"UpdateOptions","apiVersion":"meta.k8s.io/v1","fieldManager":"kubectl-client-side-apply","fieldValidation":"Strict"}`
	}
	sub := ""
	if r.subResource != "" {
		sub = fmt.Sprintf(`"subResource":%q,"requestSubResource":%q,`, r.subResource, r.subResource)
	}
	return fmt.Sprintf(`{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"0c9b6e1a-%04d-4f3e-8d2a-7b6c5d4e3f21",`+
		`"kind":{"group":%q,"version":%q,"kind":%q},"resource":{"group":%q,"version":%q,"resource":%q},%s`+
		`"requestKind":{"group":%q,"version":%q,"kind":%q},"requestResource":{"group":%q,"version":%q,"resource":%q},`+
		`"name":%q,"namespace":%q,"operation":%q,`+
		`"userInfo":{"username":"system:serviceaccount:kube-system:replicaset-controller","uid":"3f0c1c53-9f3e-4a5b-8c1d-2e3f4a5b6c7d","groups":["system:serviceaccounts","system:serviceaccounts:kube-system","system:authenticated"]},`+
		`"object":%s,"oldObject":%s,"dryRun":%t,"options":%s,"futureRequestField":{"since":"v1.99"}}}`,
		reviewSeq, r.group, r.version, r.kind, r.group, r.version, r.resource, sub, r.group, r.version, r.kind, r.group, r.version, r.resource,
		r.name, r.ns, r.op, r.object, old, r.dryRun, opts)
}

func podReview(ns, name string, spec string) reviewReq {
	return reviewReq{op: "CREATE", version: "v1", kind: "Pod", resource: "pods", name: name, ns: ns, object: podObject(name, ns, spec)}
}

// send posts a review to route as the kubernetes role and decodes the
// answer, checking the envelope.
func (ke *kubeEnv) send(route string, r reviewReq) (*admissionv1.AdmissionResponse, time.Duration) {
	ke.t.Helper()
	body := reviewJSON(r)
	start := time.Now()
	res := ke.do("POST", "/v1/kubernetes/"+route, RoleKubernetes, "application/json", strings.NewReader(body))
	took := time.Since(start)
	if res.status != 200 {
		ke.t.Fatalf("%s: %d %s", route, res.status, res.body)
	}
	var rv admissionv1.AdmissionReview
	res.json(ke.t, &rv)
	var in admissionv1.AdmissionReview
	if err := json.Unmarshal([]byte(body), &in); err != nil {
		ke.t.Fatal(err)
	}
	if rv.APIVersion != "admission.k8s.io/v1" || rv.Kind != "AdmissionReview" || rv.Response == nil || rv.Response.UID != in.Request.UID {
		ke.t.Fatalf("answer envelope: %s", res.body)
	}
	return rv.Response, took
}

func verdictsOf(t testing.TB, r *admissionv1.AdmissionResponse) []kube.ImageVerdict {
	t.Helper()
	var v []kube.ImageVerdict
	if s := r.AuditAnnotations[kube.AnnotationVerdicts]; s != "" {
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			t.Fatalf("verdicts annotation: %v: %s", err, s)
		}
	}
	return v
}

func message(r *admissionv1.AdmissionResponse) string {
	if r.Result == nil {
		return ""
	}
	return r.Result.Message
}

// checkLogged checks that each verdict with a log index is that entry of
// the log: the image's digest, the workload as device.
func (ke *kubeEnv) checkLogged(r *admissionv1.AdmissionResponse, workload string) {
	ke.t.Helper()
	vs := verdictsOf(ke.t, r)
	var idx []string
	for _, v := range vs {
		if v.LogIndex == nil {
			continue
		}
		idx = append(idx, strconv.FormatUint(*v.LogIndex, 10))
		e, err := ke.log.Entry(ke.t.Context(), *v.LogIndex)
		if err != nil {
			ke.t.Fatal(err)
		}
		if e.Artifact != digestPart(v.Digest) || e.Device != workload {
			ke.t.Fatalf("log entry %d: artifact %s device %s, want %s %s", *v.LogIndex, e.Artifact, e.Device, v.Digest, workload)
		}
	}
	if got := r.AuditAnnotations[kube.AnnotationLogIndexes]; got != strings.Join(idx, ",") {
		ke.t.Fatalf("log-indexes %q, verdicts %v", got, idx)
	}
}

func TestKubernetesValidate(t *testing.T) {
	ke := newKubeEnv(t, false)
	// One product, one repository: a release, and two later versions
	// pushed unsigned and signed by a key nobody trusts.
	good := ke.push("bms-api:1.2.0", ke.good)
	unsigned := ke.push("bms-api:1.3.0", nil)
	ke.push("bms-api:1.4.0", ke.rogue)

	t.Run("signed image allowed", func(t *testing.T) {
		size := ke.log.Checkpoint().Size
		r, _ := ke.send("validate", podReview("facility", "bms-api-0", podSpec(nil, []string{ke.image("bms-api:1.2.0")}, nil)))
		if !r.Allowed || r.Result != nil || r.AuditAnnotations[kube.AnnotationDecision] != "allow" || len(r.Warnings) != 0 {
			t.Fatalf("answer %+v", r)
		}
		vs := verdictsOf(t, r)
		if len(vs) != 1 || vs[0].Digest != ke.image("bms-api")+"@"+good || !vs[0].Allowed || vs[0].LogIndex == nil {
			t.Fatalf("verdicts %+v", vs)
		}
		// Evaluated once (the image's verdict) and admitted (the pod's).
		if got := ke.log.Checkpoint().Size - size; got != 2 {
			t.Fatalf("log grew by %d, want 2", got)
		}
		ke.checkLogged(r, "k8s/facility/Pod/bms-api-0")
		rec, ok := ke.recs.Get(good)
		if !ok || rec.Evidence.Artifact.Vendor != "buildctl" || rec.Evidence.Artifact.Version != "1.2.0" || !rec.Decision.Allow {
			t.Fatalf("kept evaluation %+v %v", rec, ok)
		}
		// The second review of the image is decided from the kept
		// evaluation: one verdict.
		size = ke.log.Checkpoint().Size
		if r, _ := ke.send("validate", podReview("facility", "bms-api-1", podSpec(nil, []string{ke.image("bms-api:1.2.0")}, nil))); !r.Allowed {
			t.Fatalf("again: %+v", r)
		}
		if got := ke.log.Checkpoint().Size - size; got != 1 {
			t.Fatalf("log grew by %d, want 1", got)
		}
		ins, err := ke.st.Installations(t.Context())
		if err != nil || !slices.ContainsFunc(ins, func(i egress.Installation) bool { return i.Device == "k8s/facility/Pod/bms-api-1" && i.Digest == good }) {
			t.Fatalf("installations %+v %v", ins, err)
		}
	})

	refused := []struct {
		name, image, code string
	}{
		{"unsigned image", "bms-api:1.3.0", "unsigned"},
		{"untrusted key", "bms-api:1.4.0", "untrusted-signer"},
		{"registry not named", "registry.other.example/buildctl/bms-api:1.2.0", kube.CodeRegistryNotAllowed},
		{"repository not mapped", "", kube.CodeImageUnmapped},
		{"no such tag", "bms-api:9.9.9", kube.CodeImageUnresolved},
		{"version below the minimum", "bms-api:0.9.0", "rollback"},
	}
	ke.push("bms-api:0.9.0", ke.good)
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			img := c.image
			switch {
			case img == "":
				img = ke.host + "/buildctl/bms-worker:1.0.0"
			case !strings.Contains(img, "/"):
				img = ke.image(img)
			}
			r, _ := ke.send("validate", podReview("facility", "p", podSpec(nil, []string{img}, nil)))
			msg := message(r)
			if r.Allowed || r.Result.Code != 403 || r.AuditAnnotations[kube.AnnotationDecision] != "deny" ||
				!strings.Contains(msg, "image "+img) || !strings.Contains(msg, "["+c.code) {
				t.Fatalf("answer %+v (%s)", r, msg)
			}
			ke.checkLogged(r, "k8s/facility/Pod/p")
			vs := verdictsOf(t, r)
			if len(vs) != 1 || vs[0].Allowed || vs[0].Codes[0] != c.code {
				t.Fatalf("verdicts %+v", vs)
			}
			// A gate decision is a signed verdict; a refusal before the
			// gate (registry, mapping, tag) has none.
			if gateCode := !strings.Contains("registry-not-allowed image-unmapped image-unresolved", c.code); gateCode != (vs[0].LogIndex != nil) {
				t.Fatalf("log index %v for %s", vs[0].LogIndex, c.code)
			}
		})
	}

	t.Run("one good and one bad container", func(t *testing.T) {
		r, _ := ke.send("validate", podReview("facility", "mixed", podSpec([]string{ke.image("bms-api:1.2.0")}, []string{ke.image("bms-api:1.2.0"), ke.image("bms-api:1.3.0")}, nil)))
		msg := message(r)
		if r.Allowed || !strings.HasPrefix(msg, "wardgate refused 1 of 2 images of k8s/facility/Pod/mixed: image "+ke.image("bms-api:1.3.0")+" ("+unsigned+") [unsigned]") || strings.Contains(msg, "bms-api:1.2.0") {
			t.Fatalf("answer %+v (%s)", r, msg)
		}
		vs := verdictsOf(t, r)
		if len(vs) != 2 || !vs[0].Allowed || vs[1].Allowed {
			t.Fatalf("verdicts %+v", vs)
		}
		ke.checkLogged(r, "k8s/facility/Pod/mixed")
	})

	t.Run("exempt namespace", func(t *testing.T) {
		size := ke.log.Checkpoint().Size
		r, _ := ke.send("validate", podReview("kube-system", "coredns", podSpec(nil, []string{ke.image("bms-api:1.3.0"), "registry.k8s.io/coredns/coredns:v1.11.1"}, nil)))
		if !r.Allowed || r.Result != nil || r.AuditAnnotations[kube.AnnotationDecision] != "exempt" || len(verdictsOf(t, r)) != 0 {
			t.Fatalf("answer %+v", r)
		}
		if ke.log.Checkpoint().Size != size {
			t.Fatal("an exempt namespace's pod was logged")
		}
	})

	t.Run("warn-only namespace", func(t *testing.T) {
		r, _ := ke.send("validate", podReview("staging", "try", podSpec(nil, []string{ke.image("bms-api:1.3.0")}, nil)))
		if !r.Allowed || r.Result != nil || r.AuditAnnotations[kube.AnnotationDecision] != "warn" || len(r.Warnings) != 1 ||
			!strings.HasPrefix(r.Warnings[0], "wardgate would refuse (namespace staging is warn-only): image "+ke.image("bms-api:1.3.0")) {
			t.Fatalf("answer %+v", r)
		}
		ke.checkLogged(r, "k8s/staging/Pod/try")
	})

	t.Run("cronjob", func(t *testing.T) {
		cj := reviewReq{op: "CREATE", group: "batch", version: "v1", kind: "CronJob", resource: "cronjobs", name: "hvac-report", ns: "facility",
			object: cronJobObject("hvac-report", "facility", podSpec([]string{ke.image("bms-api:1.4.0")}, []string{ke.image("bms-api:1.2.0")}, nil))}
		r, _ := ke.send("validate", cj)
		if r.Allowed || !strings.Contains(message(r), "image "+ke.image("bms-api:1.4.0")) || !strings.Contains(message(r), "[untrusted-signer]") {
			t.Fatalf("answer %+v", r)
		}
		ke.checkLogged(r, "k8s/facility/CronJob/hvac-report")
		cj.object = cronJobObject("hvac-report", "facility", podSpec(nil, []string{ke.image("bms-api:1.2.0")}, nil))
		if r, _ := ke.send("validate", cj); !r.Allowed {
			t.Fatalf("good cronjob: %+v", r)
		}
	})

	t.Run("update checks only new images", func(t *testing.T) {
		// The old object ran the unsigned image (it was admitted before the
		// policy changed, say): a label change is not refused for it.
		spec := podSpec(nil, []string{ke.image("bms-api:1.3.0")}, nil)
		up := reviewReq{op: "UPDATE", group: "apps", version: "v1", kind: "Deployment", resource: "deployments", name: "bms", ns: "facility",
			object: deploymentObject("bms", "facility", spec), oldObject: deploymentObject("bms", "facility", spec)}
		size := ke.log.Checkpoint().Size
		r, _ := ke.send("validate", up)
		if !r.Allowed || r.AuditAnnotations[kube.AnnotationDecision] != "skipped" || ke.log.Checkpoint().Size != size {
			t.Fatalf("unchanged images: %+v", r)
		}
		// From 1.2.0 to 1.1.0 of a signed image: a rollback for the
		// workload (the old tag is its installed version), and for the
		// ledger (1.2.0 was admitted before: versions never go back).
		ke.push("bms-api:1.1.0", ke.good)
		up.oldObject = deploymentObject("bms", "facility", podSpec(nil, []string{ke.image("bms-api:1.2.0")}, nil))
		up.object = deploymentObject("bms", "facility", podSpec(nil, []string{ke.image("bms-api:1.1.0")}, nil))
		r, _ = ke.send("validate", up)
		if r.Allowed || !strings.Contains(message(r), "[rollback, rollback]") || !strings.Contains(message(r), "version 1.1.0 is older than 1.2.0") {
			t.Fatalf("rollback: %+v", r)
		}
		// The same change the other way is an upgrade.
		up.oldObject, up.object = up.object, up.oldObject
		if r, _ = ke.send("validate", up); !r.Allowed {
			t.Fatalf("upgrade: %+v", r)
		}
	})

	t.Run("ephemeral container", func(t *testing.T) {
		old := podObject("bms-api-0", "facility", podSpec(nil, []string{ke.image("bms-api:1.2.0")}, nil))
		neu := podObject("bms-api-0", "facility", podSpec(nil, []string{ke.image("bms-api:1.2.0")}, []string{ke.image("bms-api:1.3.0")}))
		r, _ := ke.send("validate", reviewReq{op: "UPDATE", version: "v1", kind: "Pod", resource: "pods", subResource: "ephemeralcontainers", name: "bms-api-0", ns: "facility", object: neu, oldObject: old})
		if r.Allowed || !strings.Contains(message(r), "refused 1 of 1 images") || !strings.Contains(message(r), "[unsigned]") {
			t.Fatalf("answer %+v", r)
		}
	})

	t.Run("dry run", func(t *testing.T) {
		before, err := ke.st.Installations(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		rq := podReview("facility", "dry", podSpec(nil, []string{ke.image("bms-api:1.2.0")}, nil))
		rq.dryRun = true
		r, _ := ke.send("validate", rq)
		if !r.Allowed {
			t.Fatalf("answer %+v", r)
		}
		ke.checkLogged(r, "k8s/facility/Pod/dry")
		after, err := ke.st.Installations(t.Context())
		if err != nil || len(after) != len(before) {
			t.Fatalf("a dry run recorded an installation: %d then %d (%v)", len(before), len(after), err)
		}
	})

	t.Run("kind not handled", func(t *testing.T) {
		size := ke.log.Checkpoint().Size
		cm := `{"kind":"ConfigMap","apiVersion":"v1","metadata":` + meta("settings", "facility") + `,"data":{"image":"` + ke.image("bms-api:1.3.0") + `"}}`
		r, _ := ke.send("validate", reviewReq{op: "CREATE", version: "v1", kind: "ConfigMap", resource: "configmaps", name: "settings", ns: "facility", object: cm})
		if !r.Allowed || r.AuditAnnotations[kube.AnnotationDecision] != "unhandled" || len(r.Warnings) != 1 || r.Warnings[0] != "wardgate does not check ConfigMap (/v1); admitted unchecked" {
			t.Fatalf("answer %+v", r)
		}
		if ke.log.Checkpoint().Size != size {
			t.Fatal("logged")
		}
	})

	t.Run("delete", func(t *testing.T) {
		r, _ := ke.send("validate", reviewReq{op: "DELETE", version: "v1", kind: "Pod", resource: "pods", name: "bms-api-0", ns: "facility", object: "null",
			oldObject: podObject("bms-api-0", "facility", podSpec(nil, []string{ke.image("bms-api:1.3.0")}, nil))})
		if !r.Allowed || r.AuditAnnotations[kube.AnnotationDecision] != "skipped" {
			t.Fatalf("answer %+v", r)
		}
	})

	t.Run("audit", func(t *testing.T) {
		// One review, one record (written with its verdicts).
		recs, err := ke.srv.deps.Tokens.AuditLog(t.Context(), AuditFilter{Action: "POST /v1/kubernetes/validate", Limit: 1000})
		mixed := slices.DeleteFunc(recs, func(a AuditRecord) bool { return a.Target != "k8s/facility/Pod/mixed" })
		if err != nil || len(mixed) != 1 || mixed[0].Outcome != "deny" || mixed[0].Role != RoleKubernetes {
			t.Fatalf("audit %+v %v", mixed, err)
		}
	})
}

// With a tag TTL (serve --kubernetes-tag-ttl) a review within it is
// decided for the digest the tag named when it was resolved, without
// asking the registry: a tag moved meanwhile is not seen yet (the kube
// package's TestTagTTL shows it seen once the TTL has passed).
func TestKubernetesTagTTL(t *testing.T) {
	ke := newKubeEnv(t, false, WithKubernetes(KubernetesConfig{TagTTL: kube.MaxTagTTL}))
	first := ke.push("bms-api:2.0.0", ke.good)
	spec := podSpec(nil, []string{ke.image("bms-api:2.0.0")}, nil)
	r, _ := ke.send("validate", podReview("facility", "a", spec))
	vs := verdictsOf(t, r)
	if !r.Allowed || len(vs) != 1 || vs[0].Digest != ke.image("bms-api")+"@"+first {
		t.Fatalf("first: %+v", r)
	}
	ke.push("bms-api:2.0.0", ke.good)
	r, _ = ke.send("validate", podReview("facility", "b", spec))
	if vs := verdictsOf(t, r); !r.Allowed || len(vs) != 1 || vs[0].Digest != ke.image("bms-api")+"@"+first {
		t.Fatalf("within the TTL: %+v", r)
	}
}

// A tag moved to other content after its digest was verified: the new
// digest is evaluated on its own (one version, one digest: the ledger
// refuses it even though the trusted key signed it), while the digest the
// mutating webhook pinned is still the one that runs and is still allowed.
func TestKubernetesTagMoved(t *testing.T) {
	ke := newKubeEnv(t, false)
	first := ke.push("bms-api:2.0.0", ke.good)
	spec := podSpec(nil, []string{ke.image("bms-api:2.0.0")}, nil)
	m, _ := ke.send("mutate", podReview("facility", "a", spec))
	wantPatch := `[{"op":"replace","path":"/spec/containers/0/image","value":"` + ke.image("bms-api:2.0.0") + "@" + first + `"}]`
	if !m.Allowed || string(m.Patch) != wantPatch || m.PatchType == nil || *m.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("mutate: %+v %s", m, m.Patch)
	}
	pinned := ke.image("bms-api:2.0.0") + "@" + first
	if r, _ := ke.send("validate", podReview("facility", "a", podSpec(nil, []string{pinned}, nil))); !r.Allowed {
		t.Fatalf("pinned: %+v", r)
	}
	moved := ke.push("bms-api:2.0.0", ke.good)
	r, _ := ke.send("validate", podReview("facility", "b", spec))
	if r.Allowed || !strings.Contains(message(r), "("+moved+") [same-version-different-digest]") {
		t.Fatalf("moved tag: %+v", r)
	}
	// The pinned reference still names what was verified; no registry
	// lookup is needed for it.
	if r, _ := ke.send("validate", podReview("facility", "c", podSpec(nil, []string{pinned}, nil))); !r.Allowed {
		t.Fatalf("pinned after the move: %+v", r)
	}
	// Mutate now pins the tag to the new digest, which validate refuses.
	m, _ = ke.send("mutate", podReview("facility", "d", spec))
	if !strings.Contains(string(m.Patch), moved) {
		t.Fatalf("mutate after the move: %s", m.Patch)
	}
}

func TestKubernetesMutate(t *testing.T) {
	ke := newKubeEnv(t, false)
	d := ke.push("bms-api:1.2.0", ke.good)
	ke.push("bms-api:1.3.0", nil)
	pinned := ke.image("bms-api:1.2.0") + "@" + d
	cj := reviewReq{op: "CREATE", group: "batch", version: "v1", kind: "CronJob", resource: "cronjobs", name: "report", ns: "facility",
		object: cronJobObject("report", "facility", podSpec([]string{ke.image("bms-api:1.2.0")}, []string{pinned, ke.image("bms-api:1.3.0"), "registry.other.example/x:1"}, nil))}
	r, _ := ke.send("mutate", cj)
	var ops []map[string]string
	if err := json.Unmarshal(r.Patch, &ops); err != nil {
		t.Fatalf("patch %s: %v", r.Patch, err)
	}
	// Tags are pinned (the unsigned image too: validate refuses it by
	// digest); a pinned image and a registry the gate may not fetch from
	// are left alone.
	p := "/spec/jobTemplate/spec/template/spec/"
	want := []map[string]string{
		{"op": "replace", "path": p + "initContainers/0/image", "value": pinned},
		{"op": "replace", "path": p + "containers/1/image", "value": ke.image("bms-api:1.3.0@")},
	}
	if !r.Allowed || len(ops) != 2 || ops[0]["path"] != want[0]["path"] || ops[0]["value"] != want[0]["value"] || ops[1]["path"] != want[1]["path"] || !strings.HasPrefix(ops[1]["value"], want[1]["value"]+"sha256:") {
		t.Fatalf("patch %s", r.Patch)
	}
	// Mutate started the evaluation of the digests it pinned.
	deadline := time.Now().Add(10 * time.Second)
	for !ke.srv.kubeGateEvaluated(d) {
		if time.Now().After(deadline) {
			t.Fatal("mutate did not start the evaluation")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Nothing to pin, an exempt namespace: no patch.
	for _, rq := range []reviewReq{podReview("facility", "x", podSpec(nil, []string{pinned}, nil)), podReview("kube-system", "x", podSpec(nil, []string{ke.image("bms-api:1.2.0")}, nil))} {
		if r, _ := ke.send("mutate", rq); !r.Allowed || r.Patch != nil || r.PatchType != nil {
			t.Fatalf("%s: %+v", rq.ns, r)
		}
	}
}

func (s *Server) kubeGateEvaluated(digest string) bool {
	_, ok := s.deps.Records.Get(digest)
	return ok
}

// A registry that never answers: the review is answered, a deny naming
// the deadline, within the deadline, whether the hang is in resolving the
// tag or in the evaluation.
func TestKubernetesRegistryHangs(t *testing.T) {
	const deadline = 400 * time.Millisecond
	ke := newKubeEnv(t, false, WithKubernetes(KubernetesConfig{Deadline: deadline}))
	for _, img := range []string{
		ke.image("hang/app:1.0.0"),
		ke.image("hang/app@sha256:" + strings.Repeat("ab", 32)),
	} {
		r, took := ke.send("validate", podReview("facility", "h", podSpec(nil, []string{img}, nil)))
		if r.Allowed || !strings.Contains(message(r), "["+kube.CodeDeadlineExceeded+"]") || !strings.Contains(message(r), "image "+img) {
			t.Fatalf("%s: %+v", img, r)
		}
		if took > deadline+time.Second {
			t.Fatalf("%s: answered after %s, deadline %s", img, took, deadline)
		}
	}
}

// With scanning on, the gate scans the image with syft (the SBOM the
// trust configuration requires). The scan takes longer than a short
// deadline: the first review is refused naming the deadline while the
// evaluation goes on, and a later review finds it kept and is allowed.
func TestKubernetesScansImage(t *testing.T) {
	if testing.Short() {
		t.Skip("scans an image with syft")
	}
	ke := newKubeEnv(t, true, WithKubernetes(KubernetesConfig{Deadline: time.Second}))
	img, err := ocisign.PackageImage() // a scan of it finds busybox
	if err != nil {
		t.Fatal(err)
	}
	dr, err := ocisign.PushSigned(t.Context(), ke.image("bms-api:1.2.0"), img, ke.good)
	if err != nil {
		t.Fatal(err)
	}
	d := dr.DigestStr()
	rq := podReview("facility", "scan", podSpec(nil, []string{ke.image("bms-api:1.2.0")}, nil))
	var r *admissionv1.AdmissionResponse
	for i := 0; ; i++ {
		r, _ = ke.send("validate", rq)
		if r.Allowed || i == 120 {
			break
		}
		if !strings.Contains(message(r), "["+kube.CodeDeadlineExceeded+"]") {
			t.Fatalf("while scanning: %+v", r)
		}
	}
	rec, ok := ke.recs.Get(d)
	if !r.Allowed || !ok || rec.Evidence.SBOM == nil || rec.Evidence.SBOM.Source != "generated" {
		t.Fatalf("answer %+v, kept %+v", r, rec)
	}
}

func TestKubernetesBadReviews(t *testing.T) {
	ke := newKubeEnv(t, false, WithKubernetes(KubernetesConfig{MaxReviewBytes: 64 << 10}))
	ok := reviewJSON(podReview("facility", "p", podSpec(nil, []string{ke.image("x:1")}, nil)))
	cases := []struct {
		name, ctype, body string
		status            int
		msg               string
	}{
		{"not JSON", "application/json", `{"kind":"AdmissionReview",`, 400, "malformed JSON"},
		{"v1beta1", "application/json", strings.Replace(ok, "admission.k8s.io/v1", "admission.k8s.io/v1beta1", 1), 400, "want admission.k8s.io/v1 AdmissionReview"},
		{"no request", "application/json", `{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1"}`, 400, "no request"},
		{"no uid", "application/json", strings.Replace(ok, `"uid":"0c9b`, `"uidx":"0c9b`, 1), 400, "without uid"},
		{"containers not a list", "application/json", strings.Replace(ok, `"spec":{"containers":[`, `"spec":{"containers":"x","y":[`, 1), 400, "object: Pod"},
		{"no object", "application/json", strings.Replace(ok, `"object":{`, `"objectx":{`, 1), 400, "without an object"},
		{"trailing data", "application/json", ok + "{}", 400, "malformed JSON"},
		{"form", "application/x-www-form-urlencoded", ok, 415, ""},
		{"too large", "application/json", ok[:len(ok)-2] + `,"pad":"` + strings.Repeat("a", 70<<10) + `"}}`, 413, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, route := range []string{"validate", "mutate"} {
				r := ke.do("POST", "/v1/kubernetes/"+route, RoleKubernetes, c.ctype, strings.NewReader(c.body))
				if r.status != c.status {
					t.Fatalf("%s: %d %s", route, r.status, r.body)
				}
				var b errorBody
				r.json(t, &b)
				if !strings.Contains(b.Error.Message, c.msg) {
					t.Fatalf("%s: %s", route, r.body)
				}
			}
		})
	}
}

// Only the kubernetes role (and admin) may call the webhook routes, and
// the kubernetes role may call nothing else.
func TestKubernetesRoles(t *testing.T) {
	ke := newKubeEnv(t, false)
	body := reviewJSON(reviewReq{op: "DELETE", version: "v1", kind: "Pod", resource: "pods", name: "p", ns: "facility", object: "null"})
	for _, route := range []string{"/v1/kubernetes/validate", "/v1/kubernetes/mutate"} {
		for _, role := range Roles {
			r := ke.do("POST", route, role, "application/json", strings.NewReader(body))
			want := 403
			if role == RoleKubernetes || role == RoleAdmin {
				want = 200
			}
			if r.status != want {
				t.Fatalf("%s as %s: %d %s", route, role, r.status, r.body)
			}
		}
		if r := ke.do("POST", route, "", "application/json", strings.NewReader(body)); r.status != 401 {
			t.Fatalf("%s without a token: %d", route, r.status)
		}
	}
	for _, rt := range ke.srv.Routes() {
		if rt.Roles == nil || strings.HasPrefix(rt.Path, "/v1/kubernetes/") {
			continue
		}
		if r := ke.do(rt.Method, strings.ReplaceAll(strings.ReplaceAll(rt.Path, "{digest}", ke.digest), "{index}", "0"), RoleKubernetes, "application/json", strings.NewReader("{}")); r.status != 403 {
			t.Fatalf("%s %s as kubernetes: %d", rt.Method, rt.Path, r.status)
		}
	}
}

var _ = context.Background
