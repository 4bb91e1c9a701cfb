package controllers

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/lag"
	"github.com/lagscale/lagscale/internal/shard"
	"github.com/lagscale/lagscale/internal/testenv"
)

// writeLog records every status and Deployment write of the replicas, with
// the consumer's shard label on the API server when the write was made.
type writeLog struct {
	group  string
	mu     sync.Mutex
	writes []write
	// held, while set, holds the status writes of a replica until it is
	// closed.
	held     map[string]chan struct{}
	heldSeen int
}

// hold makes replica's status writes wait until the returned func is
// called.
func (l *writeLog) hold(replica string) func() {
	ch := make(chan struct{})
	l.mu.Lock()
	if l.held == nil {
		l.held = map[string]chan struct{}{}
	}
	l.held[replica] = ch
	l.mu.Unlock()
	return func() {
		l.mu.Lock()
		delete(l.held, replica)
		l.mu.Unlock()
		close(ch)
	}
}

// waitHeld blocks while replica's writes are held.
func (l *writeLog) waitHeld(replica string) {
	l.mu.Lock()
	ch := l.held[replica]
	if ch != nil {
		l.heldSeen++
	}
	l.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

type write struct {
	replica, what string
	consumer      types.NamespacedName
	owner         string
	at            time.Time
}

// record makes a write (do) and, if it succeeds, records it with the
// owner of the consumer's bucket in the table, read just before.
func (l *writeLog) record(replica, what string, key types.NamespacedName, do func() error) error {
	owner := ownerOf(context.Background(), l.group, key)
	if err := do(); err != nil {
		return err
	}
	l.mu.Lock()
	l.writes = append(l.writes, write{replica: replica, what: what, consumer: key, owner: owner, at: time.Now()})
	l.mu.Unlock()
	return nil
}

// ownerOf is the owner of the consumer's bucket in group's table, as the
// API server has them now.
func ownerOf(ctx context.Context, group string, key types.NamespacedName) string {
	ec := &v1alpha1.EventConsumer{}
	if err := env.Client.Get(ctx, key, ec); err != nil {
		return "<unreadable consumer>"
	}
	t, err := apiTable(ctx, group)
	if err != nil {
		return "<unreadable table>"
	}
	return t.OwnerOf(ec.Labels)
}

// apiTable is group's bucket table on the API server.
func apiTable(ctx context.Context, group string) (shard.Table, error) {
	cm := &corev1.ConfigMap{}
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: testenv.OperatorNamespace, Name: ShardTableName(group)}, cm); err != nil {
		return nil, err
	}
	return shard.Decode(cm.Data)
}

// writtenBy checks that each of names was written after since by the
// owner of its bucket, among replicas.
func (l *writeLog) writtenBy(ctx context.Context, ns string, names []string, since time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range names {
		key := types.NamespacedName{Namespace: ns, Name: n}
		owner := ownerOf(ctx, l.group, key)
		found := false
		for _, w := range l.writes {
			if w.consumer == key && w.replica == owner && w.at.After(since) {
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("%s not written by its owner %q since %s", n, owner, since.Format(time.StampMilli))
		}
	}
	return nil
}

// byNonOwners returns the writes made by a replica that was not the
// consumer's owner at the time, and the number of writes in all.
func (l *writeLog) byNonOwners() ([]write, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var bad []write
	for _, w := range l.writes {
		if w.owner != w.replica {
			bad = append(bad, w)
		}
	}
	return bad, len(l.writes)
}

// recordingClient is a replica's client that records each status and
// Deployment write that succeeds. The bucket's owner is read just before
// the write: an owner cannot lose it in between, since only its own
// acknowledgement (which waits for the reconciles in flight) or its own
// Lease's expiry moves it.
type recordingClient struct {
	client.Client
	replica string
	log     *writeLog
}

func (c recordingClient) Apply(ctx context.Context, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
	if d, ok := obj.(interface {
		GetName() *string
		GetNamespace() *string
	}); ok && d.GetName() != nil && d.GetNamespace() != nil {
		return c.log.record(c.replica, "Deployment", types.NamespacedName{Namespace: *d.GetNamespace(), Name: *d.GetName()}, func() error {
			return c.Client.Apply(ctx, obj, opts...)
		})
	}
	return c.Client.Apply(ctx, obj, opts...)
}

func (c recordingClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	if _, ok := obj.(*appsv1.Deployment); ok {
		return c.log.record(c.replica, "Deployment", client.ObjectKeyFromObject(obj), func() error {
			return c.Client.Patch(ctx, obj, patch, opts...)
		})
	}
	return c.Client.Patch(ctx, obj, patch, opts...)
}

func (c recordingClient) Status() client.SubResourceWriter {
	return recordingStatus{SubResourceWriter: c.Client.Status(), c: c}
}

type recordingStatus struct {
	client.SubResourceWriter
	c recordingClient
}

func (s recordingStatus) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	s.c.log.waitHeld(s.c.replica)
	return s.c.log.record(s.c.replica, "status", client.ObjectKeyFromObject(obj), func() error {
		return s.SubResourceWriter.Patch(ctx, obj, patch, opts...)
	})
}

