package migrate

import (
	"fmt"
	"regexp"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lagscale/lagscale/api/v1alpha1"
)

// scaleTarget finds the Deployment the ScaledObject scales and the
// container KEDA reads environment from.
//
// Unless own, any kind can be scaled and the Deployment is needed only to
// resolve *FromEnv parameters, so its absence is no error here.
func scaleTarget(so *ScaledObject, in *Input, own bool, rep *Report) (*appsv1.Deployment, string) {
	ref := so.Spec.ScaleTargetRef
	if ref == nil || ref.Name == "" {
		rep.essential("spec.scaleTargetRef", "missing: name the workload the ScaledObject scales")
		return nil, ""
	}
	if !own {
		if (ref.Kind != "" && ref.Kind != "Deployment") || (ref.APIVersion != "" && ref.APIVersion != "apps/v1") {
			return nil, ref.EnvSourceContainerName
		}
		d, ok := in.Deployments[so.Namespace+"/"+ref.Name]
		if !ok && so.Namespace != "" {
			d = in.Deployments["/"+ref.Name]
		}
		return d, ref.EnvSourceContainerName
	}
	if (ref.Kind != "" && ref.Kind != "Deployment") || (ref.APIVersion != "" && ref.APIVersion != "apps/v1") {
		rep.essential("spec.scaleTargetRef", "%s %s: lagscale runs handlers as a Deployment it owns; only a Deployment can become an EventConsumer", ref.Kind, ref.Name)
		return nil, ""
	}
	d, ok := in.Deployments[so.Namespace+"/"+ref.Name]
	if !ok && so.Namespace != "" {
		d, ok = in.Deployments["/"+ref.Name]
	}
	if !ok {
		rep.essential("spec.scaleTargetRef", "Deployment %s is not in the input: add its manifest with -f, or use --from-cluster", ref.Name)
		return nil, ""
	}
	return d, ref.EnvSourceContainerName
}

// envValue returns a literal environment variable of the container KEDA
// reads from (the named one, else the first).
func envValue(d *appsv1.Deployment, container, name string) (string, bool) {
	if d == nil {
		return "", false
	}
	cs := d.Spec.Template.Spec.Containers
	for i := range cs {
		if (container == "" && i == 0) || cs[i].Name == container {
			for _, e := range cs[i].Env {
				if e.Name == name && e.ValueFrom == nil {
					return e.Value, true
				}
			}
		}
	}
	return "", false
}

// keepWorkload points the EventConsumer at the workload the ScaledObject
// scales: lagscale then sets its replicas and nothing else, so the team
// keeps deploying it as before.
func keepWorkload(so *ScaledObject, d *appsv1.Deployment, ec *v1alpha1.EventConsumer, rep *Report) {
	ref := so.Spec.ScaleTargetRef
	if ref == nil || ref.Name == "" {
		return // reported by scaleTarget
	}
	apiVersion, kind := ref.APIVersion, ref.Kind
	if apiVersion == "" {
		apiVersion = "apps/v1" // KEDA's default, written out
	}
	if kind == "" {
		kind = "Deployment"
	}
	ec.Spec.ScaleTargetRef = &v1alpha1.ScaleTargetRef{APIVersion: apiVersion, Kind: kind, Name: ref.Name}
	rep.add("spec.scaleTargetRef", Mapped, "spec.scaleTargetRef %s %s %s: lagscale sets its replicas through the scale subresource and changes nothing else in it. Apply this EventConsumer, then delete the ScaledObject: until the ScaledObject and its HPA are gone the EventConsumer is Ready=False ScaleTargetConflict and writes nothing, then it takes over by itself", apiVersion, kind, ref.Name)
	if ref.EnvSourceContainerName != "" {
		rep.add("spec.scaleTargetRef.envSourceContainerName", Mapped, "used only to read *FromEnv parameters from container %s; lagscale injects nothing into the workload", ref.EnvSourceContainerName)
	}
	if d != nil && d.Spec.Replicas != nil {
		rep.add(fmt.Sprintf("Deployment %s spec.replicas", d.Name), Approximated, "lagscale sets replicas from now on: remove replicas from the manifest your deployment tool applies (Helm chart, Argo CD, Flux), as for an HPA, or it and lagscale take turns")
	}
}

// contractNames are the variables lagscale injects; the workload's own
// values for them are dropped, since spec.kafka now states them.
var contractNames = regexp.MustCompile(`^(KAFKA_(BOOTSTRAP_SERVERS|TOPICS|CONSUMER_GROUP|SECURITY_PROTOCOL|SASL_MECHANISM|SASL_USERNAME|SASL_PASSWORD|TLS_CA_FILE|TLS_CERT_FILE|TLS_KEY_FILE|TLS_INSECURE_SKIP_VERIFY|AUTO_OFFSET_RESET|GROUP_TYPE)|LAGSCALE_[A-Z_]+)$`)

// mapDeployment makes the Deployment's pod template the EventConsumer's.
func mapDeployment(so *ScaledObject, d *appsv1.Deployment, container string, ec *v1alpha1.EventConsumer, rep *Report) {
	tmpl := d.Spec.Template.DeepCopy()
	tmpl.CreationTimestamp = metav1.Time{}
	cs := tmpl.Spec.Containers
	idx := -1
	for i := range cs {
		if cs[i].Name == "handler" {
			idx = i
		}
	}
	if container != "" {
		for i := range cs {
			if cs[i].Name == container && idx != i {
				if idx >= 0 {
					rep.add("spec.scaleTargetRef.envSourceContainerName", Approximated, "lagscale injects the Kafka environment into the container named handler, not %s", container)
				} else if i != 0 {
					cs[0], cs[i] = cs[i], cs[0]
					rep.add("spec.scaleTargetRef.envSourceContainerName", Approximated, "container %s moved first: lagscale injects the Kafka environment into the container named handler, else the first", container)
				}
			}
		}
	}
	if idx < 0 {
		idx = 0
	}
	if len(cs) > 0 {
		var keep []corev1.EnvVar
		for _, e := range cs[idx].Env {
			if contractNames.MatchString(e.Name) {
				rep.add(fmt.Sprintf("Deployment %s container %s env %s", d.Name, cs[idx].Name, e.Name), Approximated, "dropped: lagscale injects it from the EventConsumer's spec")
				continue
			}
			keep = append(keep, e)
		}
		cs[idx].Env = keep
	}
	ec.Spec.Template = tmpl
	rep.add("spec.scaleTargetRef", Mapped, "Deployment %s's pod template is spec.template; lagscale creates and owns the Deployment %s from it", d.Name, ec.Name)
	if d.Spec.Replicas != nil {
		rep.add(fmt.Sprintf("Deployment %s spec.replicas", d.Name), Mapped, "not copied: lagscale sets replicas")
	}
	if d.Spec.Strategy.Type != "" || d.Spec.MinReadySeconds != 0 || d.Spec.RevisionHistoryLimit != nil || d.Spec.ProgressDeadlineSeconds != nil {
		rep.add(fmt.Sprintf("Deployment %s spec.strategy, minReadySeconds, revisionHistoryLimit, progressDeadlineSeconds", d.Name), Unsupported, "an EventConsumer carries the pod template only; lagscale's Deployment uses the defaults")
	}
}
