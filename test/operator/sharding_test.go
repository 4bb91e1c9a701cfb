package operator

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/controllers"
	"github.com/lagscale/lagscale/internal/operator"
	"github.com/lagscale/lagscale/internal/shard"
)

// TestShardedOperatorScalesOnEveryReplica runs the chart's sharded
// operator as two replicas, with the real lag engine on a kfake broker:
// the consumers are split between both, and each replica polls and scales
// its own, not only the elected one.
func TestShardedOperatorScalesOnEveryReplica(t *testing.T) {
	env := helmInstall(t, "--set", "sharding.enabled=true")
	cfg := asServiceAccount(env)
	ctx := context.Background()
	kafka := kfakeWithPayments(ctx, t)
	regs := map[string]*prometheus.Registry{}
	for _, name := range []string{"a", "b"} {
		regs[name] = prometheus.NewRegistry()
		r := startOperator(t, cfg, operator.Options{
			MetricsAddr: "0", ProbeAddr: "0", Registry: regs[name],
			LeaderElect: true, LeaderElectionID: "lagscale", LeaderElectionNamespace: releaseNS,
			MaxConcurrentReconciles: 2, DefaultPollInterval: time.Second,
			Sharding: true, ShardIdentity: name, StatusWritesPerSecond: 40,
		})
		defer r.stop(t)
	}

	ns := "payments"
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	const n = 12
	for i := range n {
		ec := &v1alpha1.EventConsumer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("c%02d", i)}, Spec: v1alpha1.EventConsumerSpec{
			Topics: []string{"payments"}, ConsumerGroup: fmt.Sprintf("g%02d", i),
			Kafka:   v1alpha1.KafkaConnection{BootstrapServers: kafka.ListenAddrs()},
			Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
			Scaling: v1alpha1.ScalingSpec{Policy: v1alpha1.PolicyLagThreshold, LagThreshold: ptr[int64](10), PollIntervalSeconds: ptr[int32](1), OffsetResetPolicy: v1alpha1.OffsetResetEarliest},
		}}
		if err := env.Client.Create(ctx, ec); err != nil {
			t.Fatal(err)
		}
	}
	// 21 records of lag at 10 per replica: 3 replicas, on every consumer,
	// whichever replica owns it.
	eventually(t, 2*time.Minute, func() error {
		list := &v1alpha1.EventConsumerList{}
		if err := env.Client.List(ctx, list, client.InNamespace(ns)); err != nil {
			return err
		}
		cm := &corev1.ConfigMap{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: releaseNS, Name: controllers.ShardTableName("lagscale")}, cm); err != nil {
			return fmt.Errorf("the bucket table: %w", err)
		}
		table, err := shard.Decode(cm.Data)
		if err != nil {
			return err
		}
		owners := map[string]int{}
		for _, ec := range list.Items {
			owner := table.OwnerOf(ec.Labels)
			d := &appsv1.Deployment{}
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(&ec), d); err != nil {
				return fmt.Errorf("%s (owner %q): %w", ec.Name, owner, err)
			}
			if ec.Status.Lag == nil || ec.Status.Lag.Total != 21 || d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
				return fmt.Errorf("%s (owner %q): lag %+v, replicas %v; want a lag of 21 and 3 replicas", ec.Name, owner, ec.Status.Lag, d.Spec.Replicas)
			}
			owners[owner]++
		}
		if len(list.Items) != n || owners["a"] == 0 || owners["b"] == 0 {
			return fmt.Errorf("%d consumers owned %v; want %d split between a and b", len(list.Items), owners, n)
		}
		return nil
	})
	// The operator-wide budget of 40 status writes a second is split: each
	// of the two replicas writes at most 20.
	eventually(t, time.Minute, func() error {
		for name, reg := range regs {
			got, err := gaugeValue(reg, "lagscale_status_writes_per_second_limit")
			if err != nil {
				return fmt.Errorf("replica %s: %w", name, err)
			}
			if got != 20 {
				return fmt.Errorf("replica %s writes status at up to %v/s, want its share 20/s of 40", name, got)
			}
		}
		return nil
	})
}

// gaugeValue reads the unlabelled gauge name from reg.
func gaugeValue(reg *prometheus.Registry, name string) (float64, error) {
	families, err := reg.Gather()
	if err != nil {
		return 0, err
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetGauge().GetValue(), nil
		}
	}
	return 0, fmt.Errorf("no gauge %s", name)
}
