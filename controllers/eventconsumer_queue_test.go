package controllers

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/lag"
)

// movingLag is a LagSource whose every registered consumer's lag moves on
// each tick, as on a cluster where records arrive on every partition
// between two polls, and which tells the reconciler of each change the way
// the lag engine does.
type movingLag struct {
	mu         sync.Mutex
	registered map[lag.ConsumerKey]bool
	tick       int64
	backlog    map[lag.ConsumerKey]int64
	// flapHealth turns partition 0's health from OK to WARN and back at
	// every tick: state, not a figure, on every consumer at once.
	flapHealth bool
}

func newMovingLag() *movingLag {
	return &movingLag{registered: map[lag.ConsumerKey]bool{}, backlog: map[lag.ConsumerKey]int64{}}
}

func (m *movingLag) Register(s lag.Subscription) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.registered[s.Consumer] = true
}
func (m *movingLag) Unregister(k lag.ConsumerKey) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.registered, k)
}
func (m *movingLag) PollNow(lag.ConsumerKey) {}
func (m *movingLag) ClusterStatus(string) (lag.ClusterStatus, bool) {
	return lag.ClusterStatus{}, false
}

func (m *movingLag) Snapshot(k lag.ConsumerKey) (lag.Snapshot, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.registered[k] {
		return lag.Snapshot{}, false
	}
	// A few records in flight that change every tick, on a group with
	// one member that keeps up, or the backlog a test gave it.
	total := 10 + m.tick%7 + m.backlog[k]
	s := lag.Snapshot{Time: time.Unix(0, 0).Add(time.Duration(m.tick) * time.Second), Reachable: true, PartitionCount: 4,
		GroupState: "Stable", Members: 1, TotalLag: total, ProductionRate: 10, ConsumptionRate: 10}
	for p := range 4 {
		s.Partitions = append(s.Partitions, lag.PartitionLag{Topic: "t", Partition: int32(p), Lag: total / 4,
			CommittedOffset: m.tick * 10, EndOffset: m.tick*10 + total/4, HasCommit: true, Health: lag.HealthOK})
	}
	if m.flapHealth && m.tick%2 == 1 {
		s.Partitions[0].Health = lag.HealthWarn
	}
	return s, true
}

// storm moves every registered consumer's lag and notifies r of each, every
// period, until ctx ends.
func (m *movingLag) storm(ctx context.Context, r *EventConsumerReconciler, period time.Duration, notified *atomic.Int64) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.mu.Lock()
		m.tick++
		keys := make([]lag.ConsumerKey, 0, len(m.registered))
		for k := range m.registered {
			keys = append(keys, k)
		}
		m.mu.Unlock()
		for _, k := range keys {
			r.LagChanged(k)
			notified.Add(1)
		}
	}
}

// TestRestartReconcilesEveryConsumer is the restart case: consumers exist
// before the operator starts, and the lag of every consumer the operator
// has reached moves all the time. controller-runtime queues the initial
// list at low priority; lag changes that need no write must not starve
// it. Every consumer gets its Deployment and a first lag status, and a
// consumer whose backlog asks for a scale-up during the storm is scaled.
func TestRestartReconcilesEveryConsumer(t *testing.T) {
	const consumers = 300
	ns := namespace(t)
	createSteadyConsumers(t, ns, "c", consumers)
	moving := newMovingLag()
	op := startOperator(t, func(r *EventConsumerReconciler) { r.Lag = moving })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var notified atomic.Int64
	go moving.storm(ctx, op.rec, 20*time.Millisecond, &notified)

	probe := lag.ConsumerKey{Namespace: ns, Name: "c000"}
	eventually(t, 4*time.Minute, func() error {
		list := &v1alpha1.EventConsumerList{}
		if err := env.Client.List(context.Background(), list); err != nil {
			return err
		}
		synced := 0
		for _, ec := range list.Items {
			if ec.Namespace == ns && ec.Status.Lag != nil && ec.Status.Selector != "" {
				synced++
			}
		}
		if synced < consumers {
			return fmt.Errorf("%d of %d consumers have a Deployment and a first lag status", synced, consumers)
		}
		return nil
	})
	for i := range consumers {
		if _, err := getDeployment(t, ns, fmt.Sprintf("c%03d", i))(); err != nil {
			t.Fatalf("consumer c%03d: %v", i, err)
		}
	}
	// A backlog on one consumer in the storm: 2,000 records at 100 a
	// replica ask for 4, the partition count.
	moving.mu.Lock()
	moving.backlog[probe] = 2000
	moving.mu.Unlock()
	eventually(t, 2*time.Minute, func() error {
		if got := replicasOf(t, ns, probe.Name); got != 4 {
			return fmt.Errorf("probe replicas %d, want 4", got)
		}
		return nil
	})
	t.Logf("%d lag notifications during the test", notified.Load())
}

