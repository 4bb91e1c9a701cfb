package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/lag"
)

// TestPartialFromTheStartIsBounded: topic b cannot be read from the first
// poll (Metadata and ListOffsets refused), topic a holds 6,000 records
// that at lagThreshold 10 ask for 600 replicas, and there is no
// maxReplicas. The group was never seen complete, so a scale-up is bounded
// by the 6 partitions that can be read: replicas reach 6 and never more.
func TestPartialFromTheStartIsBounded(t *testing.T) {
	kafka := startKafka(t, kfake.SeedTopics(6, "a", "b"))
	kafka.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Metadata, kmsg.ListOffsets}, Topic: "b", Err: kerr.TopicAuthorizationFailed, Count: -1})
	addrs := kafka.ListenAddrs()
	prod := kafkaClient(t, addrs, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for p := int32(0); p < 6; p++ {
		produceN(t, prod, "a", p, 1000)
	}
	startOperator(t, func(r *EventConsumerReconciler) { withEngine(t)(r); r.MinScaleInterval = time.Second })
	ns := namespace(t)
	createConsumer(t, ns, "bounded", v1alpha1.EventConsumerSpec{
		Topics: []string{"a", "b"}, ConsumerGroup: "bounded",
		Kafka:   v1alpha1.KafkaConnection{BootstrapServers: addrs},
		Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
		Scaling: v1alpha1.ScalingSpec{
			Policy: v1alpha1.PolicyLagThreshold, LagThreshold: ptrTo[int64](10), MinReplicas: ptrTo[int32](1),
			PollIntervalSeconds: ptrTo[int32](1), OffsetResetPolicy: v1alpha1.OffsetResetEarliest,
		},
	})
	waitDeployment(t, ns, "bounded", func(d *appsv1.Deployment) error {
		if *d.Spec.Replicas > 6 {
			t.Fatalf("replicas %d on partial data, want at most the 6 readable partitions", *d.Spec.Replicas)
		}
		if *d.Spec.Replicas != 6 {
			return fmt.Errorf("replicas %d, want 6", *d.Spec.Replicas)
		}
		return nil
	})
	eventually(t, wait, func() error {
		c := scalingLimited(t, ns, "bounded")
		if c == nil || c.Reason != v1alpha1.ReasonPartialLagData {
			return fmt.Errorf("ScalingLimited %+v, want PartialLagData", c)
		}
		return nil
	})
	// Every later poll holds the bound.
	holdReplicas(t, ns, "bounded", 6, "on partial data")
}

// admissionCap installs a ValidatingAdmissionPolicy that refuses
// Deployments of more than most replicas in ns, and returns a function
// that removes its binding.
func admissionCap(t *testing.T, ns string, most int) (message string, unbind func()) {
	t.Helper()
	ctx := context.Background()
	message = fmt.Sprintf("replicas above %d are refused by the test's policy", most)
	policy := &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "cap-" + ns},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptrTo(admissionv1.Fail),
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionv1.RuleWithOperations{
					Operations: []admissionv1.OperationType{admissionv1.Create, admissionv1.Update},
					Rule:       admissionv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments"}},
				},
			}}},
			Validations: []admissionv1.Validation{{
				Expression: fmt.Sprintf("object.spec.replicas <= %d", most),
				Message:    message,
			}},
		},
	}
	binding := &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "cap-" + ns},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        policy.Name,
			ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
			MatchResources: &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns},
			}},
		},
	}
	if err := env.Client.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), policy) })
	if err := env.Client.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}
	removed := false
	unbind = func() {
		if removed {
			return
		}
		removed = true
		if err := env.Client.Delete(context.Background(), binding); err != nil {
			t.Errorf("delete binding: %v", err)
		}
	}
	t.Cleanup(unbind)
	return message, unbind
}

