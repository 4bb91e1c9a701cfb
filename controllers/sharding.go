package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/shard"
)

// Membership Lease timing in a sharded operator, as client-go's leader
// election times its Lease: a member renews every RenewPeriod; one that
// has not renewed within RenewDeadline stops (the process exits) before
// its Lease, LeaseDuration after its last renewal, lets the sharder give
// its consumers to others.
const (
	DefaultShardLeaseDuration = 15 * time.Second
	DefaultShardRenewDeadline = 10 * time.Second
	DefaultShardRenewPeriod   = 2 * time.Second
)

// ShardOptions configure one replica of a sharded operator.
type ShardOptions struct {
	// Identity is the replica's name: the value of its shard label and the
	// holder of its Lease. The pod name.
	Identity string
	// Namespace holds the membership Leases (the operator's namespace).
	Namespace string
	// Group names the operator the replica is a member of (its leader
	// election ID): the Leases carry it in their member label, so two
	// operators in one namespace never share consumers.
	Group string
	// WatchNamespaces restricts the sharder's metadata watch as the
	// manager's cache is restricted; empty watches all namespaces.
	WatchNamespaces []string
	// LeaseDuration, RenewDeadline and RenewPeriod time the membership
	// Lease; zero uses the defaults above.
	LeaseDuration, RenewDeadline, RenewPeriod time.Duration
	// Members, when set, is told the number of live members (this replica
	// among them) after each renewal: each replica takes that share of
	// the operator-wide status budget (StatusBudget.Share).
	Members func(live int)
}

func (o ShardOptions) withDefaults() ShardOptions {
	if o.LeaseDuration == 0 {
		o.LeaseDuration = DefaultShardLeaseDuration
	}
	if o.RenewDeadline == 0 {
		o.RenewDeadline = DefaultShardRenewDeadline
	}
	if o.RenewPeriod == 0 {
		o.RenewPeriod = DefaultShardRenewPeriod
	}
	return o
}

// CacheOptions restrict o (from CacheOptions) to the objects of this
// replica's buckets: the EventConsumers whose bucket label it owns, and
// their handler Deployments (the owner sets the label on each apply). The
// selection follows the bucket table: when it changes, the two informers
// list again with the new set (bucketOwner). Secrets stay cached as
// metadata only for every namespace watched: they are shared between
// consumers, and the metadata is small.
func (s *Shard) CacheOptions(o cache.Options) cache.Options {
	byObject := map[client.Object]cache.ByObject{}
	for obj, c := range o.ByObject {
		switch obj.(type) {
		case *appsv1.Deployment, *v1alpha1.EventConsumer:
			continue
		}
		byObject[obj] = c
	}
	o.ByObject = byObject
	o.NewInformer = s.owner.newInformer
	return o
}

// shardMember holds the replica's membership Lease: it creates it, renews
// it every RenewPeriod, and ends the manager (an error) when it could not
// renew within RenewDeadline, so that a replica cut off from the API
// server stops writing before the sharder hands its consumers to others.
type shardMember struct {
	client client.Client
	reader client.Reader
	o      ShardOptions
	now    func() time.Time
}

// leaseName is the name of a replica's membership Lease.
func leaseName(identity string) string { return "lagscale-shard-" + identity }

// The membership Leases: each replica creates and renews its own, and the
// sharder lists and watches them all, and deletes those of replicas that
// are gone (the operator's namespace only).
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=list;watch;delete,namespace=lagscale-system

// NeedLeaderElection implements manager.LeaderElectionRunnable: every
// replica is a member.
func (m *shardMember) NeedLeaderElection() bool { return false }

