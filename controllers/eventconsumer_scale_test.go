package controllers

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/lag"
)

// TestAutoscalingFollowsKafkaLag drives the whole loop against a real
// broker and API server: records produced -> lag -> more replicas with the
// reason in status.lastScale and an event; group drained -> back to
// minReplicas after the stabilization window.
func TestAutoscalingFollowsKafkaLag(t *testing.T) {
	kafka := startKafka(t, kfake.SeedTopics(6, "clicks"))
	addrs := kafka.ListenAddrs()
	startOperator(t, func(r *EventConsumerReconciler) {
		withEngine(t)(r)
		r.MinScaleInterval = time.Second
	})
	ns := namespace(t)
	createConsumer(t, ns, "clicks", v1alpha1.EventConsumerSpec{
		Topics: []string{"clicks"}, ConsumerGroup: "clicks-group",
		Kafka:   v1alpha1.KafkaConnection{BootstrapServers: addrs},
		Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
		Scaling: v1alpha1.ScalingSpec{
			Policy:                        v1alpha1.PolicyLagThreshold,
			LagThreshold:                  ptrTo[int64](25),
			MaxReplicas:                   ptrTo[int32](5),
			PollIntervalSeconds:           ptrTo[int32](1),
			ScaleDownStabilizationSeconds: ptrTo[int32](3),
			OffsetResetPolicy:             v1alpha1.OffsetResetEarliest,
		},
	})
	dep := waitDeployment(t, ns, "clicks", nil)
	markReady(t, dep)

	// 80 records, never consumed: ceil(80/25) = 4 replicas.
	prod := kafkaClient(t, addrs, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for p := int32(0); p < 4; p++ {
		produceN(t, prod, "clicks", p, 20)
	}
	waitDeployment(t, ns, "clicks", func(d *appsv1.Deployment) error {
		if *d.Spec.Replicas != 4 {
			return fmt.Errorf("replicas %d, want 4", *d.Spec.Replicas)
		}
		return nil
	})
	// Status trails the Deployment write by the deferred patch.
	eventually(t, wait, func() error {
		got := getConsumer(t, ns, "clicks")
		ls := got.Status.LastScale
		if ls == nil || ls.From != 1 || ls.To != 4 || !strings.Contains(ls.Reason, "80") {
			return fmt.Errorf("lastScale %+v, want 1 -> 4 with the lag in the reason", ls)
		}
		if got.Status.DesiredReplicas != 4 {
			return fmt.Errorf("desiredReplicas %d, want 4", got.Status.DesiredReplicas)
		}
		return nil
	})
	eventually(t, wait, func() error {
		list := &corev1.EventList{}
		if err := env.Client.List(context.Background(), list); err != nil {
			return err
		}
		for _, e := range list.Items {
			if e.Namespace == ns && e.Reason == v1alpha1.EventScaledUp && strings.Contains(e.Message, "1 -> 4") {
				return nil
			}
		}
		return fmt.Errorf("no ScaledUp event")
	})

	// The group catches up: commit every end offset.
	adm := kadm.NewClient(kafkaClient(t, addrs))
	ends, err := adm.ListEndOffsets(context.Background(), "clicks")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CommitOffsets(context.Background(), "clicks-group", ends.Offsets()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitDeployment(t, ns, "clicks", func(d *appsv1.Deployment) error {
		if *d.Spec.Replicas != 1 {
			return fmt.Errorf("replicas %d, want back to minReplicas 1", *d.Spec.Replicas)
		}
		return nil
	})
	// Not before the 3 s window: scale-down waits it out.
	if time.Since(start) < 2*time.Second {
		t.Errorf("scaled down after %s, before the stabilization window", time.Since(start))
	}
	// The Deployment is written before the deferred status patch, so the
	// status may trail it by one write.
	eventually(t, wait, func() error {
		if ls := getConsumer(t, ns, "clicks").Status.LastScale; ls == nil || ls.From != 4 || ls.To != 1 {
			return fmt.Errorf("lastScale %+v, want 4 -> 1", ls)
		}
		return nil
	})
}

// TestStaleLagHoldsReplicas uses a fake lag source to show that a failing
// Kafka never scales down: the decision holds the current count.
func TestStaleLagHoldsReplicas(t *testing.T) {
	fake := &fakeLag{snaps: map[lag.ConsumerKey]lag.Snapshot{}}
	startOperator(t, func(r *EventConsumerReconciler) { r.Lag = fake; r.MinScaleInterval = time.Second })
	ns := namespace(t)
	key := lag.ConsumerKey{Namespace: ns, Name: "held"}
	fake.set(key, lag.Snapshot{Time: time.Now(), Reachable: true, PartitionCount: 8, TotalLag: 8000, GroupState: "Stable", Members: 1})
	createConsumer(t, ns, "held", v1alpha1.EventConsumerSpec{
		Topics: []string{"t"}, ConsumerGroup: "g",
		Kafka:   v1alpha1.KafkaConnection{BootstrapServers: []string{"k:9092"}},
		Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
		Scaling: v1alpha1.ScalingSpec{Policy: v1alpha1.PolicyLagThreshold, MinReplicas: ptrTo[int32](0), ScaleDownStabilizationSeconds: ptrTo[int32](0)},
	})
	waitDeployment(t, ns, "held", func(d *appsv1.Deployment) error {
		if *d.Spec.Replicas != 8 {
			return fmt.Errorf("replicas %d, want 8", *d.Spec.Replicas)
		}
		return nil
	})
	// Kafka goes away. The engine keeps the last good figures with the
	// stale flag; here they say the lag is gone, which on fresh data would
	// scale to zero at once (minReplicas 0, no stabilization). Only the
	// staleness can hold the replicas.
	idle := lag.Snapshot{Time: time.Now(), Stale: true, Reachable: false, Error: "dial tcp: connection refused",
		PartitionCount: 8, GroupState: "Stable", Members: 8}
	for p := range 8 {
		idle.Partitions = append(idle.Partitions, lag.PartitionLag{Topic: "t", Partition: int32(p), CommittedOffset: 1000, EndOffset: 1000, HasCommit: true, Health: lag.HealthOK})
	}
	fake.set(key, idle)
	// A spec change forces a reconcile on the stale data.
	eventually(t, wait, func() error {
		cur := getConsumer(t, ns, "held")
		cur.Spec.Handler.Image = "handler:2"
		return env.Client.Update(context.Background(), cur)
	})
	waitDeployment(t, ns, "held", func(d *appsv1.Deployment) error {
		if handlerContainer(d).Image != "handler:2" {
			return fmt.Errorf("not reconciled yet")
		}
		if *d.Spec.Replicas != 8 {
			t.Fatalf("replicas %d during a Kafka outage, want 8 held", *d.Spec.Replicas)
		}
		return nil
	})
	// And it keeps holding on later looks at the stale data: the
	// minimum interval (1 s) has passed by then, and the reconciler
	// requeues a hold after the poll interval (5 s).
	for range 8 {
		time.Sleep(time.Second)
		if got := replicasOf(t, ns, "held"); got != 8 {
			t.Fatalf("replicas %d during a Kafka outage, want 8 held", got)
		}
	}
}

// fakeLag is a LagSource with snapshots set by the test.
type fakeLag struct {
	mu    sync.Mutex
	snaps map[lag.ConsumerKey]lag.Snapshot
}

func (f *fakeLag) set(k lag.ConsumerKey, s lag.Snapshot) {
	f.mu.Lock()
	f.snaps[k] = s
	f.mu.Unlock()
}
func (f *fakeLag) Register(lag.Subscription)  {}
func (f *fakeLag) Unregister(lag.ConsumerKey) {}
func (f *fakeLag) PollNow(lag.ConsumerKey)    {}
func (f *fakeLag) Snapshot(k lag.ConsumerKey) (lag.Snapshot, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.snaps[k]
	return s, ok
}
func (f *fakeLag) ClusterStatus(string) (lag.ClusterStatus, bool) { return lag.ClusterStatus{}, false }

// TestHeldScaleDownIsTakenByThePolls: a scale-down held by a stabilization
// window longer than the lag engine's rate window is applied when the
// window has run out, although by then the snapshots no longer change: the
// engine's unchanged polls bring the consumer back to its decision
// (LagUnchanged), in place of a requeue of every held consumer at every
// poll.
func TestHeldScaleDownIsTakenByThePolls(t *testing.T) {
	kafka := startKafka(t, kfake.SeedTopics(4, "held"))
	addrs := kafka.ListenAddrs()
	startOperator(t, func(r *EventConsumerReconciler) {
		withEngine(t)(r)
		r.MinScaleInterval = time.Second
	})
	ns := namespace(t)
	createConsumer(t, ns, "held", v1alpha1.EventConsumerSpec{
		Topics: []string{"held"}, ConsumerGroup: "held-group",
		Kafka:   v1alpha1.KafkaConnection{BootstrapServers: addrs},
		Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
		Scaling: v1alpha1.ScalingSpec{
			Policy:                        v1alpha1.PolicyLagThreshold,
			LagThreshold:                  ptrTo[int64](10),
			PollIntervalSeconds:           ptrTo[int32](1),
			ScaleDownStabilizationSeconds: ptrTo[int32](15),
			OffsetResetPolicy:             v1alpha1.OffsetResetEarliest,
		},
	})
	markReady(t, waitDeployment(t, ns, "held", nil))
	prod := kafkaClient(t, addrs, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for p := int32(0); p < 4; p++ {
		produceN(t, prod, "held", p, 20)
	}
	waitDeployment(t, ns, "held", func(d *appsv1.Deployment) error {
		if *d.Spec.Replicas != 4 {
			return fmt.Errorf("replicas %d, want 4", *d.Spec.Replicas)
		}
		return nil
	})
	adm := kadm.NewClient(kafkaClient(t, addrs))
	ends, err := adm.ListEndOffsets(context.Background(), "held")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CommitOffsets(context.Background(), "held-group", ends.Offsets()); err != nil {
		t.Fatal(err)
	}
	waitDeployment(t, ns, "held", func(d *appsv1.Deployment) error {
		if *d.Spec.Replicas != 1 {
			return fmt.Errorf("replicas %d, want 1 once the 15 s window has passed", *d.Spec.Replicas)
		}
		return nil
	})
}
