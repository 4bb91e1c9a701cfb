package controllers

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/shard"
)

// membershipCheck is how often the sharder looks at the Leases' times: a
// Lease expires without an event, so its consumers move within this much
// of its expiry.
const membershipCheck = time.Second

// conflictRetry is how soon a label patch that lost a race is retried,
// once the cache has seen the other write.
const conflictRetry = 200 * time.Millisecond

// The sharder's label patches are independent, one object each, and come
// in bulk when many consumers are created at once (each consumer is
// labelled with its bucket once in its life). They run in parallel, over
// a client of their own whose rate limit neither waits behind the elected
// replica's Deployment and status writes nor holds them up.
const (
	sharderWorkers = 32
	sharderQPS     = 500
)

// sharder labels every EventConsumer with its bucket, once, and keeps the
// bucket table's owners on the live members. It runs on the elected
// replica only, over a cache of its own that holds every EventConsumer's
// metadata (not their specs) and the membership Leases; it reads the
// table from the replica's table cache.
type sharder struct {
	client client.Client
	cache  cache.Cache
	table  cache.Cache
	o      ShardOptions
	now    func() time.Time
}

// eventConsumerMetadata is the metadata-only form of an EventConsumer.
func eventConsumerMetadata() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("EventConsumer"))
	return m
}

// setupSharder adds the sharder, its cache and its controller to mgr.
func setupSharder(mgr ctrl.Manager, o ShardOptions, table cache.Cache) error {
	co := cache.Options{
		Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper(),
		ByObject: map[client.Object]cache.ByObject{&coordinationv1.Lease{}: {
			Namespaces: map[string]cache.Config{o.Namespace: {}}, Label: memberSelector(o.Group),
		}},
		DefaultTransform: stripForCache,
	}
	if len(o.WatchNamespaces) > 0 {
		co.DefaultNamespaces = map[string]cache.Config{}
		for _, n := range o.WatchNamespaces {
			co.DefaultNamespaces[n] = cache.Config{}
		}
	}
	c, err := cache.New(mgr.GetConfig(), co)
	if err != nil {
		return fmt.Errorf("create the sharder's cache: %w", err)
	}
	// Started on the elected replica only; added as a plain runnable, not
	// as a cache, which every replica would start.
	if err := mgr.Add(electedOnly{start: c.Start}); err != nil {
		return fmt.Errorf("add the sharder's cache: %w", err)
	}
	cfg := rest.CopyConfig(mgr.GetConfig())
	cfg.QPS, cfg.Burst = sharderQPS, sharderQPS
	cl, err := client.New(cfg, client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()})
	if err != nil {
		return fmt.Errorf("create the sharder's client: %w", err)
	}
	s := &sharder{client: cl, cache: c, table: table, o: o, now: time.Now}
	return ctrl.NewControllerManagedBy(mgr).
		Named("sharder").
		WithOptions(controller.Options{MaxConcurrentReconciles: sharderWorkers}).
		WatchesRawSource(source.Kind(c, client.Object(eventConsumerMetadata()), &handler.EnqueueRequestForObject{})).
		WatchesRawSource(source.Func(s.assignBuckets)).
		Complete(s)
}

// electedOnly runs start on the elected replica only.
type electedOnly struct{ start func(context.Context) error }

func (e electedOnly) Start(ctx context.Context) error { return e.start(ctx) }
func (e electedOnly) NeedLeaderElection() bool        { return true }

// live returns the live members at now, from the Lease cache.
func (s *sharder) live(ctx context.Context) ([]string, error) {
	leases, err := s.leases(ctx)
	if err != nil {
		return nil, err
	}
	members := make([]shard.Member, 0, len(leases))
	for i := range leases {
		members = append(members, memberOf(&leases[i]))
	}
	return shard.Live(members, s.now()), nil
}

func (s *sharder) leases(ctx context.Context) ([]coordinationv1.Lease, error) {
	leases := &coordinationv1.LeaseList{}
	if err := s.cache.List(ctx, leases); err != nil {
		return nil, fmt.Errorf("list membership Leases: %w", err)
	}
	return leases.Items, nil
}

// memberOf is what membership needs of a Lease.
func memberOf(l *coordinationv1.Lease) shard.Member {
	m := shard.Member{}
	if h := l.Spec.HolderIdentity; h != nil {
		m.Name = *h
	}
	if r := l.Spec.RenewTime; r != nil {
		m.RenewTime = r.Time
	}
	if d := l.Spec.LeaseDurationSeconds; d != nil {
		m.Duration = time.Duration(*d) * time.Second
	}
	return m
}

