package controllers

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/lag"
	"github.com/lagscale/lagscale/internal/sim"
	"github.com/lagscale/lagscale/internal/testenv"
)

// clock is a settable clock for reconcilers driven by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// directReconciler is a reconciler the test calls by hand, reading the API
// server directly as the operator user (no cache), so each call is one
// reconcile the test controls, at the test's clock.
func directReconciler(t *testing.T, src LagSource, c *clock, cl client.Client) *EventConsumerReconciler {
	t.Helper()
	if cl == nil {
		var err error
		cl, err = client.New(env.Operator, client.Options{Scheme: testenv.Scheme()})
		if err != nil {
			t.Fatal(err)
		}
	}
	r := &EventConsumerReconciler{Client: listGets{cl}, Lag: src, Now: c.now}
	r.setup()
	return r
}

// listGets answers a Get of an EventConsumer with a List by name, as the
// manager's cache does: the operator's role grants list and watch on
// EventConsumers but not get, which nothing in the manager needs.
type listGets struct{ client.Client }

func (c listGets) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	ec, ok := obj.(*v1alpha1.EventConsumer)
	if !ok {
		return c.Client.Get(ctx, key, obj, opts...)
	}
	var l v1alpha1.EventConsumerList
	if err := c.List(ctx, &l, client.InNamespace(key.Namespace), client.MatchingFields{"metadata.name": key.Name}); err != nil {
		return err
	}
	if len(l.Items) == 0 {
		return apierrors.NewNotFound(v1alpha1.GroupVersion.WithResource("eventconsumers").GroupResource(), key.Name)
	}
	l.Items[0].DeepCopyInto(ec)
	return nil
}

func reconcileOnce(t *testing.T, r *EventConsumerReconciler, ns, name string) {
	t.Helper()
	if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}}); err != nil {
		t.Fatalf("reconcile: %v", err)
	}
}

// churn changes the Deployment the way its controller and people do
// between two polls: an annotation, and the status.
func churn(t *testing.T, ns, name string, i int) {
	t.Helper()
	ctx := context.Background()
	d := &appsv1.Deployment{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, d); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(d.DeepCopy())
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	d.Annotations["test/churn"] = strconv.Itoa(i)
	if err := env.Client.Patch(ctx, d, patch); err != nil {
		t.Fatal(err)
	}
	st := client.MergeFrom(d.DeepCopy())
	d.Status.ObservedGeneration = d.Generation
	d.Status.Replicas = *d.Spec.Replicas
	d.Status.ReadyReplicas = int32(i) % (*d.Spec.Replicas + 1)
	if err := env.Client.Status().Patch(ctx, d, st); err != nil {
		t.Fatal(err)
	}
}

func replicasOf(t *testing.T, ns, name string) int32 {
	t.Helper()
	d, err := getDeployment(t, ns, name)()
	if err != nil {
		t.Fatal(err)
	}
	return *d.Spec.Replicas
}

// evenSnapshot is a snapshot of p partitions of topic "t" sharing the given
// figures evenly, every partition committed.
func evenSnapshot(at time.Time, p int, lagEach int64, timeLag, inflow, consumption float64, members int) lag.Snapshot {
	s := lag.Snapshot{Time: at, Reachable: true, GroupState: "Stable", Members: members, PartitionCount: p,
		TimeLagSeconds: timeLag, ProductionRate: inflow, ConsumptionRate: consumption}
	for i := range p {
		s.Partitions = append(s.Partitions, lag.PartitionLag{Topic: "t", Partition: int32(i), Lag: lagEach, TimeLagSeconds: timeLag,
			CommittedOffset: 1000, HasCommit: true, EndOffset: 1000 + lagEach, ProductionRate: inflow / float64(p),
			ConsumptionRate: consumption / float64(p), Health: lag.HealthOK})
		s.TotalLag += lagEach
	}
	return s
}