func (s recordingStatus) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	return s.c.log.record(s.c.replica, "status", client.ObjectKeyFromObject(obj), func() error {
		return s.SubResourceWriter.Update(ctx, obj, opts...)
	})
}

// shardLag is a replica's lag engine: it notifies, every period, each
// consumer the replica has subscribed (and not yet dropped) with a new
// reading, as the real engine does while lag moves, so that the owner
// keeps writing status and a write from a replica that lost a consumer
// without noticing would show.
type shardLag struct {
	mu    sync.Mutex
	subs  map[lag.ConsumerKey]bool
	total int64
}

func (m *shardLag) Register(s lag.Subscription) {
	m.mu.Lock()
	m.subs[s.Consumer] = true
	m.mu.Unlock()
}

func (m *shardLag) Unregister(k lag.ConsumerKey) {
	m.mu.Lock()
	delete(m.subs, k)
	m.mu.Unlock()
}

func (m *shardLag) PollNow(lag.ConsumerKey)                        {}
func (m *shardLag) ClusterStatus(string) (lag.ClusterStatus, bool) { return lag.ClusterStatus{}, false }

func (m *shardLag) Snapshot(k lag.ConsumerKey) (lag.Snapshot, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.subs[k] {
		return lag.Snapshot{}, false
	}
	total := m.total % 50
	return lag.Snapshot{Time: time.Now(), Reachable: true, PartitionCount: 1, GroupState: "Stable", Members: 1, TotalLag: total,
		Partitions: []lag.PartitionLag{{Topic: "t", Partition: 0, Lag: total, CommittedOffset: m.total, EndOffset: m.total + total, HasCommit: true, Health: lag.HealthOK}}}, true
}

// run moves the lag every period and tells rec, until ctx ends.
func (m *shardLag) run(ctx context.Context, rec *EventConsumerReconciler, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.mu.Lock()
		m.total += 7
		keys := make([]lag.ConsumerKey, 0, len(m.subs))
		for k := range m.subs {
			keys = append(keys, k)
		}
		m.mu.Unlock()
		for _, k := range keys {
			rec.LagChanged(k)
		}
	}
}

// replica is one manager of a sharded operator.
type replica struct {
	*operator
	name  string
	mgr   ctrl.Manager
	shard *Shard
}

// shardedBudget is the operator-wide status budget of the sharded
// replicas in these tests; each takes an equal share of it.
const shardedBudget = 300

// budgetShares checks that each replica's status budget is its equal share
// of shardedBudget among rs.
func budgetShares(rs []*replica) error {
	for _, r := range rs {
		if got, want := r.rec.StatusBudget.PerSecond(), float64(shardedBudget)/float64(len(rs)); got != want {
			return fmt.Errorf("replica %s writes status at %.1f/s, want its share %.1f/s of %d", r.name, got, want, shardedBudget)
		}
	}
	return nil
}

