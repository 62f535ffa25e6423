// Package kube is the Kubernetes admission webhook: it reads an
// admission.k8s.io/v1 AdmissionReview, finds every container, init
// container and ephemeral container image of a Pod or of the pod template
// of a Deployment, ReplicaSet, StatefulSet, DaemonSet, Job or CronJob,
// resolves each image to its digest in a registry the gate may fetch from,
// has the gate evaluate each digest once (through the Gate interface:
// verification, SBOM, policy, fleet risk) and decide each workload's use of
// it, and writes the AdmissionReview answer: allowed or not, a message
// naming each refused image and its reason codes, warnings, audit
// annotations with the verdicts' log indexes, and for the mutating webhook
// a JSONPatch that pins each image to its digest.
//
// It imports the Kubernetes API types (k8s.io/api, k8s.io/apimachinery),
// go-containerregistry's name and remote (to resolve tags) and trust (the
// kubernetes: section). It must not import net/http server code, cobra,
// gate or server: the server adapts the gate to Gate and serves the
// handlers.
package kube
