// Command validate checks deploy/kubernetes's manifests offline against the Kubernetes API
// types (k8s.io/api v0.37.2): every document decodes strictly into its kind's Go type
// (an unknown or misspelled field, a wrong type is an error), and the references inside a
// workload hold (selector ↔ template labels, volume mounts ↔ volumes, probe ports ↔
// container ports). kubectl's own validation needs an API server; this does not. It is a
// module of its own so that logcap's go.mod stays free of k8s.io.
//
//	cd deploy/kubernetes/validate && go run . ../*.yaml
package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

func main() {
	bad := 0
	for _, f := range os.Args[1:] {
		n, err := validateFile(f)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", f, err)
			bad++
			continue
		}
		fmt.Printf("%s: %d objects valid\n", f, n)
	}
	if bad > 0 || len(os.Args) < 2 {
		os.Exit(1)
	}
}

func validateFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var errs []error
	n := 0
	for i, doc := range bytes.Split(b, []byte("\n---")) {
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		n++
		if err := validateDoc(doc); err != nil {
			errs = append(errs, fmt.Errorf("document %d: %w", i+1, err))
		}
	}
	return n, errors.Join(errs...)
}

func stripComments(doc []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

func validateDoc(doc []byte) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return err
	}
	var obj any
	switch tm.APIVersion + "/" + tm.Kind {
	case "v1/Namespace":
		obj = &corev1.Namespace{}
	case "v1/Secret":
		obj = &corev1.Secret{}
	case "v1/ConfigMap":
		obj = &corev1.ConfigMap{}
	case "v1/Service":
		obj = &corev1.Service{}
	case "apps/v1/DaemonSet":
		obj = &appsv1.DaemonSet{}
	case "apps/v1/StatefulSet":
		obj = &appsv1.StatefulSet{}
	default:
		return fmt.Errorf("kind %s/%s: not known to this validator", tm.APIVersion, tm.Kind)
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return fmt.Errorf("%s: %w", tm.Kind, err)
	}
	switch o := obj.(type) {
	case *appsv1.DaemonSet:
		return workload(o.Name, o.Spec.Selector, &o.Spec.Template, nil)
	case *appsv1.StatefulSet:
		return workload(o.Name, o.Spec.Selector, &o.Spec.Template, o.Spec.VolumeClaimTemplates)
	}
	return nil
}

// workload checks what the API server would refuse, or what would never become ready.
func workload(name string, sel *metav1.LabelSelector, t *corev1.PodTemplateSpec, claims []corev1.PersistentVolumeClaim) error {
	var errs []error
	if sel == nil || len(sel.MatchLabels) == 0 {
		errs = append(errs, fmt.Errorf("%s: no selector", name))
	} else {
		for k, v := range sel.MatchLabels {
			if t.Labels[k] != v {
				errs = append(errs, fmt.Errorf("%s: selector %s=%s does not match the template's labels", name, k, v))
			}
		}
	}
	vols := map[string]bool{}
	for _, v := range t.Spec.Volumes {
		vols[v.Name] = true
	}
	for _, c := range claims {
		vols[c.Name] = true
	}
	if len(t.Spec.Containers) == 0 {
		errs = append(errs, fmt.Errorf("%s: no containers", name))
	}
	for _, c := range t.Spec.Containers {
		ports := map[string]bool{}
		for _, p := range c.Ports {
			ports[p.Name] = true
		}
		for _, m := range c.VolumeMounts {
			if !vols[m.Name] {
				errs = append(errs, fmt.Errorf("%s/%s: volume mount %q has no volume", name, c.Name, m.Name))
			}
		}
		for what, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
			if p == nil || p.HTTPGet == nil {
				continue
			}
			if port := p.HTTPGet.Port; port.Type == intstr.String && !ports[port.StrVal] {
				errs = append(errs, fmt.Errorf("%s/%s: %s probe port %q is not a container port", name, c.Name, what, port.StrVal))
			}
		}
		if c.Image == "" {
			errs = append(errs, fmt.Errorf("%s/%s: no image", name, c.Name))
		}
	}
	return errors.Join(errs...)
}