// TestReconcileStormLearnsNothing: 50 Deployment changes between two polls
// mean 50 reconciles on one snapshot. They change neither the replicas,
// status.lastScale nor the learned capacity.
func TestReconcileStormLearnsNothing(t *testing.T) {
	fake := &fakeLag{snaps: map[lag.ConsumerKey]lag.Snapshot{}}
	c := &clock{t: time.Now().Truncate(time.Second)}
	r := directReconciler(t, fake, c, nil)
	ns := namespace(t)
	tests := []struct {
		name  string
		prior *int64
		snap  lag.Snapshot
	}{
		// The target missed: a decision on new data scales up, and the
		// new pods are not members yet.
		{"scale-up", ptrTo[int64](20), evenSnapshot(c.now(), 6, 100, 40, 60, 0, 1)},
		// A prior below what one member consumes: each sample raises the
		// estimate.
		{"learning", ptrTo[int64](10), evenSnapshot(c.now(), 6, 100, 40, 60, 100, 1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			createConsumer(t, ns, tc.name, v1alpha1.EventConsumerSpec{
				Topics: []string{"t"}, ConsumerGroup: tc.name,
				Kafka:   v1alpha1.KafkaConnection{BootstrapServers: []string{"k:9092"}},
				Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
				Scaling: v1alpha1.ScalingSpec{ThroughputPerReplica: tc.prior},
			})
			key := lag.ConsumerKey{Namespace: ns, Name: tc.name}
			c.set(c.now().Add(time.Second))
			reconcileOnce(t, r, ns, tc.name) // creates the Deployment at 1 replica
			fake.set(key, tc.snap)
			reconcileOnce(t, r, ns, tc.name) // the poll's lag event
			replicas := replicasOf(t, ns, tc.name)
			last := getConsumer(t, ns, tc.name).Status.LastScale
			capacity := r.scalers.lookup(types.NamespacedName{Namespace: ns, Name: tc.name}).State().Model.Capacity
			if last == nil {
				t.Fatalf("no scale on the first snapshot (replicas %d): the test sees nothing", replicas)
			}
			for i := range 50 {
				churn(t, ns, tc.name, i)
				c.set(c.now().Add(50 * time.Millisecond))
				reconcileOnce(t, r, ns, tc.name)
			}
			if got := replicasOf(t, ns, tc.name); got != replicas {
				t.Errorf("replicas %d after the storm, %d before", got, replicas)
			}
			if got := getConsumer(t, ns, tc.name).Status.LastScale; !reflect.DeepEqual(got, last) {
				t.Errorf("lastScale %+v after the storm, %+v before", got, last)
			}
			if got := r.scalers.lookup(types.NamespacedName{Namespace: ns, Name: tc.name}).State().Model.Capacity; got != capacity {
				t.Errorf("learned capacity %v after the storm, %v before", got, capacity)
			}
		})
	}
}

// staleReads serves Deployments from a copy taken before lagscale's last
// write, as an informer cache that has not caught up does.
type staleReads struct {
	client.Client
	mu    sync.Mutex
	stale *appsv1.Deployment
}

func (s *staleReads) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	s.mu.Lock()
	stale := s.stale
	s.mu.Unlock()
	if d, ok := obj.(*appsv1.Deployment); ok && stale != nil {
		stale.DeepCopyInto(d)
		return nil
	}
	return s.Client.Get(ctx, key, obj, opts...)
}

