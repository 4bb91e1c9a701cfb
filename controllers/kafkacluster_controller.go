package controllers

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/deploy"
	"github.com/lagscale/lagscale/internal/lag"
)

// clusterStatusPeriod is how often a KafkaCluster's status is refreshed
// from the lag engine.
const clusterStatusPeriod = 15 * time.Second

// KafkaClusterReconciler reports a KafkaCluster's brokers, reachability and
// the number of consumers that use it. The connection itself belongs to the
// lag engine, shared by those consumers.
type KafkaClusterReconciler struct {
	client.Client

	// Lag is the lag engine; nil leaves Ready Unknown.
	Lag LagSource

	// Sharded counts the consumers from the API server, a page at a time:
	// in a sharded operator this replica (the sharder's) caches only its
	// own consumers.
	Sharded bool
	// APIReader reads from the API server; needed when Sharded.
	APIReader client.Reader
	// Probe asks a cluster for its brokers over a connection of its own.
	// Sharded, this replica polls only the clusters of the consumers it
	// owns; a cluster that others' consumers use is probed instead, so its
	// Ready says whether it is reachable. Nil leaves it Unknown.
	Probe func(context.Context, lag.ClusterConfig) lag.ClusterStatus

	secrets *secretCache
	// cache is the manager's informer cache, where Secret metadata is read.
	cache client.Reader
}

// Reconcile refreshes one KafkaCluster's status.
func (r *KafkaClusterReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	kc := &v1alpha1.KafkaCluster{}
	if err := r.Get(ctx, req.NamespacedName, kc); err != nil {
		if apierrors.IsNotFound(err) {
			r.secrets.retain(secretReferrer("KafkaCluster", req.NamespacedName), nil)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get KafkaCluster: %w", err)
	}
	orig := kc.DeepCopy()

	n, err := r.countConsumers(ctx, kc)
	if err != nil {
		return ctrl.Result{}, err
	}
	kc.Status.Consumers = n

	status, reason, msg := metav1.ConditionUnknown, v1alpha1.ReasonWaitingForLag, "no EventConsumer uses this cluster yet, so it is not polled"
	if r.Sharded && n > 0 {
		// Reachability comes from this replica's own connections.
		msg = "the replica that reports on KafkaClusters (the sharder) owns no EventConsumer of this cluster, so it does not poll it"
	}
	cs, wait, readErr := r.clusterStatus(ctx, kc, r.Sharded && n > 0)
	switch {
	case readErr != nil:
		// Not the cluster's state: lagscale could not read its credentials,
		// so it cannot tell whether the cluster is reachable.
		status, reason, msg = metav1.ConditionUnknown, v1alpha1.ReasonSecretReadFailed, readErr.Error()
	case wait != nil:
		status, reason, msg = metav1.ConditionFalse, wait.reason, wait.message
	case cs != nil:
		kc.Status.Brokers = cs.brokers
		if cs.reachable {
			status, reason, msg = metav1.ConditionTrue, v1alpha1.ReasonKafkaReachable, fmt.Sprintf("%d brokers reachable", len(cs.brokers))
		} else {
			status, reason, msg = metav1.ConditionFalse, v1alpha1.ReasonKafkaUnreachable, cs.err
		}
		if cs.probed {
			msg += " (probed: the replica that reports on KafkaClusters owns none of its consumers)"
		}
	}
	meta.SetStatusCondition(&kc.Status.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionReady, Status: status, Reason: reason, Message: msg, ObservedGeneration: kc.Generation,
	})
	kc.Status.ObservedGeneration = kc.Generation
	if !equality.Semantic.DeepEqual(orig.Status, kc.Status) {
		if err := r.Status().Patch(ctx, kc, client.MergeFrom(orig)); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
	}
	if readErr != nil {
		return ctrl.Result{}, readErr
	}
	return ctrl.Result{RequeueAfter: clusterStatusPeriod}, nil
}

// SetupWithManager registers the reconciler; consumers coming and going
// refresh the count.
func (r *KafkaClusterReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	r.secrets = newSecretCache()
	r.cache = mgr.GetCache()
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.KafkaCluster{}).
		Watches(&v1alpha1.EventConsumer{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			ec := o.(*v1alpha1.EventConsumer)
			if ec.Spec.Kafka.ClusterRef == nil {
				return nil
			}
			return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: ec.Namespace, Name: ec.Spec.Kafka.ClusterRef.Name}}}
		})).
		WithOptions(opts).
		Named("kafkacluster").
		Complete(r)
}

// consumerPage is how many EventConsumers a sharded count reads at once.
const consumerPage = 500

// countConsumers counts the EventConsumers that reference kc: from the
// cache's index, or, sharded, from the API server page by page.
func (r *KafkaClusterReconciler) countConsumers(ctx context.Context, kc *v1alpha1.KafkaCluster) (int32, error) {
	if !r.Sharded {
		consumers := &v1alpha1.EventConsumerList{}
		if err := r.List(ctx, consumers, client.InNamespace(kc.Namespace), client.MatchingFields{indexClusterRef: kc.Name}); err != nil {
			return 0, fmt.Errorf("list EventConsumers: %w", err)
		}
		return int32(len(consumers.Items)), nil
	}
	var n int32
	var next string
	for {
		page := &v1alpha1.EventConsumerList{}
		if err := r.APIReader.List(ctx, page, client.InNamespace(kc.Namespace), client.Limit(consumerPage), client.Continue(next)); err != nil {
			return 0, fmt.Errorf("list EventConsumers: %w", err)
		}
		for i := range page.Items {
			if ref := page.Items[i].Spec.Kafka.ClusterRef; ref != nil && ref.Name == kc.Name {
				n++
			}
		}
		if next = page.Continue; next == "" {
			return n, nil
		}
	}
}

type clusterView struct {
	reachable bool
	brokers   []string
	err       string
	// probed is true when the view comes from a probe, not from polls.
	probed bool
}

// clusterStatus asks the lag engine about the cluster's shared connection.
// It is found by the same identity (servers plus credentials) that the
// consumers register with, so the referenced Secrets are read first: a
// missing Secret comes back as a wait condition and a failed read as an
// error, each reported as what it is rather than as "not polled yet".
// A nil view with no wait and no error means the engine does not poll the
// cluster (yet).
//
// With probe, a cluster the engine does not poll is probed (r.Probe).
func (r *KafkaClusterReconciler) clusterStatus(ctx context.Context, kc *v1alpha1.KafkaCluster, probe bool) (*clusterView, *condition, error) {
	conn := &resolvedConnection{Connection: deploy.Connection{BootstrapServers: kc.Spec.BootstrapServers, TLS: kc.Spec.TLS, SASL: kc.Spec.SASL}}
	r.secrets.retain(secretReferrer("KafkaCluster", client.ObjectKeyFromObject(kc)), secretKeys(kc.Namespace, conn.SecretNames()))
	conn, wait, err := readSecrets(ctx, secretReader{Reader: r.Client, Meta: r.cache, memo: r.secrets}, kc.Namespace, conn)
	if err != nil || wait != nil {
		return nil, wait, err
	}
	cfg := clusterConfig(conn)
	var cs lag.ClusterStatus
	var ok bool
	if r.Lag != nil {
		cs, ok = r.Lag.ClusterStatus(cfg.ID())
	}
	probed := !ok && probe && r.Probe != nil
	if probed {
		cs, ok = r.Probe(ctx, cfg), true
	}
	if !ok {
		return nil, nil, nil
	}
	return &clusterView{reachable: cs.Reachable, brokers: cs.Brokers, err: cs.Error, probed: probed}, nil, nil
}
