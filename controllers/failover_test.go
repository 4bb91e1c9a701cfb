package controllers

import (
	"fmt"
	"math"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/lag"
	"github.com/lagscale/lagscale/internal/testenv"
)

// electedOperator is a manager with leader election, as the operator runs.
type electedOperator struct {
	*operator
	elected <-chan struct{}
}

// startElectedOperator runs the reconcilers with leader election on a
// short lease, so a test sees a failover in seconds. The manager does not
// release the Lease when stopped: stopping it is a crash, and the other
// manager takes over once the lease expires.
func startElectedOperator(t *testing.T, configure func(*EventConsumerReconciler)) *electedOperator {
	t.Helper()
	lease, renew, retry := 4*time.Second, 3*time.Second, 500*time.Millisecond
	op, mgr := startManager(t, func(o *ctrl.Options) {
		o.LeaderElection = true
		o.LeaderElectionID = "failover-test"
		o.LeaderElectionNamespace = testenv.OperatorNamespace
		o.LeaseDuration, o.RenewDeadline, o.RetryPeriod = &lease, &renew, &retry
	}, configure)
	return &electedOperator{operator: op, elected: mgr.Elected()}
}

// TestFailoverKeepsWhatWasLearned: the leader learns a replica's capacity
// and scales out; it crashes. The new leader restores the capacity from
// status.learned (within 10% of the old leader's) and, although its first
// readings say the load is gone, makes no scale-down within the
// stabilization window after taking over.
func TestFailoverKeepsWhatWasLearned(t *testing.T) {
	ns := namespace(t)
	key := lag.ConsumerKey{Namespace: ns, Name: "learns"}
	// 8 partitions, 4 members consuming 400/s between them, the inflow
	// 600/s and a backlog: the first readings teach about 100/s a
	// replica and ask for more replicas.
	busy := func() lag.Snapshot {
		s := lag.Snapshot{Time: time.Now(), Reachable: true, PartitionCount: 8, GroupState: "Stable", Members: 4,
			ProductionRate: 600, ConsumptionRate: 400}
		for p := range 8 {
			s.Partitions = append(s.Partitions, lag.PartitionLag{Topic: "t", Partition: int32(p), Lag: 500, TimeLagSeconds: 20,
				CommittedOffset: 1000, EndOffset: 1500, HasCommit: true, ProductionRate: 75, ConsumptionRate: 50, Health: lag.HealthOK})
		}
		s.TotalLag, s.TimeLagSeconds = 4000, 20
		return s
	}
	idle := func() lag.Snapshot {
		s := lag.Snapshot{Time: time.Now(), Reachable: true, PartitionCount: 8, GroupState: "Stable", Members: 8}
		for p := range 8 {
			s.Partitions = append(s.Partitions, lag.PartitionLag{Topic: "t", Partition: int32(p),
				CommittedOffset: 1500, EndOffset: 1500, HasCommit: true, Health: lag.HealthOK})
		}
		return s
	}
	fakeA := &fakeLag{snaps: map[lag.ConsumerKey]lag.Snapshot{key: busy()}}
	a := startElectedOperator(t, func(r *EventConsumerReconciler) { r.Lag = fakeA; r.MinScaleInterval = time.Second })
	select {
	case <-a.elected:
	case <-time.After(wait):
		t.Fatal("the first manager was not elected")
	}
	const window = 12
	createConsumer(t, ns, "learns", v1alpha1.EventConsumerSpec{
		Topics: []string{"t"}, ConsumerGroup: "g",
		Kafka:   v1alpha1.KafkaConnection{BootstrapServers: []string{"k:9092"}},
		Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
		Scaling: v1alpha1.ScalingSpec{MinReplicas: ptrTo[int32](1), ScaleDownStabilizationSeconds: ptrTo[int32](window), PollIntervalSeconds: ptrTo[int32](1)},
	})
	var scaled int32
	waitDeployment(t, ns, "learns", func(d *appsv1.Deployment) error {
		fakeA.set(key, busy())
		a.rec.LagChanged(key)
		if *d.Spec.Replicas <= 1 {
			return fmt.Errorf("replicas %d, want a scale-up", *d.Spec.Replicas)
		}
		scaled = *d.Spec.Replicas
		return nil
	})
	var learned float64
	eventually(t, wait, func() error {
		l := getConsumer(t, ns, "learns").Status.Learned
		if l == nil || l.CapacityPerReplica == nil {
			return fmt.Errorf("status.learned %+v, want a capacity", l)
		}
		learned = *l.CapacityPerReplica
		return nil
	})
	old := a.rec.scalers.lookup(types.NamespacedName{Namespace: ns, Name: "learns"}).State().Model.Capacity
	a.stop()

	fakeB := &fakeLag{snaps: map[lag.ConsumerKey]lag.Snapshot{key: idle()}}
	b := startElectedOperator(t, func(r *EventConsumerReconciler) { r.Lag = fakeB; r.MinScaleInterval = time.Second })
	select {
	case <-b.elected:
	case <-time.After(wait):
		t.Fatal("the second manager did not take over")
	}
	took := time.Now()
	var restored float64
	eventually(t, wait, func() error {
		sc := b.rec.scalers.lookup(types.NamespacedName{Namespace: ns, Name: "learns"})
		if sc == nil {
			return fmt.Errorf("the new leader has not reconciled the consumer yet")
		}
		restored = sc.State().Model.Capacity
		return nil
	})
	if math.Abs(restored-old) > 0.1*old {
		t.Fatalf("the new leader's capacity %.1f/s, the old leader's %.1f/s (status said %.1f): more than 10%% apart", restored, old, learned)
	}
	// The readings say the load is gone. Within the window after the
	// takeover nothing is removed.
	for time.Since(took) < (window-2)*time.Second {
		fakeB.set(key, idle())
		b.rec.LagChanged(key)
		time.Sleep(500 * time.Millisecond)
		if got := replicasOf(t, ns, "learns"); got != scaled {
			t.Fatalf("replicas %d %s after the takeover, want %d kept through the %ds window", got, time.Since(took).Round(time.Second), scaled, window)
		}
	}
	// After it, they go: the hold above was the window, not a stuck
	// reconciler.
	eventually(t, 3*wait, func() error {
		fakeB.set(key, idle())
		b.rec.LagChanged(key)
		if got := replicasOf(t, ns, "learns"); got >= scaled {
			return fmt.Errorf("replicas %d, want a scale-down once the window has passed", got)
		}
		return nil
	})
}