// TestStaleCacheDoesNotUndoAScale: a reconcile that reads the Deployment
// from before lagscale's own scale-down must not write the old count back.
func TestStaleCacheDoesNotUndoAScale(t *testing.T) {
	fake := &fakeLag{snaps: map[lag.ConsumerKey]lag.Snapshot{}}
	c := &clock{t: time.Now().Truncate(time.Second)}
	direct, err := client.New(env.Operator, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	reads := &staleReads{Client: direct}
	r := directReconciler(t, fake, c, reads)
	ns := namespace(t)
	createConsumer(t, ns, "undo", v1alpha1.EventConsumerSpec{
		Topics: []string{"t"}, ConsumerGroup: "g",
		Kafka:   v1alpha1.KafkaConnection{BootstrapServers: []string{"k:9092"}},
		Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
		Scaling: v1alpha1.ScalingSpec{Policy: v1alpha1.PolicyLagThreshold, LagThreshold: ptrTo[int64](100), ScaleDownStabilizationSeconds: ptrTo[int32](0)},
	})
	key := lag.ConsumerKey{Namespace: ns, Name: "undo"}
	fake.set(key, evenSnapshot(c.now(), 8, 100, 5, 0, 0, 8))
	reconcileOnce(t, r, ns, "undo")
	if got := replicasOf(t, ns, "undo"); got != 8 {
		t.Fatalf("replicas %d, want 8", got)
	}
	before, _ := getDeployment(t, ns, "undo")()

	// The lag falls to half: 8 -> 4 once the minimum interval has passed
	// (no stabilization).
	c.set(c.now().Add(31 * time.Second))
	fake.set(key, evenSnapshot(c.now(), 8, 50, 5, 0, 0, 8))
	reconcileOnce(t, r, ns, "undo")
	if got := replicasOf(t, ns, "undo"); got != 4 {
		t.Fatalf("replicas %d, want 4", got)
	}

	// A reconcile within the minimum interval reads the Deployment as it
	// was before that write.
	reads.mu.Lock()
	reads.stale = before
	reads.mu.Unlock()
	c.set(c.now().Add(time.Second))
	reconcileOnce(t, r, ns, "undo")
	if got := replicasOf(t, ns, "undo"); got != 4 {
		t.Fatalf("replicas %d after a reconcile on a stale cache, want lagscale's 4 kept", got)
	}
}

// twinWorkload is two bursts on 6 partitions: 20/s each, 40/s each (4.8
// replicas' worth at 50/s a replica) from 60 s to 200 s, 10/s, 42/s each
// from 400 s to 480 s, and silence from 480 s to 800 s: the snapshots stop
// changing, the engine stops sending lag events, and only a requeue can
// let the scale-down through once the stabilization window has passed.
func twinWorkload() sim.Workload {
	w := sim.Workload{Name: "twin", Partitions: 6, Duration: 800}
	for _, step := range []struct {
		at   int
		rate float64
	}{{0, 20}, {60, 40}, {200, 10}, {400, 42}, {480, 0}} {
		for p := range 6 {
			w.Rows = append(w.Rows, sim.TraceRow{Second: step.at, Partition: p, Rate: step.rate})
		}
	}
	return w
}

// TestTwinClosedLoop records a closed-loop simulator run (members follow
// the replicas lagscale sets, each change of membership pauses the group,
// one poll fails and one reads a partition with an error) and replays it
// through the reconciler as the operator would meet it: each snapshot
// stored when polled, a lag event a latency after each snapshot whose
// figures changed and none for an identical one, a Deployment event a
// latency after each change of its replicas or ready replicas, and a
// requeue only when the reconcile asks for one. The reconciler must scale
// at the same seconds, from and to the same counts, as the simulator.
func TestTwinClosedLoop(t *testing.T) {
	const latency = 2
	// replayLatency is the latency of the replay; set it to another value
	// than the recording's and the sequences part.
	const replayLatency = latency
	epoch := time.Now().Truncate(time.Second)
	spec := v1alpha1.ScalingSpec{
		MinReplicas: ptrTo[int32](1), MaxLagSeconds: ptrTo[int32](30),
		ScaleDownStabilizationSeconds: ptrTo[int32](60), PollIntervalSeconds: ptrTo[int32](5),
	}
	cfg := sim.Config{
		Capacity: 50, Noise: 0.1, SLO: 30, Seed: 3, Rebalance: 5, Startup: 15, Poll: 5, InitialReplicas: 1,
		ReconcileLatency: latency, Scaling: &spec, StalePolls: []int{150}, PartialPolls: []int{225},
	}
	rec := sim.Record(cfg, twinWorkload(), epoch)
	var want []string
	for _, e := range rec.Events {
		want = append(want, fmt.Sprintf("%ds: %d -> %d", e.Second, e.From, e.To))
	}
	undelivered := 0
	for _, p := range rec.Polls {
		if !p.Delivered {
			undelivered++
		}
	}
	if p := polls(rec)[150]; !p.Snapshot.Stale {
		t.Fatalf("the poll at 150 s is not stale: %+v", p)
	}
	if p := polls(rec)[225]; p.Snapshot.Partitions[0].Error == "" {
		t.Fatalf("the poll at 225 s is not partial")
	}
	if len(want) < 3 || len(rec.Ready) < 4 || undelivered == 0 {
		t.Fatalf("the recording scales %v with %d membership changes and %d identical snapshots: it exercises too little", want, len(rec.Ready), undelivered)
	}

	fake := &fakeLag{snaps: map[lag.ConsumerKey]lag.Snapshot{}}
	c := &clock{t: epoch.Add(-time.Second)}
	r := directReconciler(t, fake, c, nil)
	// Status writes of live lag figures requeue on their own clock; they
	// are left out so that the replay's requeues are decideReplicas' only.
	r.StatusInterval = 24 * time.Hour
	ns := namespace(t)
	createConsumer(t, ns, "twin", v1alpha1.EventConsumerSpec{
		Topics: []string{"sim"}, ConsumerGroup: "twin",
		Kafka:   v1alpha1.KafkaConnection{BootstrapServers: []string{"k:9092"}},
		Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
		Scaling: spec,
	})
	key := lag.ConsumerKey{Namespace: ns, Name: "twin"}
	reconcileOnce(t, r, ns, "twin") // creates the Deployment at 1 replica
	cur := replicasOf(t, ns, "twin")
	if cur != 1 {
		t.Fatalf("the Deployment starts at %d replicas, the recording at 1", cur)
	}
	byPoll := polls(rec)
	ready := map[int]int{}
	for _, rc := range rec.Ready {
		ready[rc.Second] = rc.Ready
	}
	due := map[int]bool{}
	requeue := -1
	var got []string
	for s := range twinWorkload().Duration {
		at := epoch.Add(time.Duration(s) * time.Second)
		c.set(at)
		if p, ok := byPoll[s]; ok {
			fake.set(key, p.Snapshot)
			if p.Delivered {
				due[s+replayLatency] = true
			}
		}
		if n, ok := ready[s]; ok {
			setReady(t, ns, "twin", int32(n))
			if s > 0 {
				due[s+replayLatency] = true
			}
		}
		for range 3 {
			if !due[s] && requeue != s {
				break
			}
			delete(due, s)
			if requeue == s {
				requeue = -1
			}
			res, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "twin"}})
			if err != nil {
				t.Fatalf("reconcile at %d s: %v", s, err)
			}
			if res.RequeueAfter > 0 {
				// The work queue keeps the earlier of two delays.
				next := s + int(res.RequeueAfter.Round(time.Second)/time.Second) + replayLatency
				if requeue < 0 || next < requeue {
					requeue = next
				}
			}
			if n := replicasOf(t, ns, "twin"); n != cur {
				got = append(got, fmt.Sprintf("%ds: %d -> %d", s, cur, n))
				cur = n
				due[s+replayLatency] = true // the Deployment's own change
			}
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("replica sequences differ\nreconciler: %v\nsimulator:  %v", got, want)
	}
	t.Logf("both paths: %v (%d polls, %d not delivered, %d looks)", want, len(rec.Polls), undelivered, len(rec.Looks))
}

// polls indexes a recording's polls by second.
func polls(rec sim.Recording) map[int]sim.RecordedPoll {
	m := map[int]sim.RecordedPoll{}
	for _, p := range rec.Polls {
		m[p.Second] = p
	}
	return m
}

// setReady sets the Deployment's status as its controller would once n
// pods are ready: the simulator's group members.
func setReady(t *testing.T, ns, name string, n int32) {
	t.Helper()
	ctx := context.Background()
	d := &appsv1.Deployment{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, d); err != nil {
		t.Fatal(err)
	}
	st := client.MergeFrom(d.DeepCopy())
	d.Status.ObservedGeneration = d.Generation
	d.Status.Replicas = *d.Spec.Replicas
	d.Status.ReadyReplicas = n
	d.Status.AvailableReplicas = n
	if err := env.Client.Status().Patch(ctx, d, st); err != nil {
		t.Fatal(err)
	}
}
