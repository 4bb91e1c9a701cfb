package controllers

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/shard"
)

// draining reports whether the sharder asked this replica to hand ec over.
func (r *EventConsumerReconciler) draining(ec *v1alpha1.EventConsumer) bool {
	if r.Shard == "" {
		return false
	}
	_, ok := ec.Labels[shard.LabelDrain]
	return ok
}

// handOver is the owner's half of a hand-over: it stops writing ec (drops
// its scaler, its lag subscription and everything held in memory, so no
// arrival queues work for it), then acknowledges by removing the shard and
// drain labels. Only after that does the sharder label the consumer for its
// new owner, so the two never write it at once. Reconciles of one consumer
// never overlap, so no write of this replica follows the acknowledgement;
// the new owner continues from status.learned.
//
// The patch is conditional on the resourceVersion read: a stale cached
// copy (a second drain event before the cache saw the first
// acknowledgement) fails with a conflict and is retried, or finds the
// consumer gone from this shard.
func (r *EventConsumerReconciler) handOver(ctx context.Context, ec *v1alpha1.EventConsumer) error {
	key := client.ObjectKeyFromObject(ec)
	r.forget(key)
	orig := ec.DeepCopy()
	delete(ec.Labels, shard.LabelDrain)
	delete(ec.Labels, shard.LabelShard)
	err := r.Patch(ctx, ec, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("acknowledge hand-over: %w", err)
	}
	ctrl.LoggerFrom(ctx).Info("Handed over", "eventConsumer", klog.KObj(ec), "to", orig.Labels[shard.LabelDrain])
	return nil
}
