package controllers

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/deploy"
)

// finishStatus computes the whole status from what the reconcile learned.
// It runs once, deferred, whatever step returned early.
func (r *EventConsumerReconciler) finishStatus(st *reconcileState, retErr error) {
	ec := st.ec
	s := &ec.Status
	prevReady := meta.FindStatusCondition(s.Conditions, v1alpha1.ConditionReady)
	prevReason := ""
	if prevReady != nil {
		prevReason = prevReady.Reason
	}

	dep := st.applied
	if dep == nil {
		dep = st.current
	}
	if dep != nil {
		s.Replicas = dep.Status.Replicas
		s.ReadyReplicas = dep.Status.ReadyReplicas
	}
	if st.applied != nil {
		s.DesiredReplicas = st.desired
	}
	s.ReadySummary = fmt.Sprintf("%d/%d", s.ReadyReplicas, s.DesiredReplicas)
	s.Selector = labels.SelectorFromSet(deploy.SelectorLabels(ec)).String()
	applyLagStatus(st)

	gen := ec.Generation
	set := func(t string, status metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(&s.Conditions, metav1.Condition{
			Type: t, Status: status, Reason: reason, Message: msg, ObservedGeneration: gen,
		})
	}

	switch {
	case st.wait != nil:
		set(v1alpha1.ConditionReady, metav1.ConditionFalse, st.wait.reason, st.wait.message)
		set(v1alpha1.ConditionReconciling, metav1.ConditionTrue, st.wait.reason, st.wait.message)
		set(v1alpha1.ConditionStalled, metav1.ConditionFalse, st.wait.reason, "waiting, not stalled: lagscale continues when it appears")
	case st.stalled != nil:
		set(v1alpha1.ConditionReady, metav1.ConditionFalse, st.stalled.reason, st.stalled.message)
		set(v1alpha1.ConditionReconciling, metav1.ConditionFalse, st.stalled.reason, "stalled until the spec or the cluster changes")
		set(v1alpha1.ConditionStalled, metav1.ConditionTrue, st.stalled.reason, st.stalled.message)
	case retErr != nil || st.applyErr != nil:
		err := retErr
		if err == nil {
			err = st.applyErr
		}
		set(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonApplyFailed, err.Error())
		set(v1alpha1.ConditionReconciling, metav1.ConditionTrue, v1alpha1.ReasonApplyFailed, "retrying with backoff")
		set(v1alpha1.ConditionStalled, metav1.ConditionFalse, v1alpha1.ReasonApplyFailed, "retrying with backoff")
	default:
		reason, msg, ready := readiness(st)
		status := metav1.ConditionFalse
		if ready {
			status = metav1.ConditionTrue
		}
		set(v1alpha1.ConditionReady, status, reason, msg)
		if ready {
			set(v1alpha1.ConditionReconciling, metav1.ConditionFalse, v1alpha1.ReasonSucceeded, "up to date")
		} else {
			set(v1alpha1.ConditionReconciling, metav1.ConditionTrue, reason, msg)
		}
		set(v1alpha1.ConditionStalled, metav1.ConditionFalse, v1alpha1.ReasonSucceeded, "not stalled")
		s.ObservedGeneration = gen
	}
	lagConditions(st)
	r.insecureTLS(st)
	if r.Metrics != nil {
		r.Metrics.Observe(client.ObjectKeyFromObject(ec), s)
	}

	newReady := meta.FindStatusCondition(s.Conditions, v1alpha1.ConditionReady)
	if newReady.Reason != prevReason {
		switch {
		case st.stalled != nil:
			r.event(ec, EventWarningType, v1alpha1.EventStalled, st.stalled.message, true)
		case newReady.Status == metav1.ConditionTrue && prevReason != "" && prevReason != v1alpha1.ReasonProgressing:
			r.event(ec, EventNormalType, v1alpha1.EventRecovered, fmt.Sprintf("Ready again after %s", prevReason), true)
		}
	}
}

// readiness decides the Ready condition of a consumer whose Deployment is
// applied: Kafka must be reachable, the topics present, the pods ready.
func readiness(st *reconcileState) (reason, message string, ready bool) {
	s := &st.ec.Status
	if st.stalled != nil {
		return st.stalled.reason, st.stalled.message, false
	}
	if l := st.lag; l != nil && !l.reachable {
		return v1alpha1.ReasonKafkaUnreachable, l.errMessage, false
	}
	if s.DesiredReplicas == 0 {
		if s.Replicas == 0 {
			return v1alpha1.ReasonScaledToZero, "no lag and no inflow: scaled to zero until lag exceeds activationLag", true
		}
		return v1alpha1.ReasonProgressing, fmt.Sprintf("scaling to zero, %d replicas left", s.Replicas), false
	}
	if s.ReadyReplicas < s.DesiredReplicas {
		return v1alpha1.ReasonProgressing, fmt.Sprintf("%d of %d replicas ready", s.ReadyReplicas, s.DesiredReplicas), false
	}
	if st.ec.Spec.Scaling.Paused {
		return v1alpha1.ReasonPaused, fmt.Sprintf("autoscaling paused at %d replicas", s.DesiredReplicas), true
	}
	return v1alpha1.ReasonReady, fmt.Sprintf("%d of %d replicas ready", s.ReadyReplicas, s.DesiredReplicas), true
}

// patchStatus writes the status once per reconcile, and not at all when it
// did not change or when only live lag figures changed within the status
// interval (see statusWrite); it then returns when those become due.
func (r *EventConsumerReconciler) patchStatus(ctx context.Context, orig, ec *v1alpha1.EventConsumer, now time.Time) (time.Duration, error) {
	interval := r.StatusInterval
	if interval <= 0 {
		interval = DefaultStatusInterval
	}
	write, after := statusWrite(&orig.Status, &ec.Status, now, interval)
	if !write {
		return after, nil
	}
	if err := r.Status().Patch(ctx, ec, client.MergeFrom(orig)); err != nil {
		if client.IgnoreNotFound(err) == nil {
			return 0, nil
		}
		return 0, fmt.Errorf("patch status: %w", err)
	}
	return 0, nil
}