// collect deletes the membership Leases of replicas that are gone
// (shard.Gone), so that a Deployment's rollouts, which name each pod anew,
// do not leave a Lease per pod behind. The delete is conditional on the
// version read: a Lease renewed meanwhile stays.
func (s *sharder) collect(ctx context.Context) error {
	leases, err := s.leases(ctx)
	if err != nil {
		return err
	}
	now := s.now()
	for i := range leases {
		l := &leases[i]
		if !shard.Gone(memberOf(l), now) {
			continue
		}
		rv := l.ResourceVersion
		err := s.client.Delete(ctx, l, &client.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &rv}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("delete the Lease of gone replica %s: %w", l.Name, err)
		}
	}
	return nil
}

// assignBuckets keeps the bucket table's owners on the live members, one
// step of shard.Plan each membershipCheck: a bucket without a live owner
// goes to its member at once; one whose owner is live but which belongs
// to another member is marked for hand-over, and given to the new member
// once its owner has acknowledged. It also deletes the Leases of gone
// replicas.
func (s *sharder) assignBuckets(ctx context.Context, _ workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
	go func() {
		log := ctrl.LoggerFrom(ctx).WithName("sharder")
		var last []string
		t := time.NewTicker(membershipCheck)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := s.collect(ctx); err != nil {
				log.Error(err, "Deleting gone replicas' Leases failed")
			}
			live, err := s.live(ctx)
			if err != nil {
				log.Error(err, "Reading the members failed")
				continue
			}
			if !slices.Equal(live, last) {
				log.Info("Shard members changed", "members", live, "before", last)
				last = live
			}
			if err := s.plan(ctx, live); err != nil {
				log.Error(err, "Assigning buckets failed; retrying")
			}
		}
	}()
	return nil
}

// plan writes the table's next step for live, if it has one. The write is
// conditional on the version read, so it never undoes an owner's
// acknowledgement it has not seen; one that lost a race is retried at the
// next check.
func (s *sharder) plan(ctx context.Context, live []string) error {
	if s.table == nil {
		return nil
	}
	t, cm, err := readTable(ctx, s.table, s.o)
	if err != nil {
		return err
	}
	if cm == nil {
		// An empty table first (the operator's first start): every change
		// of owners is then an update conditional on what was read.
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: s.o.Namespace, Name: ShardTableName(s.o.Group),
			Labels: map[string]string{shard.LabelMember: s.o.Group}}}
		if err := s.client.Create(ctx, cm); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create the bucket table: %w", err)
		}
		return nil
	}
	next, changed := shard.Plan(t, live)
	if !changed {
		return nil
	}
	cm = cm.DeepCopy()
	cm.Data = next.Encode()
	err = s.client.Update(ctx, cm)
	if apierrors.IsConflict(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("write the bucket table: %w", err)
	}
	ctrl.LoggerFrom(ctx).WithName("sharder").Info("Assigned buckets", "members", live, "shares", next.Shares(), "handingOver", next.HandingOver())
	return nil
}

// Reconcile labels one EventConsumer with its bucket, once in its life.
// The labels of the earlier per-consumer sharding (the owner's name and a
// hand-over in progress) go in the same patch.
func (s *sharder) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ec := eventConsumerMetadata()
	if err := s.cache.Get(ctx, req.NamespacedName, ec); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	l := ec.GetLabels()
	want := shard.BucketOf(string(ec.GetUID()))
	_, legacyOwner := l[legacyLabelShard]
	_, legacyDrain := l[legacyLabelDrain]
	if l[shard.LabelBucket] == want && !legacyOwner && !legacyDrain {
		return ctrl.Result{}, nil
	}
	orig := ec.DeepCopy()
	l = maps.Clone(l)
	if l == nil {
		l = map[string]string{}
	}
	l[shard.LabelBucket] = want
	delete(l, legacyLabelShard)
	delete(l, legacyLabelDrain)
	ec.SetLabels(l)
	if err := s.client.Patch(ctx, ec, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		switch {
		case apierrors.IsConflict(err):
			return ctrl.Result{RequeueAfter: conflictRetry}, nil
		case apierrors.IsNotFound(err):
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("label EventConsumer: %w", err)
	}
	ctrl.LoggerFrom(ctx).V(1).Info("Labelled with its bucket", "eventConsumer", klog.KObj(ec), "bucket", want)
	return ctrl.Result{}, nil
}

// The labels of lagscale's earlier sharding, by consumer: removed when a
// consumer is labelled with its bucket.
const (
	legacyLabelShard = "sharding.lagscale.dev/shard"
	legacyLabelDrain = "sharding.lagscale.dev/drain"
)

var _ manager.LeaderElectionRunnable = electedOnly{}
