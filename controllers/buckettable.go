package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/lagscale/lagscale/internal/shard"
)

// The bucket table is a ConfigMap in the operator's namespace, one per
// operator (named after its group, the leader election ID): for each
// bucket, its owner, or its owner and the member it is handed to. The
// sharder writes the owners; an owner writes only its acknowledgement of
// a hand-over.
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=list;watch;create;update,namespace=lagscale-system

// ShardTableName is the name of the bucket table of the operator whose
// leader election ID is group, a ConfigMap in the operator's namespace.
func ShardTableName(group string) string { return group + "-shards" }

// newTableCache makes a cache that holds the bucket table only, started on
// every replica.
func newTableCache(mgr ctrl.Manager, o ShardOptions) (cache.Cache, error) {
	c, err := cache.New(mgr.GetConfig(), cache.Options{
		Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper(),
		ByObject: map[client.Object]cache.ByObject{&corev1.ConfigMap{}: {
			Namespaces: map[string]cache.Config{o.Namespace: {FieldSelector: fields.OneTermEqualSelector("metadata.name", ShardTableName(o.Group))}},
		}},
		DefaultTransform: stripForCache,
	})
	if err != nil {
		return nil, fmt.Errorf("create the bucket table's cache: %w", err)
	}
	// A cache added as a plain runnable would start on the elected
	// replica only.
	if err := mgr.Add(everyReplica{start: c.Start}); err != nil {
		return nil, fmt.Errorf("add the bucket table's cache: %w", err)
	}
	return c, nil
}

// readTable returns the bucket table and the ConfigMap it is in (nil when
// there is none yet: no bucket has an owner).
func readTable(ctx context.Context, c client.Reader, o ShardOptions) (shard.Table, *corev1.ConfigMap, error) {
	cm := &corev1.ConfigMap{}
	err := c.Get(ctx, client.ObjectKey{Namespace: o.Namespace, Name: ShardTableName(o.Group)}, cm)
	if apierrors.IsNotFound(err) {
		return shard.NewTable(), nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read the bucket table: %w", err)
	}
	t, err := shard.Decode(cm.Data)
	if err != nil {
		return nil, nil, err
	}
	return t, cm, nil
}

// tableFollower keeps the replica's buckets as the table says: it gives
// up those it is asked to hand over (and acknowledges in the table once
// it no longer writes them), and takes those the table gives it.
type tableFollower struct {
	owner  *bucketOwner
	cache  cache.Cache
	client client.Client
	o      ShardOptions
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: every
// replica follows the table.
func (f *tableFollower) NeedLeaderElection() bool { return false }

// tableRetry is how soon a failed read or acknowledgement is tried again
// when no change of the table comes first.
const tableRetry = time.Second

// Start implements manager.Runnable.
func (f *tableFollower) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("shard-table")
	kick := make(chan struct{}, 1)
	poke := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	inf, err := f.cache.GetInformer(ctx, &corev1.ConfigMap{})
	if err != nil {
		return fmt.Errorf("watch the bucket table: %w", err)
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		UpdateFunc: func(any, any) { poke() },
		DeleteFunc: func(any) { poke() },
	}); err != nil {
		return fmt.Errorf("watch the bucket table: %w", err)
	}
	if !f.cache.WaitForCacheSync(ctx) {
		return nil
	}
	poke()
	// Armed only while something failed or an acknowledgement lost its
	// race: otherwise a change of the table is what brings the next look.
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-kick:
		case <-retry:
		}
		again, err := f.follow(ctx)
		if err != nil {
			log.Error(err, "Following the bucket table failed; retrying")
		}
		retry = nil
		if again || err != nil {
			retry = time.After(tableRetry)
		}
	}
}

// follow makes the replica's buckets those the table gives it, and
// acknowledges the hand-overs it is asked for. It reports whether an
// acknowledgement is still to be made.
func (f *tableFollower) follow(ctx context.Context) (again bool, err error) {
	t, cm, err := readTable(ctx, f.cache, f.o)
	if err != nil {
		return false, err
	}
	if f.owner.set(t.Owned(f.o.Identity)) {
		ctrl.LoggerFrom(ctx).WithName("shard-table").Info("Buckets changed", "owned", f.owner.ownedCount())
	}
	draining := t.Draining(f.o.Identity)
	if len(draining) == 0 || cm == nil {
		return false, nil
	}
	// set has taken the draining buckets out of those written: no write of
	// theirs follows. The update is conditional on the version read; one
	// that lost a race is made again.
	next, _ := t.Ack(f.o.Identity, draining)
	cm = cm.DeepCopy()
	cm.Data = next.Encode()
	if err := f.client.Update(ctx, cm); err != nil {
		if apierrors.IsConflict(err) {
			return true, nil
		}
		return true, fmt.Errorf("acknowledge the hand-over of %d buckets: %w", len(draining), err)
	}
	ctrl.LoggerFrom(ctx).WithName("shard-table").Info("Handed over", "buckets", len(draining))
	return false, nil
}

// everyReplica runs start on every replica, elected or not.
type everyReplica struct{ start func(context.Context) error }

func (e everyReplica) Start(ctx context.Context) error { return e.start(ctx) }
func (e everyReplica) NeedLeaderElection() bool        { return false }

var (
	_ manager.LeaderElectionRunnable = &tableFollower{}
	_ manager.LeaderElectionRunnable = everyReplica{}
)