// Start implements manager.Runnable.
func (m *shardMember) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("shard-member")
	renewed := m.now()
	t := time.NewTicker(m.o.RenewPeriod)
	defer t.Stop()
	for {
		if err := m.renew(ctx); err != nil {
			if m.now().Sub(renewed) > m.o.RenewDeadline {
				return fmt.Errorf("membership Lease %s not renewed within %s: %w", leaseName(m.o.Identity), m.o.RenewDeadline, err)
			}
			log.Error(err, "Renewing the membership Lease failed", "lease", leaseName(m.o.Identity))
		} else {
			renewed = m.now()
			m.countMembers(ctx)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// countMembers tells o.Members how many members are live, from the
// group's Leases (a list of a few small objects per renewal). A failed
// list keeps the last count: the next renewal tries again.
func (m *shardMember) countMembers(ctx context.Context) {
	if m.o.Members == nil {
		return
	}
	list := &coordinationv1.LeaseList{}
	if err := m.reader.List(ctx, list, client.InNamespace(m.o.Namespace), client.MatchingLabelsSelector{Selector: memberSelector(m.o.Group)}); err != nil {
		ctrl.LoggerFrom(ctx).WithName("shard-member").Error(err, "Counting the live members failed; the status budget's share stays")
		return
	}
	members := make([]shard.Member, 0, len(list.Items))
	for i := range list.Items {
		members = append(members, memberOf(&list.Items[i]))
	}
	m.o.Members(len(shard.Live(members, m.now())))
}

// renew creates the Lease or renews it as held by this replica.
func (m *shardMember) renew(ctx context.Context) error {
	now := metav1.NewMicroTime(m.now())
	seconds := int32(m.o.LeaseDuration / time.Second)
	l := &coordinationv1.Lease{}
	err := m.reader.Get(ctx, client.ObjectKey{Namespace: m.o.Namespace, Name: leaseName(m.o.Identity)}, l)
	if apierrors.IsNotFound(err) {
		l = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: m.o.Namespace, Name: leaseName(m.o.Identity),
			Labels: map[string]string{shard.LabelMember: m.o.Group}}}
		l.Spec = coordinationv1.LeaseSpec{HolderIdentity: &m.o.Identity, LeaseDurationSeconds: &seconds, AcquireTime: &now, RenewTime: &now}
		return m.client.Create(ctx, l)
	}
	if err != nil {
		return err
	}
	if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != m.o.Identity {
		l.Spec.AcquireTime = &now
	}
	l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds, l.Spec.RenewTime = &m.o.Identity, &seconds, &now
	return m.client.Update(ctx, l)
}

// release gives the Lease up, so that the sharder hands this replica's
// consumers to others at once instead of after the Lease's duration. Call
// it only once the manager has stopped: nothing writes any more.
func (m *shardMember) release(ctx context.Context) error {
	l := &coordinationv1.Lease{}
	if err := m.reader.Get(ctx, client.ObjectKey{Namespace: m.o.Namespace, Name: leaseName(m.o.Identity)}, l); err != nil {
		return client.IgnoreNotFound(err)
	}
	if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != m.o.Identity {
		return nil
	}
	l.Spec.HolderIdentity, l.Spec.RenewTime = nil, nil
	return m.client.Update(ctx, l)
}

// Shard is one replica's part of a sharded operator: its membership
// Lease, the buckets it owns (from the bucket table) and, on the elected
// replica, the sharder. Make it with NewShard before the manager (its
// cache options select the replica's buckets), then Setup it.
type Shard struct {
	o      ShardOptions
	owner  *bucketOwner
	member *shardMember
}

// NewShard checks o and makes the replica's part of a sharded operator.
func NewShard(o ShardOptions) (*Shard, error) {
	o = o.withDefaults()
	if o.Identity == "" || o.Namespace == "" || o.Group == "" {
		return nil, errors.New("sharding needs the replica's identity, its group and the namespace of its Lease")
	}
	if o.RenewDeadline >= o.LeaseDuration || o.RenewPeriod >= o.RenewDeadline {
		return nil, errors.New("sharding needs renew period < renew deadline < lease duration")
	}
	return &Shard{o: o, owner: newBucketOwner(o.Identity)}, nil
}

// Identity is the replica's name.
func (s *Shard) Identity() string { return s.o.Identity }

// Release gives up the replica's membership Lease after its manager has
// stopped, so that its buckets move at once. A replica that crashes
// releases nothing: its buckets move when its Lease expires.
func (s *Shard) Release(ctx context.Context) error {
	if s == nil || s.member == nil {
		return nil
	}
	return s.member.release(ctx)
}

// Setup adds to mgr, whose cache must come from s.CacheOptions, the
// replica's membership Lease, its reading of the bucket table and the
// sharder, which the manager runs on the elected replica (leader
// election). The reconcilers must run on every replica
// (NeedLeaderElection false), and the EventConsumer reconciler needs
// Shard set to s.
func (s *Shard) Setup(mgr ctrl.Manager) error {
	s.member = &shardMember{client: mgr.GetClient(), reader: mgr.GetAPIReader(), o: s.o, now: time.Now}
	if err := mgr.Add(s.member); err != nil {
		return fmt.Errorf("add membership Lease: %w", err)
	}
	table, err := newTableCache(mgr, s.o)
	if err != nil {
		return err
	}
	if err := mgr.Add(&tableFollower{owner: s.owner, cache: table, client: mgr.GetClient(), o: s.o}); err != nil {
		return fmt.Errorf("add the bucket table's follower: %w", err)
	}
	return setupSharder(mgr, s.o, table)
}

// memberSelector selects the membership Leases of group.
func memberSelector(group string) labels.Selector {
	return labels.SelectorFromSet(labels.Set{shard.LabelMember: group})
}

var _ manager.LeaderElectionRunnable = &shardMember{}
