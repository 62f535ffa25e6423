package kube

import (
	"encoding/json"
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Handled lists the kinds whose images the webhook checks. Any other kind
// is admitted with a warning (the example webhook configurations send only
// these).
var Handled = []schema.GroupVersionKind{
	corev1.SchemeGroupVersion.WithKind("Pod"),
	appsv1.SchemeGroupVersion.WithKind("Deployment"),
	appsv1.SchemeGroupVersion.WithKind("ReplicaSet"),
	appsv1.SchemeGroupVersion.WithKind("StatefulSet"),
	appsv1.SchemeGroupVersion.WithKind("DaemonSet"),
	batchv1.SchemeGroupVersion.WithKind("Job"),
	batchv1.SchemeGroupVersion.WithKind("CronJob"),
}

// container is one container image of a workload and where it sits: its
// name and the JSON pointer of its image field (for the patch).
type container struct {
	name  string
	image string
	path  string
}

// podSpecOf decodes raw as gvk and returns the pod spec inside it and the
// JSON pointer of that spec. ok is false for a kind not handled.
func podSpecOf(gvk schema.GroupVersionKind, raw []byte) (spec *corev1.PodSpec, meta *metav1.ObjectMeta, pointer string, ok bool, err error) {
	dec := func(v any) error {
		if err := json.Unmarshal(raw, v); err != nil {
			return fmt.Errorf("%s: %v", gvk.Kind, err)
		}
		return nil
	}
	switch gvk {
	case Handled[0]:
		var o corev1.Pod
		err = dec(&o)
		return &o.Spec, &o.ObjectMeta, "/spec", true, err
	case Handled[1]:
		var o appsv1.Deployment
		err = dec(&o)
		return &o.Spec.Template.Spec, &o.ObjectMeta, "/spec/template/spec", true, err
	case Handled[2]:
		var o appsv1.ReplicaSet
		err = dec(&o)
		return &o.Spec.Template.Spec, &o.ObjectMeta, "/spec/template/spec", true, err
	case Handled[3]:
		var o appsv1.StatefulSet
		err = dec(&o)
		return &o.Spec.Template.Spec, &o.ObjectMeta, "/spec/template/spec", true, err
	case Handled[4]:
		var o appsv1.DaemonSet
		err = dec(&o)
		return &o.Spec.Template.Spec, &o.ObjectMeta, "/spec/template/spec", true, err
	case Handled[5]:
		var o batchv1.Job
		err = dec(&o)
		return &o.Spec.Template.Spec, &o.ObjectMeta, "/spec/template/spec", true, err
	case Handled[6]:
		var o batchv1.CronJob
		err = dec(&o)
		return &o.Spec.JobTemplate.Spec.Template.Spec, &o.ObjectMeta, "/spec/jobTemplate/spec/template/spec", true, err
	}
	return nil, nil, "", false, nil
}

// containers lists every container, init container and ephemeral container
// of spec, in that order.
func containers(spec *corev1.PodSpec, pointer string) []container {
	var out []container
	for i, c := range spec.InitContainers {
		out = append(out, container{name: c.Name, image: c.Image, path: pointer + "/initContainers/" + strconv.Itoa(i) + "/image"})
	}
	for i, c := range spec.Containers {
		out = append(out, container{name: c.Name, image: c.Image, path: pointer + "/containers/" + strconv.Itoa(i) + "/image"})
	}
	for i, c := range spec.EphemeralContainers {
		out = append(out, container{name: c.Name, image: c.Image, path: pointer + "/ephemeralContainers/" + strconv.Itoa(i) + "/image"})
	}
	return out
}
