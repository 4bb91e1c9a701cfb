package controllers

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/testenv"
	"github.com/lagscale/lagscale/internal/testkit"
)

// scalingLimited returns the consumer's ScalingLimited condition, nil when
// there is none.
func scalingLimited(t *testing.T, ns, name string) *metav1.Condition {
	return meta.FindStatusCondition(getConsumer(t, ns, name).Status.Conditions, v1alpha1.ConditionScalingLimited)
}

// hasEvent reports whether the namespace has an event of type and reason
// whose message contains part.
func hasEvent(t *testing.T, ns, eventType, reason, part string) error {
	list := &corev1.EventList{}
	if err := env.Client.List(context.Background(), list); err != nil {
		return err
	}
	for _, e := range list.Items {
		if e.Namespace == ns && e.Type == eventType && e.Reason == reason && strings.Contains(e.Message, part) {
			return nil
		}
	}
	var seen []string
	for _, e := range list.Items {
		if e.Namespace == ns {
			seen = append(seen, e.Type+"/"+e.Reason+": "+e.Message)
		}
	}
	return fmt.Errorf("no %s event %s containing %q among %q", eventType, reason, part, seen)
}

// holdReplicas checks that the Deployment keeps want replicas over several
// polls (the engine polls every second here).
func holdReplicas(t *testing.T, ns, name string, want int32, why string) {
	t.Helper()
	for range 5 {
		time.Sleep(time.Second)
		if got := replicasOf(t, ns, name); got != want {
			t.Fatalf("replicas %d %s, want %d held", got, why, want)
		}
	}
}

// TestPartialLagDataHoldsReplicas is the measured bug: two topics of 6
// partitions, no maxReplicas, LagThreshold at 12 replicas; one topic turns
// TOPIC_AUTHORIZATION_FAILED. Replicas hold at 12, the status names the
// topic and the error, and recovery clears it.
func TestPartialLagDataHoldsReplicas(t *testing.T) {
	kafka := startKafka(t, kfake.SeedTopics(6, "a", "b"))
	addrs := kafka.ListenAddrs()
	prod := kafkaClient(t, addrs, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for _, topic := range []string{"a", "b"} {
		for p := int32(0); p < 6; p++ {
			produceN(t, prod, topic, p, 25)
		}
	}
	startOperator(t, func(r *EventConsumerReconciler) { withEngine(t)(r); r.MinScaleInterval = time.Second })
	ns := namespace(t)
	createConsumer(t, ns, "partial", v1alpha1.EventConsumerSpec{
		Topics: []string{"a", "b"}, ConsumerGroup: "partial",
		Kafka:   v1alpha1.KafkaConnection{BootstrapServers: addrs},
		Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
		Scaling: v1alpha1.ScalingSpec{
			Policy: v1alpha1.PolicyLagThreshold, LagThreshold: ptrTo[int64](25), MinReplicas: ptrTo[int32](0),
			PollIntervalSeconds: ptrTo[int32](1), ScaleDownStabilizationSeconds: ptrTo[int32](0),
			OffsetResetPolicy: v1alpha1.OffsetResetEarliest,
		},
	})
	waitDeployment(t, ns, "partial", func(d *appsv1.Deployment) error {
		if *d.Spec.Replicas != 12 {
			return fmt.Errorf("replicas %d, want 12", *d.Spec.Replicas)
		}
		return nil
	})

	fault := kafka.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Metadata}, Topic: "b", Err: kerr.TopicAuthorizationFailed, Count: -1})
	eventually(t, wait, func() error {
		c := scalingLimited(t, ns, "partial")
		if c == nil || c.Status != metav1.ConditionTrue || c.Reason != v1alpha1.ReasonPartialLagData {
			return fmt.Errorf("ScalingLimited %+v, want True PartialLagData", c)
		}
		if !strings.Contains(c.Message, "b (") || !strings.Contains(c.Message, "TOPIC_AUTHORIZATION_FAILED") {
			return fmt.Errorf("message %q does not name topic b and the error", c.Message)
		}
		l := getConsumer(t, ns, "partial").Status.Lag
		if l == nil || len(l.Unreadable) != 1 || l.Unreadable[0].Topic != "b" || !strings.Contains(l.Unreadable[0].Error, "TOPIC_AUTHORIZATION_FAILED") {
			return fmt.Errorf("status.lag.unreadable %+v, want topic b with the error", l)
		}
		return hasEvent(t, ns, EventWarningType, v1alpha1.EventScalingLimited, v1alpha1.ReasonPartialLagData)
	})
	if r, _ := readyCondition(t, ns, "partial"); r == nil || r.Reason == v1alpha1.ReasonReady {
		t.Errorf("Ready %+v: kubectl get would say plain Ready", r)
	}
	// Topic a alone asks for 6 and its partitions would clamp to 6.
	holdReplicas(t, ns, "partial", 12, "while topic b cannot be read")

	fault.Remove()
	eventually(t, wait, func() error {
		c := scalingLimited(t, ns, "partial")
		if c == nil || c.Status != metav1.ConditionFalse {
			return fmt.Errorf("ScalingLimited %+v, want False after recovery", c)
		}
		if l := getConsumer(t, ns, "partial").Status.Lag; l == nil || len(l.Unreadable) != 0 {
			return fmt.Errorf("status.lag.unreadable %+v after recovery", l)
		}
		return hasEvent(t, ns, EventNormalType, v1alpha1.EventScalingUnlimited, v1alpha1.ReasonPartialLagData)
	})
	if got := replicasOf(t, ns, "partial"); got != 12 {
		t.Errorf("replicas %d after recovery, want 12", got)
	}
}

