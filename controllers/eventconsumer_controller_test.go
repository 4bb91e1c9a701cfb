package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/deploy"
	"github.com/lagscale/lagscale/internal/lag"
	"github.com/lagscale/lagscale/pkg/contract"
)

// wait bounds how long a test waits for an outcome. It is generous: with
// go test running packages side by side on a loaded two-core CI machine, a
// consumer's first reconcile has come after more than 20 s. No test
// asserts a speed with it.
const wait = 60 * time.Second

func getDeployment(t *testing.T, ns, name string) func() (*appsv1.Deployment, error) {
	return func() (*appsv1.Deployment, error) {
		d := &appsv1.Deployment{}
		err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, d)
		return d, err
	}
}

func waitDeployment(t *testing.T, ns, name string, check func(*appsv1.Deployment) error) *appsv1.Deployment {
	t.Helper()
	var dep *appsv1.Deployment
	eventually(t, wait, func() error {
		d, err := getDeployment(t, ns, name)()
		if err != nil {
			return err
		}
		dep = d
		if check != nil {
			return check(d)
		}
		return nil
	})
	return dep
}

func readyCondition(t *testing.T, ns, name string) (*metav1.Condition, *v1alpha1.EventConsumer) {
	ec := &v1alpha1.EventConsumer{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, ec); err != nil {
		return nil, nil
	}
	return meta.FindStatusCondition(ec.Status.Conditions, v1alpha1.ConditionReady), ec
}

func handlerContainer(d *appsv1.Deployment) corev1.Container {
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == deploy.HandlerContainer {
			return c
		}
	}
	return d.Spec.Template.Spec.Containers[0]
}

// markReady plays the deployment controller's part, which envtest does
// not run: it reports every replica ready.
func markReady(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	eventually(t, wait, func() error {
		cur := &appsv1.Deployment{}
		if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(d), cur); err != nil {
			return err
		}
		n := *cur.Spec.Replicas
		cur.Status.Replicas, cur.Status.ReadyReplicas, cur.Status.AvailableReplicas, cur.Status.UpdatedReplicas = n, n, n, n
		cur.Status.ObservedGeneration = cur.Generation
		return env.Client.Status().Update(context.Background(), cur)
	})
}