// startReplica runs a sharded replica as the operator does: a cache of its
// own consumers, the reconciler on every replica, the sharder on the
// elected one, all on short Leases so that a test sees a crash's effect in
// seconds. Stopping it is a crash: neither Lease is released.
func startReplica(t *testing.T, group, name string, log *writeLog) *replica {
	t.Helper()
	lease, renew, retry := 4*time.Second, 3*time.Second, 500*time.Millisecond
	budget := NewStatusBudget(shardedBudget)
	sh, err := NewShard(ShardOptions{Identity: name, Namespace: testenv.OperatorNamespace, Group: group,
		LeaseDuration: lease, RenewDeadline: renew, RenewPeriod: retry, Members: budget.Share})
	if err != nil {
		t.Fatal(err)
	}
	o := ctrl.Options{
		Scheme:                  testenv.Scheme(),
		Metrics:                 metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:  "0",
		Controller:              config.Controller{SkipNameValidation: ptrTo(true)},
		Cache:                   sh.CacheOptions(CacheOptions(nil)),
		Client:                  ClientOptions(),
		LeaderElection:          true,
		LeaderElectionID:        group,
		LeaderElectionNamespace: testenv.OperatorNamespace,
		LeaseDuration:           &lease, RenewDeadline: &renew, RetryPeriod: &retry,
	}
	mgr, err := ctrl.NewManager(env.Operator, o)
	if err != nil {
		t.Fatal(err)
	}
	moving := &shardLag{subs: map[lag.ConsumerKey]bool{}}
	rec := &EventConsumerReconciler{Client: recordingClient{Client: mgr.GetClient(), replica: name, log: log},
		APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("lagscale"), Shard: sh,
		Lag: moving, StatusInterval: 200 * time.Millisecond, StatusBudget: budget}
	if err := rec.SetupWithManager(mgr, controller.Options{NeedLeaderElection: ptrTo(false)}); err != nil {
		t.Fatal(err)
	}
	if err := sh.Setup(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	op := &operator{cancel: cancel, done: make(chan struct{}), rec: rec}
	go moving.run(ctx, rec, 300*time.Millisecond)
	go func() {
		defer close(op.done)
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("replica %s: %v", name, err)
		}
	}()
	t.Cleanup(op.stop)
	return &replica{operator: op, name: name, mgr: mgr, shard: sh}
}

// tableMoves watches group's bucket table and records every change of a
// bucket's owner, as the API server saw it.
type tableMoves struct {
	mu    sync.Mutex
	moves []bucketMove
}

type bucketMove struct {
	bucket   int
	from, to string
	at       time.Time
}

func watchTableMoves(t *testing.T, group string) *tableMoves {
	t.Helper()
	wc, err := client.NewWithWatch(env.Admin, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	w, err := wc.Watch(context.Background(), &corev1.ConfigMapList{}, client.InNamespace(testenv.OperatorNamespace),
		client.MatchingFields{"metadata.name": ShardTableName(group)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	m := &tableMoves{}
	go func() {
		last := shard.NewTable()
		for ev := range w.ResultChan() {
			cm, ok := ev.Object.(*corev1.ConfigMap)
			if !ok || ev.Type == watch.Deleted {
				continue
			}
			tab, err := shard.Decode(cm.Data)
			if err != nil {
				continue
			}
			m.mu.Lock()
			for b := range tab {
				if tab[b].Owner != last[b].Owner {
					m.moves = append(m.moves, bucketMove{bucket: b, from: last[b].Owner, to: tab[b].Owner, at: time.Now()})
				}
			}
			m.mu.Unlock()
			last = tab
		}
	}()
	return m
}

// check returns the moves from one live replica straight to another
// (without the owner's acknowledgement), and the number of
// acknowledgements (an owner cleared).
func (m *tableMoves) check(dead string, killed time.Time) (direct []bucketMove, acks int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, mv := range m.moves {
		switch {
		case mv.from != "" && mv.to == "":
			acks++
		case mv.from != "" && mv.to != "" && (mv.from != dead || mv.at.Before(killed)):
			direct = append(direct, mv)
		}
	}
	return direct, acks
}

// placement checks that every consumer of ns is labelled with its bucket,
// that group's table gives every bucket to the member shard.Plan gives it
// among members with no hand-over pending, and that each consumer's
// Deployment carries its bucket label.
func placement(ctx context.Context, group, ns string, names []string, members []string) error {
	tab, err := apiTable(ctx, group)
	if err != nil {
		return err
	}
	if _, changed := shard.Plan(tab, members); changed {
		return fmt.Errorf("the bucket table is not settled on %v: shares %v", members, tab.Shares())
	}
	for b, e := range tab {
		if e.DrainTo != "" || !slices.Contains(members, e.Owner) {
			return fmt.Errorf("bucket %d: %+v, want an owner among %v and no hand-over", b, e, members)
		}
	}
	for _, n := range names {
		ec := &v1alpha1.EventConsumer{}
		if err := env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: n}, ec); err != nil {
			return err
		}
		want := shard.BucketOf(string(ec.UID))
		if got := ec.Labels[shard.LabelBucket]; got != want {
			return fmt.Errorf("%s is labelled for bucket %q, want %q (labels %v)", n, got, want, ec.Labels)
		}
		dep := &appsv1.Deployment{}
		if err := env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: n}, dep); err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
		if got := dep.Labels[shard.LabelBucket]; got != want {
			return fmt.Errorf("the Deployment of %s is labelled for bucket %q, want %q", n, got, want)
		}
	}
	return nil
}

