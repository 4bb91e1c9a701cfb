package migrate

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/lagscale/lagscale/api/v1alpha1"
)

// TestKeepWorkloadByDefault: without --own a ScaledObject becomes an
// EventConsumer that scales the same workload through spec.scaleTargetRef,
// carries no pod template, and the report says to apply it before deleting
// the ScaledObject.
func TestKeepWorkloadByDefault(t *testing.T) {
	res := convertFile(t, "plain.yaml", Options{})
	if res.Failed() || len(res.Consumers) != 1 {
		t.Fatalf("failed=%t consumers=%d: %+v", res.Failed(), len(res.Consumers), res.Reports[0].Lines)
	}
	ec := consumer(t, res, "invoice-worker")
	want := v1alpha1.ScaleTargetRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "invoice-worker"}
	if ec.Spec.ScaleTargetRef == nil || *ec.Spec.ScaleTargetRef != want {
		t.Errorf("scaleTargetRef %+v, want %+v", ec.Spec.ScaleTargetRef, want)
	}
	if ec.Spec.Template != nil || ec.Spec.Handler != nil || ec.Spec.DeadLetterTopic != "" {
		t.Errorf("a kept workload needs no template, handler or deadLetterTopic: %+v", ec.Spec)
	}
	// The scaling is mapped as with --own.
	if s := ec.Spec.Scaling; *s.LagThreshold != 50 || *s.MaxReplicas != 12 || *s.ScaleDownStabilizationSeconds != 600 {
		t.Errorf("scaling %+v", s)
	}
	r := res.Reports[0]
	if l := line(t, r, "spec.scaleTargetRef"); l.Outcome != Mapped || !strings.Contains(l.Detail, "Apply this EventConsumer, then delete the ScaledObject") || !strings.Contains(l.Detail, "ScaleTargetConflict") {
		t.Errorf("scaleTargetRef line %+v", l)
	}
	if l := line(t, r, "Deployment invoice-worker spec.replicas"); l.Outcome != Approximated || !strings.Contains(l.Detail, "remove replicas from the manifest") {
		t.Errorf("replicas line %+v", l)
	}

	var out, report bytes.Buffer
	if err := WriteYAML(&out, res); err != nil {
		t.Fatal(err)
	}
	// Only the scaleTargetRef, indented, names the Deployment: no object of
	// the stream is one.
	if regexp.MustCompile(`(?m)^kind: Deployment`).MatchString(out.String()) || strings.Contains(out.String(), "template:") {
		t.Errorf("the output touches the Deployment:\n%s", out.String())
	}
	if err := WriteReport(&report, res); err != nil {
		t.Fatal(err)
	}
	rep := report.String()
	apply, del := strings.Index(rep, "kubectl apply"), strings.Index(rep, "kubectl delete scaledobject -n billing invoice-worker")
	if apply < 0 || del < 0 || apply > del {
		t.Errorf("the report does not say to apply the EventConsumer, then delete the ScaledObject:\n%s", rep)
	}
}

// TestKeepWorkloadTargets covers the targets and inputs of the default
// mode: any kind is kept, the Deployment is needed only for *FromEnv.
func TestKeepWorkloadTargets(t *testing.T) {
	const deploy = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: w, namespace: ns}
spec:
  replicas: 3
  selector: {matchLabels: {app: w}}
  template:
    metadata: {labels: {app: w}}
    spec:
      containers:
        - {name: sidecar, image: proxy:1}
        - {name: w, image: w:1, env: [{name: BROKERS, value: "k-0:9092,k-1:9092"}]}
---
`
	so := func(target, metadata string) string {
		return `
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: w, namespace: ns}
spec:
  scaleTargetRef: ` + target + `
  advanced: {restoreToOriginalReplicaCount: true}
  triggers:
    - {type: kafka, metadata: ` + metadata + `}
`
	}
	const literal = `{bootstrapServers: "k:9092", consumerGroup: g, topic: t}`
	const fromEnv = `{bootstrapServersFromEnv: BROKERS, consumerGroup: g, topic: t}`
	tests := []struct {
		name    string
		doc     string
		want    v1alpha1.ScaleTargetRef
		brokers int
		failed  string // the essential line's field, when the migration must fail
	}{
		{name: "Deployment not in the input", doc: so("{name: w}", literal), want: v1alpha1.ScaleTargetRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "w"}, brokers: 1},
		{name: "StatefulSet", doc: so("{name: w, kind: StatefulSet}", literal), want: v1alpha1.ScaleTargetRef{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "w"}, brokers: 1},
		{name: "Argo Rollout", doc: so("{name: w, apiVersion: argoproj.io/v1alpha1, kind: Rollout}", literal), want: v1alpha1.ScaleTargetRef{APIVersion: "argoproj.io/v1alpha1", Kind: "Rollout", Name: "w"}, brokers: 1},
		{name: "FromEnv read from the Deployment", doc: deploy + so("{name: w, envSourceContainerName: w}", fromEnv), want: v1alpha1.ScaleTargetRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "w"}, brokers: 2},
		{name: "FromEnv without the Deployment", doc: so("{name: w}", fromEnv), failed: "spec.triggers[0].metadata.bootstrapServersFromEnv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := convertString(t, tt.doc, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if tt.failed != "" {
				if l := line(t, res.Reports[0], tt.failed); !res.Failed() || !l.Essential || !strings.Contains(l.Detail, "--from-cluster") {
					t.Fatalf("want a failed migration naming --from-cluster at %s, got failed=%t %+v", tt.failed, res.Failed(), l)
				}
				return
			}
			if res.Failed() {
				t.Fatalf("failed: %+v", res.Reports[0].Lines)
			}
			ec := consumer(t, res, "w")
			if ec.Spec.ScaleTargetRef == nil || *ec.Spec.ScaleTargetRef != tt.want || ec.Spec.Template != nil {
				t.Errorf("scaleTargetRef %+v template %v, want %+v and no template", ec.Spec.ScaleTargetRef, ec.Spec.Template, tt.want)
			}
			if n := len(ec.Spec.Kafka.BootstrapServers); n != tt.brokers {
				t.Errorf("%d bootstrap servers, want %d", n, tt.brokers)
			}
			if l := line(t, res.Reports[0], "spec.advanced.restoreToOriginalReplicaCount"); l.Outcome != Approximated || !strings.Contains(l.Detail, "current replicas") {
				t.Errorf("restoreToOriginalReplicaCount line %+v", l)
			}
		})
	}
}
