package controllers

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/deploy"
)

// Field indexes that map a Secret or KafkaCluster back to the consumers
// that need it.
const (
	indexSecrets    = ".spec.kafka.secrets"
	indexClusterRef = ".spec.kafka.clusterRef"
	indexClusterSec = ".spec.secrets"
)

// setup creates the reconciler's in-memory state; tests that call
// Reconcile directly call it instead of SetupWithManager.
func (r *EventConsumerReconciler) setup() {
	r.secrets = newSecretCache()
	r.scalers = newScalers()
	r.applied = newAppliedCache()
}

// SetupWithManager registers the reconciler, its indexes and its watches.
func (r *EventConsumerReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	r.setup()
	r.cache = mgr.GetCache()
	ctx := context.Background()
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &v1alpha1.EventConsumer{}, indexSecrets, func(o client.Object) []string {
		ec := o.(*v1alpha1.EventConsumer)
		if ec.Spec.Kafka.ClusterRef != nil {
			return nil
		}
		return deploy.ConnectionOf(ec, nil).SecretNames()
	}); err != nil {
		return fmt.Errorf("index EventConsumer secrets: %w", err)
	}
	if err := idx.IndexField(ctx, &v1alpha1.EventConsumer{}, indexClusterRef, func(o client.Object) []string {
		ec := o.(*v1alpha1.EventConsumer)
		if ec.Spec.Kafka.ClusterRef == nil {
			return nil
		}
		return []string{ec.Spec.Kafka.ClusterRef.Name}
	}); err != nil {
		return fmt.Errorf("index EventConsumer clusterRef: %w", err)
	}
	if err := idx.IndexField(ctx, &v1alpha1.KafkaCluster{}, indexClusterSec, func(o client.Object) []string {
		kc := o.(*v1alpha1.KafkaCluster)
		return deploy.Connection{TLS: kc.Spec.TLS, SASL: kc.Spec.SASL}.SecretNames()
	}); err != nil {
		return fmt.Errorf("index KafkaCluster secrets: %w", err)
	}

	if err := idx.IndexField(ctx, &v1alpha1.EventConsumer{}, indexScaleTarget, func(o client.Object) []string {
		ref := o.(*v1alpha1.EventConsumer).Spec.ScaleTargetRef
		if ref == nil {
			return nil
		}
		return []string{targetKey(ref.APIVersion, ref.Kind, ref.Name)}
	}); err != nil {
		return fmt.Errorf("index EventConsumer scaleTargetRef: %w", err)
	}
	if err := r.setupScaleTargets(mgr); err != nil {
		return err
	}

	b := ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.EventConsumer{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&appsv1.Deployment{}).
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.consumersForSecret)).
		Watches(&v1alpha1.KafkaCluster{}, handler.EnqueueRequestsFromMapFunc(r.consumersForCluster)).
		Watches(&autoscalingv2.HorizontalPodAutoscaler{}, handler.EnqueueRequestsFromMapFunc(r.consumersForHPA)).
		WithOptions(opts).
		Named("eventconsumer")
	if src := r.lagEvents(); src != nil {
		b = b.WatchesRawSource(src)
	}
	c, err := b.Build(r)
	if err != nil {
		return err
	}
	return r.startTargetWatches(c)
}

// consumersForSecret maps a Secret to the consumers that use it, inline or
// through a KafkaCluster.
func (r *EventConsumerReconciler) consumersForSecret(ctx context.Context, o client.Object) []reconcile.Request {
	var out []reconcile.Request
	list := &v1alpha1.EventConsumerList{}
	if err := r.List(ctx, list, client.InNamespace(o.GetNamespace()), client.MatchingFields{indexSecrets: o.GetName()}); err != nil {
		// A map function cannot return an error; the consumers are
		// reconciled again at their next requeue, so say why this one
		// change was not followed.
		ctrl.LoggerFrom(ctx).Error(err, "Listing EventConsumers for a Secret change failed", "secret", klog.KObj(o))
	} else {
		out = append(out, requestsFor(list)...)
	}
	clusters := &v1alpha1.KafkaClusterList{}
	if err := r.List(ctx, clusters, client.InNamespace(o.GetNamespace()), client.MatchingFields{indexClusterSec: o.GetName()}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing KafkaClusters for a Secret change failed", "secret", klog.KObj(o))
	} else {
		for i := range clusters.Items {
			out = append(out, r.consumersForCluster(ctx, &clusters.Items[i])...)
		}
	}
	return out
}

// consumersForCluster maps a KafkaCluster to the consumers that reference it.
func (r *EventConsumerReconciler) consumersForCluster(ctx context.Context, o client.Object) []reconcile.Request {
	list := &v1alpha1.EventConsumerList{}
	if err := r.List(ctx, list, client.InNamespace(o.GetNamespace()), client.MatchingFields{indexClusterRef: o.GetName()}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing EventConsumers for a KafkaCluster change failed", "kafkaCluster", klog.KObj(o))
		return nil
	}
	return requestsFor(list)
}

func requestsFor(list *v1alpha1.EventConsumerList) []reconcile.Request {
	out := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return out
}
