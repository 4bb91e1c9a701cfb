package controllers

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/lag"
	"github.com/lagscale/lagscale/internal/testenv"
)

// TestShardedKafkaClusterIsProbed runs the KafkaCluster reporter as the
// sharder's replica does when it owns none of a cluster's consumers: its
// lag engine does not poll the cluster. The cluster is probed instead, so
// a reachable one is Ready with its brokers, and one whose address
// answers nothing is not Ready; neither stays Unknown.
func TestShardedKafkaClusterIsProbed(t *testing.T) {
	kafka := startKafka(t)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := closed.Addr().String()
	closed.Close()

	mgr, err := ctrl.NewManager(env.Operator, ctrl.Options{
		Scheme: testenv.Scheme(), Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Controller: config.Controller{SkipNameValidation: ptrTo(true)}, Cache: CacheOptions(nil), Client: ClientOptions(),
	})
	if err != nil {
		t.Fatal(err)
	}
	r := &KafkaClusterReconciler{
		Client: mgr.GetClient(), Sharded: true, APIReader: mgr.GetAPIReader(),
		Lag: &movingLag{}, // polls no cluster, as on a replica that owns none of their consumers
		Probe: func(ctx context.Context, cfg lag.ClusterConfig) lag.ClusterStatus {
			return lag.Probe(ctx, cfg, 5*time.Second)
		},
	}
	if err := r.SetupWithManager(mgr, controller.Options{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("manager: %v", err)
		}
	}()
	defer func() { cancel(); <-done }()

	ns := namespace(t)
	for name, servers := range map[string][]string{"up": kafka.ListenAddrs(), "down": {down}} {
		kc := &v1alpha1.KafkaCluster{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: v1alpha1.KafkaClusterSpec{BootstrapServers: servers}}
		if err := env.Client.Create(ctx, kc); err != nil {
			t.Fatal(err)
		}
		ec := &v1alpha1.EventConsumer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "uses-" + name}, Spec: v1alpha1.EventConsumerSpec{
			Topics: []string{"t"}, ConsumerGroup: "g-" + name,
			Kafka:   v1alpha1.KafkaConnection{ClusterRef: &v1alpha1.LocalObjectRef{Name: name}},
			Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
		}}
		if err := env.Client.Create(ctx, ec); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]metav1.ConditionStatus{"up": metav1.ConditionTrue, "down": metav1.ConditionFalse}
	eventually(t, wait, func() error {
		for name, status := range want {
			got := &v1alpha1.KafkaCluster{}
			if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, got); err != nil {
				return err
			}
			c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady)
			if c == nil || c.Status != status || !strings.Contains(c.Message, "probed") || got.Status.Consumers != 1 {
				return fmt.Errorf("%s: %d consumers, Ready %+v; want %s, probed, 1 consumer", name, got.Status.Consumers, c, status)
			}
			if name == "up" && !slices.Equal(got.Status.Brokers, kafka.ListenAddrs()) {
				return fmt.Errorf("up: brokers %v, want %v", got.Status.Brokers, kafka.ListenAddrs())
			}
		}
		return nil
	})
}