func TestSamplesCreateDeployments(t *testing.T) {
	startOperator(t, nil)
	ns := namespace(t)
	ctx := context.Background()
	for _, f := range []string{"config/samples/kafka_credentials.yaml", "config/samples/lagscale_v1alpha1_eventconsumer.yaml", "config/samples/lagscale_v1alpha1_kafkacluster.yaml"} {
		for _, u := range readManifests(t, f) {
			u.SetNamespace(ns)
			if err := env.Client.Create(ctx, u); err != nil {
				t.Fatalf("apply %s %s: %v", f, u.GetName(), err)
			}
		}
	}

	ec := &v1alpha1.EventConsumer{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "orders"}, ec); err != nil {
		t.Fatal(err)
	}
	// Defaults come from the API server's schema, not from Go code. The
	// stabilization window has none: unset, the scaler chooses.
	sc := ec.Spec.Scaling
	if *sc.PollIntervalSeconds != 5 || *sc.LagThreshold != 1000 || sc.ScaleDownStabilizationSeconds != nil || sc.OffsetResetPolicy != v1alpha1.OffsetResetLatest ||
		sc.BurstMemorySeconds == nil || *sc.BurstMemorySeconds != v1alpha1.DefaultBurstMemorySeconds {
		t.Errorf("defaults not applied: %+v", sc)
	}

	dep := waitDeployment(t, ns, "orders", nil)
	c := handlerContainer(dep)
	if c.Image != "ghcr.io/lagscale/example-handler:0.1.0" {
		t.Errorf("image %q", c.Image)
	}
	if dep.Labels[deploy.LabelName] != "orders" || dep.Labels[deploy.LabelManagedBy] != "lagscale" {
		t.Errorf("labels %v", dep.Labels)
	}
	if !metav1.IsControlledBy(dep, ec) || !*dep.OwnerReferences[0].BlockOwnerDeletion {
		t.Errorf("owner references %+v", dep.OwnerReferences)
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	wantValues := map[string]string{
		contract.EnvBootstrapServers: "kafka-0.kafka:9093,kafka-1.kafka:9093",
		contract.EnvTopics:           "orders,refunds",
		contract.EnvConsumerGroup:    "orders-handler",
		contract.EnvSecurityProtocol: "SASL_SSL",
		contract.EnvSASLMechanism:    "SCRAM-SHA-512",
		contract.EnvTLSCAFile:        deploy.TLSMountPath + "/ca.crt",
		contract.EnvConsumer:         ns + "/orders",
		contract.EnvDeadLetterTopic:  "orders.dlt",
		"WORK_MS":                    "20",
	}
	for k, v := range wantValues {
		if env[k].Value != v {
			t.Errorf("env %s = %q, want %q", k, env[k].Value, v)
		}
	}
	for k, key := range map[string]string{contract.EnvSASLUsername: "username", contract.EnvSASLPassword: "password"} {
		e := env[k]
		if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef.Name != "kafka-user" || e.ValueFrom.SecretKeyRef.Key != key {
			t.Errorf("%s is not a reference to kafka-user/%s: %+v", k, key, e)
		}
	}
	for _, e := range c.Env {
		if strings.Contains(e.Value, "change-me") {
			t.Errorf("the SASL password was copied into the Deployment in %s", e.Name)
		}
	}
	if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != deploy.TLSMountPath || !c.VolumeMounts[0].ReadOnly {
		t.Errorf("TLS mount %+v", c.VolumeMounts)
	}
	vols := dep.Spec.Template.Spec.Volumes
	if len(vols) != 1 || vols[0].Projected == nil || vols[0].Projected.Sources[0].Secret.Name != "kafka-ca" {
		t.Errorf("TLS volume %+v", vols)
	}

	// The KafkaCluster consumer starts at one replica although minReplicas
	// is 0, and gets the cluster's servers.
	pay := waitDeployment(t, ns, "payments", nil)
	if *pay.Spec.Replicas != 1 {
		t.Errorf("payments replicas %d, want 1", *pay.Spec.Replicas)
	}
	for _, e := range handlerContainer(pay).Env {
		if e.Name == contract.EnvBootstrapServers && e.Value != "kafka-bootstrap.kafka:9092" {
			t.Errorf("payments bootstrap %q", e.Value)
		}
	}

	// Pods ready -> Ready with the printer columns' fields filled.
	markReady(t, dep)
	eventually(t, wait, func() error {
		c, ec := readyCondition(t, ns, "orders")
		if c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("ready condition %+v", c)
		}
		if ec.Status.ReadySummary != "1/1" || ec.Status.Selector != deploy.LabelConsumer+"=orders" || ec.Status.ObservedGeneration != ec.Generation {
			return fmt.Errorf("status %+v", ec.Status)
		}
		return nil
	})
}

func TestDeploymentOwnershipAndRollout(t *testing.T) {
	startOperator(t, nil)
	ns := namespace(t)
	ctx := context.Background()
	ec := createConsumer(t, ns, "roll", v1alpha1.EventConsumerSpec{
		Topics: []string{"t"}, ConsumerGroup: "g",
		Kafka:   v1alpha1.KafkaConnection{BootstrapServers: []string{"localhost:9092"}},
		Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
	})
	waitDeployment(t, ns, "roll", nil)

	// A new image rolls the Deployment.
	patch := client.MergeFrom(ec.DeepCopy())
	ec.Spec.Handler.Image = "handler:2"
	if err := env.Client.Patch(ctx, ec, patch); err != nil {
		t.Fatal(err)
	}
	waitDeployment(t, ns, "roll", func(d *appsv1.Deployment) error {
		if img := handlerContainer(d).Image; img != "handler:2" {
			return fmt.Errorf("image %s", img)
		}
		return nil
	})

	// Someone edits an owned field and adds an annotation of their own.
	eventually(t, wait, func() error {
		d, err := getDeployment(t, ns, "roll")()
		if err != nil {
			return err
		}
		d.Spec.Template.Spec.Containers[0].Image = "hacked:1"
		if d.Annotations == nil {
			d.Annotations = map[string]string{}
		}
		d.Annotations["team.example.com/owner"] = "payments"
		return env.Client.Update(ctx, d)
	})
	waitDeployment(t, ns, "roll", func(d *appsv1.Deployment) error {
		if img := handlerContainer(d).Image; img != "handler:2" {
			return fmt.Errorf("owned field not reverted: image %s", img)
		}
		if d.Annotations["team.example.com/owner"] != "payments" {
			return fmt.Errorf("foreign annotation lost: %v", d.Annotations)
		}
		return nil
	})
}