// cached is what a replica's cache holds of ns: its EventConsumers and
// Deployments, by name.
func (r *replica) cached(ctx context.Context, ns string) (consumers, deployments []string, err error) {
	ecs := &v1alpha1.EventConsumerList{}
	if err := r.mgr.GetCache().List(ctx, ecs, client.InNamespace(ns)); err != nil {
		return nil, nil, err
	}
	for _, ec := range ecs.Items {
		consumers = append(consumers, ec.Name)
	}
	deps := &appsv1.DeploymentList{}
	if err := r.mgr.GetCache().List(ctx, deps, client.InNamespace(ns)); err != nil {
		return nil, nil, err
	}
	for _, d := range deps.Items {
		deployments = append(deployments, d.Name)
	}
	sort.Strings(consumers)
	sort.Strings(deployments)
	return consumers, deployments, nil
}

// coveredOnce checks that the replicas' caches split the consumers and
// their Deployments between them: each exactly once, each at its owner.
func coveredOnce(ctx context.Context, group, ns string, names []string, replicas []*replica) error {
	seen := map[string]string{}
	for _, r := range replicas {
		consumers, deployments, err := r.cached(ctx, ns)
		if err != nil {
			return err
		}
		if !slices.Equal(consumers, deployments) {
			return fmt.Errorf("%s caches consumers %v but Deployments %v", r.name, consumers, deployments)
		}
		for _, c := range consumers {
			if other, ok := seen[c]; ok {
				return fmt.Errorf("%s is cached by %s and %s", c, other, r.name)
			}
			seen[c] = r.name
		}
	}
	for _, n := range names {
		by, ok := seen[n]
		if !ok {
			return fmt.Errorf("%s is cached by no replica", n)
		}
		if owner := ownerOf(ctx, group, types.NamespacedName{Namespace: ns, Name: n}); by != owner {
			return fmt.Errorf("%s is cached by %s, but its bucket is %q's", n, by, owner)
		}
	}
	return nil
}

func memberNames(rs []*replica) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.name)
	}
	slices.Sort(out)
	return out
}

// membershipLeases checks that group's membership Leases are exactly those
// of members.
func membershipLeases(ctx context.Context, group string, members []string) error {
	list := &coordinationv1.LeaseList{}
	if err := env.Client.List(ctx, list, client.InNamespace(testenv.OperatorNamespace), client.MatchingLabels{shard.LabelMember: group}); err != nil {
		return err
	}
	var got, want []string
	for _, l := range list.Items {
		got = append(got, l.Name)
	}
	for _, m := range members {
		want = append(want, leaseName(m))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		return fmt.Errorf("membership Leases %v, want %v", got, want)
	}
	return nil
}

// checkAtEnd fails the test, once every replica has stopped, for each write
// a replica made of a consumer whose bucket it did not own. Call it before
// starting the replicas: cleanups run last-in first-out.
func (l *writeLog) checkAtEnd(t *testing.T) {
	t.Cleanup(func() {
		bad, n := l.byNonOwners()
		for _, w := range bad {
			t.Errorf("%s wrote the %s of %s while %q owned it", w.replica, w.what, w.consumer, w.owner)
		}
		t.Logf("%d status and Deployment writes, %d by a non-owner", n, len(bad))
	})
}

// createShardConsumers creates n consumers c00, c01, ... in ns and
// returns their names.
func createShardConsumers(t *testing.T, ns string, n int) []string {
	t.Helper()
	var names []string
	for i := range n {
		name := fmt.Sprintf("c%02d", i)
		names = append(names, name)
		createConsumer(t, ns, name, v1alpha1.EventConsumerSpec{
			Topics: []string{"t"}, ConsumerGroup: name,
			Kafka:   v1alpha1.KafkaConnection{BootstrapServers: []string{"k:9092"}},
			Handler: &v1alpha1.HandlerSpec{Image: "handler:1"},
		})
	}
	return names
}

