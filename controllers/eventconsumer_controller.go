// Package controllers holds lagscale's reconcilers: EventConsumer, which
// owns the handler Deployment and its replica count, and KafkaCluster,
// which reports the health of a shared Kafka connection.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/autoscale"
	"github.com/lagscale/lagscale/internal/scaler"
	"github.com/lagscale/lagscale/internal/shard"
)

// FieldManager is the server-side apply field manager that owns the fields
// lagscale sets on a handler Deployment.
const FieldManager = "lagscale"

// waitRequeue is how often a consumer that waits on something without a
// watch (or as a safety net beside one) is looked at again.
const waitRequeue = 30 * time.Second

// EventConsumerReconciler runs an EventConsumer's handler as a Deployment
// and sets its replicas from the consumer group's lag.
type EventConsumerReconciler struct {
	client.Client

	// Recorder records events on transitions.
	Recorder EventRecorder

	// Lag is the lag engine; nil runs without Kafka (replicas stay at
	// their current or initial value).
	Lag LagSource

	// Now is the clock; nil means time.Now.
	Now func() time.Time

	// DefaultPollInterval is used when a consumer sets none.
	DefaultPollInterval time.Duration

	// Metrics records per-consumer series; nil records nothing.
	Metrics *Metrics

	// StatusInterval is the shortest time between two status writes that
	// change only live lag figures; 0 uses DefaultStatusInterval.
	StatusInterval time.Duration

	// StatusBudget limits status writes operator-wide; nil limits nothing.
	StatusBudget *StatusBudget
	// LagRevisits says that the lag source calls LagUnchanged after every
	// poll, so that a decision held back by time and live figures due in
	// the status are taken up by the next poll rather than by a requeue
	// of every consumer.
	LagRevisits bool

	// MinScaleInterval is the shortest time between two replica changes;
	// 0 uses the autoscaler's default (30s).
	MinScaleInterval time.Duration

	// APIReader reads from the API server, for the one question the
	// label-filtered Deployment cache cannot answer: whether a Deployment
	// of the consumer's name exists that lagscale does not manage. nil
	// asks the cache only.
	APIReader client.Reader

	// WatchNamespaces restricts the scale target cache as the manager's
	// cache is restricted; empty watches all namespaces.
	WatchNamespaces []string

	// Shard is this replica's part of a sharded operator (NewShard): the
	// cache holds only the consumers of its buckets, a reconcile writes
	// only a consumer whose bucket it owns, and the handler Deployment
	// carries the consumer's bucket label too. Nil without sharding.
	Shard *Shard

	secrets *secretCache
	// cache is the manager's informer cache, where Secret metadata is
	// read; nil (tests without a manager) reads it through Client.
	cache   client.Reader
	targets *scaleTargets
	scalers *scalers
	applied *appliedCache
	lagQ    lagQueue
}

// RBAC: only what a test in test/chart (TestChartRBACIsMinimal) shows is
// needed. Reads go through the informer cache, so the lagscale kinds need
// list and watch but not get; status is written with a merge patch.
// Deployments: get for the one direct read that the label-filtered cache
// cannot answer, patch (server-side apply) and create (an apply that
// creates). Secrets: get for the values, list and watch for the
// metadata-only watch that notices a rotation. Leader election uses a Lease
// and records core Events in the operator's namespace only; the reconcilers
// record events.k8s.io Events, patched when one repeats.
//
// +kubebuilder:rbac:groups=lagscale.dev,resources=eventconsumers,verbs=list;watch;patch
// +kubebuilder:rbac:groups=lagscale.dev,resources=eventconsumers/status,verbs=patch
// +kubebuilder:rbac:groups=lagscale.dev,resources=kafkaclusters,verbs=list;watch
// +kubebuilder:rbac:groups=lagscale.dev,resources=kafkaclusters/status,verbs=patch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;create;update,namespace=lagscale-system
// +kubebuilder:rbac:groups="",resources=events,verbs=create,namespace=lagscale-system

