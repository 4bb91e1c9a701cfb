package migrate

import (
	"testing"
)

// TestDecodeList reads the List that `kubectl get -o yaml` prints.
func TestDecodeList(t *testing.T) {
	doc := `
apiVersion: v1
kind: List
items:
  - apiVersion: keda.sh/v1alpha1
    kind: ScaledObject
    metadata: {name: a, namespace: ns}
    spec:
      scaleTargetRef: {name: a}
      triggers: [{type: kafka, metadata: {bootstrapServers: "k:9092", consumerGroup: g, topic: t}}]
  - apiVersion: apps/v1
    kind: Deployment
    metadata: {name: a, namespace: ns}
    spec:
      selector: {matchLabels: {app: a}}
      template:
        metadata: {labels: {app: a}}
        spec: {containers: [{name: a, image: a:1}]}
`
	res, err := convertString(t, doc, Options{Own: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed() || len(res.Consumers) != 1 || res.Consumers[0].Spec.Template == nil {
		t.Fatalf("failed=%t consumers=%d: %+v", res.Failed(), len(res.Consumers), res.Reports[0].Lines)
	}
}