// TestShardedReplicas runs three sharded replicas in one process against the
// real API server. The buckets of consumers created while one replica runs
// are handed to two joining replicas through the table's hand-over and the
// owner's acknowledgement, never straight from one live owner to another; every consumer is then
// cached and written by exactly its owner; a crashed replica's consumers
// move to the others once its Lease expires, and their new owners write
// them. No status or Deployment write ever comes from a replica that did
// not own the consumer at that moment.
func TestShardedReplicas(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	group := "shards-" + ns
	moves := watchTableMoves(t, group)
	writes := &writeLog{group: group}
	writes.checkAtEnd(t)

	a := startReplica(t, group, ns+"-a", writes)
	names := createShardConsumers(t, ns, 24)
	eventually(t, 3*wait, func() error { return placement(ctx, group, ns, names, memberNames([]*replica{a})) })

	b := startReplica(t, group, ns+"-b", writes)
	c := startReplica(t, group, ns+"-c", writes)
	all := []*replica{a, b, c}
	eventually(t, 3*wait, func() error { return placement(ctx, group, ns, names, memberNames(all)) })
	eventually(t, wait, func() error { return coveredOnce(ctx, group, ns, names, all) })
	eventually(t, wait, func() error { return budgetShares(all) })
	for _, r := range all {
		own, _, _ := r.cached(ctx, ns)
		t.Logf("%s owns %d of %d consumers", r.name, len(own), len(names))
	}

	// Crash the first replica, most likely the elected sharder too.
	owned, _, err := a.cached(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	a.stop()
	rest := []*replica{b, c}
	eventually(t, 3*wait, func() error { return placement(ctx, group, ns, names, memberNames(rest)) })
	eventually(t, wait, func() error { return writes.writtenBy(ctx, ns, owned, killed) })
	t.Logf("the crashed replica's %d consumers were written by their new owners %s after the crash", len(owned), time.Since(killed).Round(100*time.Millisecond))
	eventually(t, wait, func() error { return coveredOnce(ctx, group, ns, names, rest) })
	eventually(t, wait, func() error { return budgetShares(rest) })
	// Its membership Lease is deleted once it has been expired for another
	// duration; the live replicas' stay.
	eventually(t, wait, func() error { return membershipLeases(ctx, group, memberNames(rest)) })

	direct, acks := moves.check(a.name, killed)
	if len(direct) > 0 {
		t.Errorf("%d buckets moved from a live owner to another without its acknowledgement, first %+v", len(direct), direct[0])
	}
	if acks == 0 {
		t.Errorf("no owner acknowledged a hand-over: the joins moved nothing through a drain")
	}
	t.Logf("%d buckets' hand-overs acknowledged", acks)
}

// TestHandOverWaitsForWritesInFlight: an owner asked to hand buckets over
// acknowledges only once the writes it has in flight are done. Replica a
// owns every consumer and its status writes are held when b joins; they
// are let go once the table has asked a to hand buckets over and a while
// has passed. Every one of them must still find a the owner: without the
// guard that makes the hand-over wait, a acknowledges, the sharder gives
// the buckets to b, and a's held writes land in b's buckets.
func TestHandOverWaitsForWritesInFlight(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	group := "handover-" + ns
	writes := &writeLog{group: group}
	writes.checkAtEnd(t)
	a := startReplica(t, group, ns+"-a", writes)
	names := createShardConsumers(t, ns, 12)
	eventually(t, 3*wait, func() error { return placement(ctx, group, ns, names, memberNames([]*replica{a})) })

	release := writes.hold(a.name)
	released := false
	defer func() {
		if !released {
			release()
		}
	}()
	// a's reconciles now stop at their status write, with their consumers
	// (lag moves every 300 ms) still a's.
	eventually(t, wait, func() error {
		writes.mu.Lock()
		defer writes.mu.Unlock()
		if writes.heldSeen == 0 {
			return fmt.Errorf("no status write of %s held yet", a.name)
		}
		return nil
	})
	b := startReplica(t, group, ns+"-b", writes)
	eventually(t, wait, func() error {
		tab, err := apiTable(ctx, group)
		if err != nil {
			return err
		}
		if len(tab.Draining(a.name)) == 0 && tab.Shares()[b.name] == 0 {
			return fmt.Errorf("%s not asked to hand anything to %s yet", a.name, b.name)
		}
		return nil
	})
	// Long enough for an acknowledgement and the sharder's next step.
	time.Sleep(3 * time.Second)
	released = true
	release()
	all := []*replica{a, b}
	eventually(t, 3*wait, func() error { return placement(ctx, group, ns, names, memberNames(all)) })
	eventually(t, wait, func() error { return coveredOnce(ctx, group, ns, names, all) })
}