// TestWakeFromZeroWithoutCommits: a group with no committed offsets and
// offsetResetPolicy latest has no lag however much is produced; the
// production alone wakes it.
func TestWakeFromZeroWithoutCommits(t *testing.T) {
	kafka := startKafka(t, kfake.SeedTopics(2, "w"))
	addrs := kafka.ListenAddrs()
	startOperator(t, func(r *EventConsumerReconciler) { withEngine(t)(r); r.MinScaleInterval = time.Second })
	ns := namespace(t)
	createConsumer(t, ns, "wake", v1alpha1.EventConsumerSpec{
		Topics: []string{"w"}, ConsumerGroup: "wake",
		Kafka:   v1alpha1.KafkaConnection{BootstrapServers: addrs},
		Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
		Scaling: v1alpha1.ScalingSpec{
			MinReplicas: ptrTo[int32](0), PollIntervalSeconds: ptrTo[int32](1), ScaleDownStabilizationSeconds: ptrTo[int32](1),
			OffsetResetPolicy: v1alpha1.OffsetResetLatest,
		},
	})
	waitDeployment(t, ns, "wake", func(d *appsv1.Deployment) error {
		if *d.Spec.Replicas != 0 {
			return fmt.Errorf("replicas %d, want 0 while idle", *d.Spec.Replicas)
		}
		return nil
	})
	prod := kafkaClient(t, addrs, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produceN(t, prod, "w", 0, 100)
	produceN(t, prod, "w", 1, 100)
	waitDeployment(t, ns, "wake", func(d *appsv1.Deployment) error {
		if *d.Spec.Replicas != 1 {
			return fmt.Errorf("replicas %d after 200 records on partitions without commits, want 1", *d.Spec.Replicas)
		}
		return nil
	})
	// The status trails the Deployment write by the deferred patch.
	eventually(t, wait, func() error {
		if ls := getConsumer(t, ns, "wake").Status.LastScale; ls == nil || ls.To != 1 || !strings.Contains(ls.Reason, "no committed offset") {
			return fmt.Errorf("lastScale %+v, want 0 -> 1 with the reason saying why", ls)
		}
		return nil
	})
}

// TestHeldAtMaxReplicasSaysSo: time lag above the target with replicas at
// maxReplicas sets ScalingLimited=True AtMaxReplicas with an actionable
// message, a Warning event and a Ready reason other than Ready; the
// condition clears when the lag is back under the target.
func TestHeldAtMaxReplicasSaysSo(t *testing.T) {
	kafka := startKafka(t, kfake.SeedTopics(4, "m"))
	addrs := kafka.ListenAddrs()
	prod := kafkaClient(t, addrs, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for p := int32(0); p < 4; p++ {
		produceN(t, prod, "m", p, 50)
	}
	startOperator(t, func(r *EventConsumerReconciler) { withEngine(t)(r); r.MinScaleInterval = time.Second })
	ns := namespace(t)
	createConsumer(t, ns, "max", v1alpha1.EventConsumerSpec{
		Topics: []string{"m"}, ConsumerGroup: "max",
		Kafka:   v1alpha1.KafkaConnection{BootstrapServers: addrs},
		Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
		Scaling: v1alpha1.ScalingSpec{
			MaxReplicas: ptrTo[int32](2), MaxLagSeconds: ptrTo[int32](2), PollIntervalSeconds: ptrTo[int32](1),
			ScaleDownStabilizationSeconds: ptrTo[int32](1), OffsetResetPolicy: v1alpha1.OffsetResetEarliest,
			// No pod consumes here: the prior is what tells the plan that
			// 200 records need more than 2 replicas within the target.
			ThroughputPerReplica: ptrTo[int64](1),
		},
	})
	dep := waitDeployment(t, ns, "max", func(d *appsv1.Deployment) error {
		if *d.Spec.Replicas != 2 {
			return fmt.Errorf("replicas %d, want 2", *d.Spec.Replicas)
		}
		return nil
	})
	markReady(t, dep)
	eventually(t, wait, func() error {
		c := scalingLimited(t, ns, "max")
		if c == nil || c.Status != metav1.ConditionTrue || c.Reason != v1alpha1.ReasonAtMaxReplicas {
			return fmt.Errorf("ScalingLimited %+v, want True AtMaxReplicas", c)
		}
		if !strings.Contains(c.Message, "raise maxReplicas") {
			return fmt.Errorf("message %q does not say what would help", c.Message)
		}
		if r, _ := readyCondition(t, ns, "max"); r == nil || r.Reason != v1alpha1.ReasonAtMaxReplicas {
			return fmt.Errorf("Ready %+v, want reason AtMaxReplicas for kubectl get", r)
		}
		return hasEvent(t, ns, EventWarningType, v1alpha1.EventScalingLimited, v1alpha1.ReasonAtMaxReplicas)
	})

	// The group catches up.
	adm := kadm.NewClient(kafkaClient(t, addrs))
	ends, err := adm.ListEndOffsets(context.Background(), "m")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CommitOffsets(context.Background(), "max", ends.Offsets()); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, func() error {
		c := scalingLimited(t, ns, "max")
		if c == nil || c.Status != metav1.ConditionFalse {
			return fmt.Errorf("ScalingLimited %+v, want False with the lag under the target", c)
		}
		return hasEvent(t, ns, EventNormalType, v1alpha1.EventScalingUnlimited, v1alpha1.ReasonAtMaxReplicas)
	})
}

// exampleHandler builds examples/handler once for the package's tests.
func exampleHandler(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "handler")
	cmd := exec.Command("go", "build", "-o", bin, "./examples/handler")
	cmd.Dir = testenv.Root()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building examples/handler (needs the go tool on PATH): %v\n%s", err, out)
	}
	return bin
}