func TestMissingSecretWaitsThenRecovers(t *testing.T) {
	startOperator(t, nil)
	ns := namespace(t)
	ctx := context.Background()
	createConsumer(t, ns, "waits", v1alpha1.EventConsumerSpec{
		Topics: []string{"t"}, ConsumerGroup: "g",
		Kafka: v1alpha1.KafkaConnection{
			BootstrapServers: []string{"localhost:9092"},
			SASL:             &v1alpha1.SASLConfig{Mechanism: v1alpha1.SASLPlain, SecretRef: v1alpha1.LocalObjectRef{Name: "creds"}},
		},
		Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
	})
	eventually(t, wait, func() error {
		c, ec := readyCondition(t, ns, "waits")
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonSecretNotFound || !strings.Contains(c.Message, `Secret "creds"`) {
			return fmt.Errorf("ready condition %+v", c)
		}
		if s := meta.FindStatusCondition(ec.Status.Conditions, v1alpha1.ConditionStalled); s == nil || s.Status != metav1.ConditionFalse {
			return fmt.Errorf("a wait must not be Stalled: %+v", s)
		}
		return nil
	})
	if _, err := getDeployment(t, ns, "waits")(); err == nil {
		t.Fatal("a Deployment was created before its Secret existed")
	}

	// The Secret appears: the watch brings the consumer to Ready with no
	// other change.
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "creds"},
		StringData: map[string]string{"username": "u", "password": "p"},
	}
	if err := env.Client.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	dep := waitDeployment(t, ns, "waits", nil)
	markReady(t, dep)
	eventually(t, wait, func() error {
		c, _ := readyCondition(t, ns, "waits")
		if c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("ready condition %+v", c)
		}
		return nil
	})
}

func TestMissingKafkaClusterWaits(t *testing.T) {
	startOperator(t, nil)
	ns := namespace(t)
	ctx := context.Background()
	createConsumer(t, ns, "ref", v1alpha1.EventConsumerSpec{
		Topics: []string{"t"}, ConsumerGroup: "g",
		Kafka:   v1alpha1.KafkaConnection{ClusterRef: &v1alpha1.LocalObjectRef{Name: "later"}},
		Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
	})
	eventually(t, wait, func() error {
		c, _ := readyCondition(t, ns, "ref")
		if c == nil || c.Reason != v1alpha1.ReasonClusterNotFound {
			return fmt.Errorf("ready condition %+v", c)
		}
		return nil
	})
	kc := &v1alpha1.KafkaCluster{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "later"}, Spec: v1alpha1.KafkaClusterSpec{BootstrapServers: []string{"k:9092"}}}
	if err := env.Client.Create(ctx, kc); err != nil {
		t.Fatal(err)
	}
	waitDeployment(t, ns, "ref", nil)
	eventually(t, wait, func() error {
		got := &v1alpha1.KafkaCluster{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(kc), got); err != nil {
			return err
		}
		if got.Status.Consumers != 1 {
			return fmt.Errorf("consumers %d", got.Status.Consumers)
		}
		return nil
	})
}

