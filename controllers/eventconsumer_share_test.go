package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	appsv1 "k8s.io/api/apps/v1"

	"github.com/lagscale/lagscale/api/v1alpha1"
)

// TestShareConsumerScalesPastPartitions: a burst on a share group of a
// two-partition topic scales the Deployment to maxReplicas, four times
// the partition count (a classic group would stop at 2); once a share
// consumer has acknowledged everything it comes back to minReplicas.
func TestShareConsumerScalesPastPartitions(t *testing.T) {
	kafka := startKafka(t, kfake.SeedTopics(2, "jobs"))
	addrs := kafka.ListenAddrs()
	kafka.SetGroupConfigs("jobs-group", map[string]string{"share.auto.offset.reset": "earliest"})
	startOperator(t, func(r *EventConsumerReconciler) {
		withEngine(t)(r)
		r.MinScaleInterval = time.Second
	})
	ns := namespace(t)
	createConsumer(t, ns, "jobs", v1alpha1.EventConsumerSpec{
		Topics: []string{"jobs"}, ConsumerGroup: "jobs-group", GroupType: v1alpha1.GroupTypeShare,
		Kafka:   v1alpha1.KafkaConnection{BootstrapServers: addrs},
		Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
		Scaling: v1alpha1.ScalingSpec{
			Policy:                        v1alpha1.PolicyLagThreshold,
			LagThreshold:                  ptrTo[int64](25),
			MaxReplicas:                   ptrTo[int32](8),
			PollIntervalSeconds:           ptrTo[int32](1),
			ScaleDownStabilizationSeconds: ptrTo[int32](3),
			OffsetResetPolicy:             v1alpha1.OffsetResetEarliest,
		},
	})
	dep := waitDeployment(t, ns, "jobs", nil)
	markReady(t, dep)

	// 300 records, nobody consuming: ceil(300/25) = 12, bounded to 8.
	prod := kafkaClient(t, addrs, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for p := int32(0); p < 2; p++ {
		produceN(t, prod, "jobs", p, 150)
	}
	waitDeployment(t, ns, "jobs", func(d *appsv1.Deployment) error {
		if *d.Spec.Replicas != 8 {
			return fmt.Errorf("replicas %d, want 8 on 2 partitions", *d.Spec.Replicas)
		}
		return nil
	})

	// A share consumer acknowledges everything.
	cons := kafkaClient(t, addrs, kgo.ShareGroup("jobs-group"), kgo.ConsumeTopics("jobs"), kgo.FetchMaxWait(100*time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			for _, r := range cons.PollRecords(ctx, 100).Records() {
				r.Ack(kgo.AckAccept)
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	waitDeployment(t, ns, "jobs", func(d *appsv1.Deployment) error {
		if *d.Spec.Replicas != 1 {
			return fmt.Errorf("replicas %d, want back to minReplicas 1", *d.Spec.Replicas)
		}
		return nil
	})
	if l := getConsumer(t, ns, "jobs").Status.Lag; l == nil || l.GroupType != "Share" || l.Total != 0 {
		t.Fatalf("lag status %+v, want a Share group with no lag", l)
	}
}