// TestStuckPartitionDoesNotRaiseReplicas runs the example handler with
// FAIL_EVERY and no dead-letter topic: it stops the partition with the
// failing record and consumes the others. LagThreshold would ask for one
// replica per 10 records of the stuck partition's lag; the stuck partition
// is left out, so the group stays at what the others need.
func TestStuckPartitionDoesNotRaiseReplicas(t *testing.T) {
	kafka := startKafka(t, kfake.SeedTopics(6, "s"))
	addrs := kafka.ListenAddrs()
	prod := kafkaClient(t, addrs, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produceN(t, prod, "s", 0, 100) // offset 49 fails: 51 records stuck
	for p := int32(1); p < 6; p++ {
		produceN(t, prod, "s", p, 20)
	}
	bin := exampleHandler(t)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"KAFKA_BOOTSTRAP_SERVERS="+strings.Join(addrs, ","), "KAFKA_TOPICS=s", "KAFKA_CONSUMER_GROUP=stuck",
		"KAFKA_SECURITY_PROTOCOL=PLAINTEXT", "KAFKA_AUTO_OFFSET_RESET=earliest", "LAGSCALE_CONSUMER=default/stuck",
		"LAGSCALE_HTTP_ADDR=127.0.0.1:0", "FAIL_EVERY=50")
	testkit.Start(t, cmd)

	reg := prometheus.NewRegistry()
	op := startOperator(t, func(r *EventConsumerReconciler) {
		withEngine(t)(r)
		r.MinScaleInterval = time.Second
		r.Metrics = NewMetrics(reg)
	})
	ns := namespace(t)
	// Paused while the lag engine gathers the window that health is
	// judged over: before it, no partition can be called stuck.
	createConsumer(t, ns, "stuck", v1alpha1.EventConsumerSpec{
		Topics: []string{"s"}, ConsumerGroup: "stuck",
		Kafka:   v1alpha1.KafkaConnection{BootstrapServers: addrs},
		Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
		Scaling: v1alpha1.ScalingSpec{
			Policy: v1alpha1.PolicyLagThreshold, LagThreshold: ptrTo[int64](10), PollIntervalSeconds: ptrTo[int32](1),
			ScaleDownStabilizationSeconds: ptrTo[int32](1), OffsetResetPolicy: v1alpha1.OffsetResetEarliest, Paused: true,
		},
	})
	eventually(t, 60*time.Second, func() error {
		l := getConsumer(t, ns, "stuck").Status.Lag
		if l == nil {
			return fmt.Errorf("no lag yet")
		}
		for _, p := range l.Partitions {
			if p.Partition == 0 && p.Health == "STALL" && p.Lag == 51 && l.Total == 51 {
				return nil
			}
		}
		return fmt.Errorf("lag %d, partitions %+v: want partition 0 STALL with 51 records and the rest consumed", l.Total, l.Partitions)
	})
	eventually(t, wait, func() error {
		cur := getConsumer(t, ns, "stuck")
		cur.Spec.Scaling.Paused = false
		return env.Client.Update(context.Background(), cur)
	})
	holdReplicas(t, ns, "stuck", 1, "with one stuck partition and nothing else to consume")
	eventually(t, wait, func() error {
		c := scalingLimited(t, ns, "stuck")
		if c == nil || c.Status != metav1.ConditionTrue || c.Reason != v1alpha1.ReasonStuckPartitions || !strings.Contains(c.Message, "s/0") {
			return fmt.Errorf("ScalingLimited %+v, want True StuckPartitions naming s/0", c)
		}
		return nil
	})
	if got := testutil.ToFloat64(op.rec.Metrics.stalled.WithLabelValues(ns, "stuck")); got != 1 {
		t.Errorf("lagscale_consumer_partitions_stalled %v, want 1", got)
	}
}