// TestRefusedWriteIsNotRecorded: a ValidatingAdmissionPolicy refuses
// Deployments of more than 2 replicas. The scale-up to 8 that the lag asks
// for is refused: status.lastScale does not claim it, Ready is False with
// reason DeploymentWriteFailed and the policy's message, and a Warning
// event carries it too. Once the binding is gone the scale happens with
// the next reconcile, although the minimum interval since the refused
// attempt has not passed.
func TestRefusedWriteIsNotRecorded(t *testing.T) {
	fake := &fakeLag{snaps: map[lag.ConsumerKey]lag.Snapshot{}}
	op := startOperator(t, func(r *EventConsumerReconciler) { r.Lag = fake; r.MinScaleInterval = time.Hour })
	ns := namespace(t)
	message, unbind := admissionCap(t, ns, 2)
	// The policy takes a moment to be enforced; until then it is not
	// there to refuse anything. Wait for it on a Deployment of our own.
	waitPolicyEnforced(t, ns)

	key := lag.ConsumerKey{Namespace: ns, Name: "capped"}
	createConsumer(t, ns, "capped", v1alpha1.EventConsumerSpec{
		Topics: []string{"t"}, ConsumerGroup: "g",
		Kafka:   v1alpha1.KafkaConnection{BootstrapServers: []string{"k:9092"}},
		Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
		Scaling: v1alpha1.ScalingSpec{Policy: v1alpha1.PolicyLagThreshold, MinReplicas: ptrTo[int32](1)},
	})
	waitDeployment(t, ns, "capped", func(d *appsv1.Deployment) error {
		if *d.Spec.Replicas != 1 {
			return fmt.Errorf("replicas %d, want 1", *d.Spec.Replicas)
		}
		return nil
	})
	fake.set(key, lag.Snapshot{Time: time.Now(), Reachable: true, PartitionCount: 8, TotalLag: 8000, GroupState: "Stable", Members: 1})
	// The lag engine would say so on the next poll; the fake says it now.
	kick := func() { op.rec.LagChanged(key) }
	kick()
	eventually(t, wait, func() error {
		c, ec := readyCondition(t, ns, "capped")
		if c == nil || c.Reason != v1alpha1.ReasonDeploymentWriteFailed || !strings.Contains(c.Message, message) {
			return fmt.Errorf("Ready %+v, want DeploymentWriteFailed with the policy's message", c)
		}
		if ls := ec.Status.LastScale; ls != nil && ls.To == 8 {
			t.Fatalf("status.lastScale %+v claims the refused scale", ls)
		}
		return hasEvent(t, ns, EventWarningType, v1alpha1.EventDeploymentWriteFailed, message)
	})
	if got := replicasOf(t, ns, "capped"); got != 1 {
		t.Fatalf("replicas %d, want 1 while the policy refuses", got)
	}

	// The policy goes; the retry (the controller's error backoff, or the
	// next reconcile) scales at once. The minimum interval is an hour: had
	// the refused attempt been recorded, nothing would move for an hour.
	unbind()
	eventually(t, wait, func() error {
		kick()
		if got := replicasOf(t, ns, "capped"); got != 8 {
			return fmt.Errorf("replicas %d, want 8 once the policy is gone", got)
		}
		ls := getConsumer(t, ns, "capped").Status.LastScale
		if ls == nil || ls.From != 1 || ls.To != 8 {
			return fmt.Errorf("status.lastScale %+v, want 1 -> 8", ls)
		}
		return nil
	})
}

// waitPolicyEnforced waits until the API server refuses a Deployment of 3
// replicas in ns, by a dry-run create.
func waitPolicyEnforced(t *testing.T, ns string) {
	t.Helper()
	eventually(t, wait, func() error {
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "probe"}}
		d.Spec.Replicas = ptrTo[int32](3)
		d.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "probe"}}
		d.Spec.Template.Labels = map[string]string{"app": "probe"}
		d.Spec.Template.Spec.Containers = []corev1.Container{{Name: "probe", Image: "probe:1"}}
		err := env.Client.Create(context.Background(), d, client.DryRunAll)
		if err == nil {
			return fmt.Errorf("a Deployment of 3 replicas is still accepted")
		}
		return nil
	})
}