// statusPatches is the API server's count of status PATCH requests for
// EventConsumers.
func statusPatches(t *testing.T) float64 {
	return apiserverRequests(t, `resource="eventconsumers"`, `subresource="status"`, `verb="PATCH"`)
}

// TestStatusBudgetHolds: 40 consumers whose lag moves all the time, a
// status interval of 1 s and an operator-wide budget of 4 status writes a
// second. Once every consumer has its first status, the API server sees
// no more status writes than the budget allows.
func TestStatusBudgetHolds(t *testing.T) {
	const consumers, budget, seconds = 40, 4, 10
	moving := newMovingLag()
	op := startOperator(t, func(r *EventConsumerReconciler) {
		r.Lag = moving
		r.StatusInterval = time.Second
		r.StatusBudget = NewStatusBudget(budget)
	})
	ns := namespace(t)
	createSteadyConsumers(t, ns, "b", consumers)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var notified atomic.Int64
	go moving.storm(ctx, op.rec, 100*time.Millisecond, &notified)
	eventually(t, 2*time.Minute, func() error {
		list := &v1alpha1.EventConsumerList{}
		if err := env.Client.List(context.Background(), list); err != nil {
			return err
		}
		synced := 0
		for _, ec := range list.Items {
			if ec.Namespace == ns && ec.Status.Lag != nil {
				synced++
			}
		}
		if synced < consumers {
			return fmt.Errorf("%d of %d consumers have a first lag status", synced, consumers)
		}
		return nil
	})
	before := statusPatches(t)
	time.Sleep(seconds * time.Second)
	writes := statusPatches(t) - before
	// The budget's burst (one second's worth) may come on top.
	if most := float64(budget*seconds + budget); writes > most {
		t.Fatalf("%v status writes in %ds, want at most %v under a budget of %d/s", writes, seconds, most, budget)
	}
	if writes == 0 {
		t.Fatal("no status write at all: the lag figures must still be written, only less often")
	}
	t.Logf("%v status writes in %ds under a budget of %d/s", writes, seconds, budget)
}

// TestStatusBudgetHoldsForStateChanges: 40 consumers whose state (a
// partition's health) changes at every poll, from the moment they are
// created, under a budget of 4 status writes a second. Changes of state
// wait for their turn like figures do, so the API server sees no more
// status writes than the budget allows, first statuses included, and each
// consumer still gets its first lag status.
func TestStatusBudgetHoldsForStateChanges(t *testing.T) {
	const consumers, budget, seconds = 40, 4, 15
	moving := newMovingLag()
	moving.flapHealth = true
	op := startOperator(t, func(r *EventConsumerReconciler) {
		r.Lag = moving
		r.StatusInterval = time.Second
		r.StatusBudget = NewStatusBudget(budget)
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var notified atomic.Int64
	go moving.storm(ctx, op.rec, 200*time.Millisecond, &notified)
	ns := namespace(t)
	before := statusPatches(t)
	start := time.Now()
	createSteadyConsumers(t, ns, "s", consumers)
	time.Sleep(seconds*time.Second - time.Since(start))
	writes := statusPatches(t) - before
	elapsed := time.Since(start).Seconds()
	// The budget's burst (one second's worth) may come on top.
	if most := budget*elapsed + budget; writes > most {
		t.Fatalf("%v status writes in %.1fs, want at most %.0f under a budget of %d/s", writes, elapsed, most, budget)
	}
	t.Logf("%v status writes in %.1fs under a budget of %d/s", writes, elapsed, budget)
	// Every consumer still gets its first lag status: waiting for turns
	// delays state, it does not starve it.
	eventually(t, 2*time.Minute, func() error {
		list := &v1alpha1.EventConsumerList{}
		if err := env.Client.List(context.Background(), list, client.InNamespace(ns)); err != nil {
			return err
		}
		synced := 0
		for _, ec := range list.Items {
			if ec.Status.Lag != nil {
				synced++
			}
		}
		if synced < consumers {
			return fmt.Errorf("%d of %d consumers have a first lag status", synced, consumers)
		}
		return nil
	})
}

// createSteadyConsumers creates n consumers named prefix00.. in ns, each of
// its own group on topic t, sized by LagThreshold 100 with one replica at
// least: the movingLag's few records in flight never ask for more.
func createSteadyConsumers(t *testing.T, ns, prefix string, n int) {
	t.Helper()
	for i := range n {
		createConsumer(t, ns, fmt.Sprintf("%s%03d", prefix, i), v1alpha1.EventConsumerSpec{
			Topics: []string{"t"}, ConsumerGroup: fmt.Sprintf("g%03d", i),
			Kafka:   v1alpha1.KafkaConnection{BootstrapServers: []string{"k:9092"}},
			Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
			Scaling: v1alpha1.ScalingSpec{Policy: v1alpha1.PolicyLagThreshold, LagThreshold: ptrTo[int64](100), MinReplicas: ptrTo[int32](1)},
		})
	}
}