// TestReplicasSurviveOperatorRestart runs the operator with a lag source
// whose lag asks for minReplicas: a restarted operator, whose scaler has no
// history yet, must keep the replicas it finds rather than act on its first
// look.
func TestReplicasSurviveOperatorRestart(t *testing.T) {
	fake := &fakeLag{snaps: map[lag.ConsumerKey]lag.Snapshot{}}
	withFake := func(r *EventConsumerReconciler) { r.Lag = fake; r.MinScaleInterval = time.Second }
	op := startOperator(t, withFake)
	ns := namespace(t)
	ctx := context.Background()
	ec := createConsumer(t, ns, "keep", v1alpha1.EventConsumerSpec{
		Topics: []string{"t"}, ConsumerGroup: "g",
		Kafka:   v1alpha1.KafkaConnection{BootstrapServers: []string{"localhost:9092"}},
		Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
		Scaling: v1alpha1.ScalingSpec{MinReplicas: ptrTo[int32](2), Policy: v1alpha1.PolicyLagThreshold},
	})
	// No lag: LagThreshold recommends 0, bounded to minReplicas 2.
	idle := lag.Snapshot{Time: time.Now(), Reachable: true, PartitionCount: 8, GroupState: "Stable", Members: 5}
	for p := range 8 {
		idle.Partitions = append(idle.Partitions, lag.PartitionLag{Topic: "t", Partition: int32(p), CommittedOffset: 10, EndOffset: 10, HasCommit: true, Health: lag.HealthOK})
	}
	fake.set(lag.ConsumerKey{Namespace: ns, Name: "keep"}, idle)
	waitDeployment(t, ns, "keep", func(d *appsv1.Deployment) error {
		if *d.Spec.Replicas != 2 {
			return fmt.Errorf("replicas %d", *d.Spec.Replicas)
		}
		return nil
	})
	op.stop()

	// An earlier decision of the operator left 5 replicas (written under
	// the operator's field manager, as the autoscaler does).
	eventually(t, wait, func() error {
		d, err := getDeployment(t, ns, "keep")()
		if err != nil {
			return err
		}
		d.Spec.Replicas = ptrTo[int32](5)
		return env.Client.Update(ctx, d, client.FieldOwner(FieldManager))
	})

	startOperator(t, withFake)
	// Touch the spec so the new operator certainly reconciles.
	eventually(t, wait, func() error {
		cur := &v1alpha1.EventConsumer{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(ec), cur); err != nil {
			return err
		}
		cur.Spec.Handler.Image = "handler:2"
		return env.Client.Update(ctx, cur)
	})
	waitDeployment(t, ns, "keep", func(d *appsv1.Deployment) error {
		if handlerContainer(d).Image != "handler:2" {
			return fmt.Errorf("not reconciled yet")
		}
		if *d.Spec.Replicas != 5 {
			t.Fatalf("replicas reset to %d after restart, want 5", *d.Spec.Replicas)
		}
		return nil
	})
	if ls := getConsumer(t, ns, "keep").Status.LastScale; ls != nil && ls.From == 5 {
		t.Fatalf("lastScale %+v: the restarted operator scaled on its first look", ls)
	}
}

// TestKafkaClusterReportsMissingSecret guards that a KafkaCluster whose SASL
// Secret cannot be read says so in its Ready condition, rather than "no
// EventConsumer uses this cluster yet".
func TestKafkaClusterReportsMissingSecret(t *testing.T) {
	startOperator(t, nil)
	ns := namespace(t)
	ctx := context.Background()
	kc := &v1alpha1.KafkaCluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "secured"},
		Spec: v1alpha1.KafkaClusterSpec{
			BootstrapServers: []string{"k:9092"},
			SASL:             &v1alpha1.SASLConfig{Mechanism: v1alpha1.SASLPlain, SecretRef: v1alpha1.LocalObjectRef{Name: "absent"}},
		},
	}
	if err := env.Client.Create(ctx, kc); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, func() error {
		got := &v1alpha1.KafkaCluster{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(kc), got); err != nil {
			return err
		}
		c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady)
		if c == nil || c.Reason != v1alpha1.ReasonSecretNotFound || c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, `"absent"`) {
			return fmt.Errorf("ready condition %+v", c)
		}
		return nil
	})
}