// Reconcile brings one EventConsumer's Deployment and status up to date.
func (r *EventConsumerReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	log := ctrl.LoggerFrom(ctx)
	if r.Shard != nil {
		// Held until after the deferred status write, the last write.
		defer r.Shard.owner.enter()()
	}

	ec := &v1alpha1.EventConsumer{}
	if err := r.Get(ctx, req.NamespacedName, ec); err != nil {
		if apierrors.IsNotFound(err) {
			// The Deployment goes with its owner reference; only the
			// in-memory state and the Kafka subscription are ours to drop.
			r.forget(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get EventConsumer: %w", err)
	}
	if r.Shard != nil && !r.Shard.owner.owns(ec.Labels[shard.LabelBucket]) {
		// Its bucket went to another replica (the cache has not dropped
		// it yet), or has no owner yet: nothing of this replica writes it.
		r.forget(req.NamespacedName)
		return ctrl.Result{}, nil
	}

	st := &reconcileState{ec: ec, now: r.now()}
	orig := ec.DeepCopy()
	defer func() {
		r.finishStatus(ctx, st, retErr)
		after, turn, err := r.patchStatus(ctx, orig, ec, st)
		if err != nil {
			retErr = errors.Join(retErr, err)
		}
		if turn > 0 && retErr == nil && (result.RequeueAfter == 0 || turn < result.RequeueAfter) {
			// A change of state waits for its turn in the status budget.
			result.RequeueAfter, result.Priority = turn, new(priorityState)
		}
		if st.written != nil {
			st.written.unwritten.Store(after > 0)
			if r.LagRevisits {
				// The lag engine's polls bring the figures' write when
				// it is due and the budget has room (arrive).
				after = 0
			}
		}
		if after > 0 && retErr == nil && (result.RequeueAfter == 0 || after < result.RequeueAfter) {
			// Live lag figures held back by the status interval are
			// written when due, even if lag stops moving.
			result.RequeueAfter = after
		}
	}()

	// Runs before the status patch above, and also when a step panics,
	// so the consumer's scaler is never left locked.
	defer r.leaveForArrivals(st)

	conn, wait, err := r.resolveConnection(ctx, ec)
	if err != nil {
		return ctrl.Result{}, err
	}
	if wait != nil {
		st.wait = wait
		if st.transitionedTo(v1alpha1.EventWaiting) {
			r.event(ctx, ec, EventNormalType, v1alpha1.EventWaiting, wait.message)
		}
		log.Info("Waiting for a dependency", "reason", wait.reason, "detail", wait.message)
		return ctrl.Result{RequeueAfter: waitRequeue}, nil
	}
	st.conn = conn

	r.subscribe(st)

	if ec.Spec.ScaleTargetRef != nil {
		return r.reconcileScaleTarget(ctx, st)
	}

	current, err := r.currentDeployment(ctx, ec)
	if err != nil {
		return ctrl.Result{}, err
	}
	st.current = current

	requeue := r.decideReplicas(st)

	if err := r.applyDeployment(ctx, st); err != nil {
		var invalid *invalidSpecError
		if errors.As(err, &invalid) {
			st.stalled = &condition{reason: v1alpha1.ReasonInvalidSpec, message: invalid.Error()}
			return ctrl.Result{}, reconcile.TerminalError(err)
		}
		// The decision was a candidate: nothing of it is recorded, and
		// the error's backoff, not the minimum interval, brings the retry.
		return ctrl.Result{}, err
	}

	r.commitDecision(ctx, st)
	st.scaler.Applied(st.desired, st.applied.Generation)

	log.V(1).Info("Reconciled", "eventConsumer", klog.KObj(ec), "replicas", st.desired)
	return ctrl.Result{RequeueAfter: requeue}, nil
}

func (r *EventConsumerReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// forget drops everything lagscale keeps in memory about a deleted consumer.
func (r *EventConsumerReconciler) forget(key types.NamespacedName) {
	r.unsubscribe(key)
	r.secrets.retain(secretReferrer("EventConsumer", key), nil)
	r.scalers.delete(key)
	r.applied.delete(key)
	r.targets.forget(key)
	if r.Metrics != nil {
		r.Metrics.Forget(key)
	}
}

// currentDeployment returns the handler Deployment, or nil if there is none.
func (r *EventConsumerReconciler) currentDeployment(ctx context.Context, ec *v1alpha1.EventConsumer) (*appsv1.Deployment, error) {
	dep := &appsv1.Deployment{}
	err := r.Get(ctx, client.ObjectKeyFromObject(ec), dep)
	if apierrors.IsNotFound(err) && r.APIReader != nil {
		// The cache holds only Deployments labelled as lagscale's; one
		// without the label would otherwise be taken over by the apply.
		err = r.APIReader.Get(ctx, client.ObjectKeyFromObject(ec), dep)
	}
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get Deployment: %w", err)
	}
	if !metav1.IsControlledBy(dep, ec) {
		return nil, reconcile.TerminalError(fmt.Errorf("deployment %s exists and is not owned by this EventConsumer: rename one of them", klog.KObj(dep)))
	}
	return dep, nil
}

// reconcileState carries what the steps of one reconcile learned, for the
// deferred status computation.
type reconcileState struct {
	ec       *v1alpha1.EventConsumer
	now      time.Time
	conn     *resolvedConnection
	wait     *condition
	stalled  *condition
	current  *appsv1.Deployment
	applied  *appsv1.Deployment
	from     int32
	desired  int32
	decision *autoscale.Decision
	scaler   *scaler.Scaler
	// entry is the consumer's scaler entry, locked by decideReplicas
	// until Reconcile returns.
	entry *scalerEntry
	// written is the same entry, kept after its release for the status
	// write to say whether live figures were left unwritten.
	written *scalerEntry
	// paid is true when this reconcile comes at the turn booked for its
	// status write in the status budget (by arrive for live figures, by
	// turnForState for a change of state).
	paid bool
	lag  *lagView
	// targetSelector is the pod selector a scale target reports, nil
	// for a Deployment lagscale builds.
	targetSelector *string
}

// transitionedTo reports whether the Ready condition's reason is about to
// change to reason, so that events are recorded on transitions only.
func (s *reconcileState) transitionedTo(reason string) bool {
	c := meta.FindStatusCondition(s.ec.Status.Conditions, v1alpha1.ConditionReady)
	return c == nil || c.Reason != reason
}

// condition is a reason and message for a condition the status step sets.
type condition struct {
	reason  string
	message string
}

// invalidSpecError is a spec the API server accepted but that cannot become
// a Deployment; retrying does not help.
type invalidSpecError struct{ err error }

func (e *invalidSpecError) Error() string { return e.err.Error() }
func (e *invalidSpecError) Unwrap() error { return e.err }

// deploymentWriteError is the API server's refusal of a Deployment write:
// an admission webhook or policy, a quota, a conflict.
type deploymentWriteError struct{ err error }

func (e *deploymentWriteError) Error() string { return "write Deployment: " + e.err.Error() }
func (e *deploymentWriteError) Unwrap() error { return e.err }
