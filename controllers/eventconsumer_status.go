package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/autoscale"
	"github.com/lagscale/lagscale/internal/deploy"
	"github.com/lagscale/lagscale/internal/lag"
	"github.com/lagscale/lagscale/internal/scaler"
)

// finishStatus computes the whole status from what the reconcile learned.
// It runs once, deferred, whatever step returned early.
func (r *EventConsumerReconciler) finishStatus(ctx context.Context, st *reconcileState, retErr error) {
	ec := st.ec
	s := &ec.Status
	prevReady := meta.FindStatusCondition(s.Conditions, v1alpha1.ConditionReady)
	prevReason, prevStatus := "", metav1.ConditionUnknown
	if prevReady != nil {
		prevReason, prevStatus = prevReady.Reason, prevReady.Status
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
	if st.targetSelector != nil {
		s.Selector = *st.targetSelector
	}
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
	case retErr != nil:
		reason := v1alpha1.ReasonApplyFailed
		wErr, tErr := (*deploymentWriteError)(nil), (*scaleTargetWriteError)(nil)
		if errors.As(retErr, &wErr) || errors.As(retErr, &tErr) {
			reason = v1alpha1.ReasonDeploymentWriteFailed
		}
		set(v1alpha1.ConditionReady, metav1.ConditionFalse, reason, truncate(retErr.Error(), 32768))
		set(v1alpha1.ConditionReconciling, metav1.ConditionTrue, reason, "retrying with backoff")
		set(v1alpha1.ConditionStalled, metav1.ConditionFalse, reason, "retrying with backoff")
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
	r.scalingLimited(ctx, st)
	r.insecureTLS(ctx, st)
	if r.Metrics != nil {
		r.Metrics.Observe(client.ObjectKeyFromObject(ec), s)
		if st.lag != nil {
			r.Metrics.Stalled(client.ObjectKeyFromObject(ec), stuckCount(st.lag.snap))
		}
	}

	newReady := meta.FindStatusCondition(s.Conditions, v1alpha1.ConditionReady)
	if newReady.Reason != prevReason {
		switch {
		case st.stalled != nil:
			r.event(ctx, ec, EventWarningType, v1alpha1.EventStalled, st.stalled.message)
		case newReady.Reason == v1alpha1.ReasonDeploymentWriteFailed:
			r.event(ctx, ec, EventWarningType, v1alpha1.EventDeploymentWriteFailed, newReady.Message)
		case newReady.Status == metav1.ConditionTrue && prevStatus == metav1.ConditionFalse && prevReason != v1alpha1.ReasonProgressing:
			r.event(ctx, ec, EventNormalType, v1alpha1.EventRecovered, fmt.Sprintf("Ready again after %s", prevReason))
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
	if reason, msg, ok := limitOf(st); ok {
		// Ready, but not plainly: kubectl get shows why replicas do not
		// follow the lag.
		return reason, msg, true
	}
	if d := st.decision; d == nil || d.Hold {
		// No decision on fresh data (a hold keeps ScalingLimited as the
		// last decision left it): the STATUS column says the same.
		if c := meta.FindStatusCondition(s.Conditions, v1alpha1.ConditionScalingLimited); c != nil && c.Status == metav1.ConditionTrue {
			return c.Reason, c.Message, true
		}
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
	if onlyLiveLag(&orig.Status, &ec.Status) {
		if !r.StatusBudget.allow(now) {
			// The budget is short: the figures wait another interval,
			// /metrics has them meanwhile.
			return interval, nil
		}
	} else {
		r.StatusBudget.spend(now)
	}
	if err := r.Status().Patch(ctx, ec, client.MergeFrom(orig)); err != nil {
		if client.IgnoreNotFound(err) == nil {
			return 0, nil
		}
		return 0, fmt.Errorf("patch status: %w", err)
	}
	return 0, nil
}

// limitOf returns ScalingLimited's reason and message when the last
// decision says replicas cannot follow the lag, ok false when they can. It
// says nothing (ok false, reason "") when there was no decision on fresh
// data, so a hold keeps the previous condition.
func limitOf(st *reconcileState) (reason, message string, ok bool) {
	d := st.decision
	if d == nil || d.Hold || st.lag == nil {
		return "", "", false
	}
	snap := st.lag.snap
	sc := st.ec.Spec.Scaling
	switch {
	case d.Partial:
		var what []string
		for _, u := range unreadable(snap) {
			name := u.Topic
			if u.Partition != nil {
				name = fmt.Sprintf("%s/%d", u.Topic, *u.Partition)
			}
			what = append(what, fmt.Sprintf("%s (%s)", name, u.Error))
		}
		for _, t := range snap.MissingTopics {
			what = append(what, fmt.Sprintf("%s (topic does not exist)", t))
		}
		unit := "partitions"
		if st.ec.Spec.GroupType == v1alpha1.GroupTypeStreams {
			unit = "tasks"
		}
		return v1alpha1.ReasonPartialLagData, truncate(fmt.Sprintf(
			"lag of %s could not be read: replicas are not scaled down until it can, and a scale-up is bounded by the %s last seen on complete data (or those that can be read); check that the operator's Kafka user may describe these topics",
			strings.Join(what, ", "), unit), 32768), true
	case d.Limited == autoscale.LimitMaxReplicas:
		return v1alpha1.ReasonAtMaxReplicas, fmt.Sprintf(
			"%s: the lag asks for %d replicas and maxReplicas is %d; raise maxReplicas, or make each replica faster (throughput per replica)",
			missed(snap, sc), d.Wanted, deref(sc.MaxReplicas)), true
	case d.Limited == autoscale.LimitPartitionCount && snap.Streams != nil:
		return v1alpha1.ReasonAtTaskCount, atTaskCount(missed(snap, sc), d.Wanted, snap.Streams), true
	case d.Limited == autoscale.LimitPartitionCount:
		return v1alpha1.ReasonAtPartitionCount, fmt.Sprintf(
			"%s: the lag asks for %d replicas and each of the %d partitions has its own already; add partitions to the topics, or make each replica faster (throughput per replica)",
			missed(snap, sc), d.Wanted, snap.PartitionCount), true
	case len(d.Stuck) > 0:
		return v1alpha1.ReasonStuckPartitions, truncate(fmt.Sprintf(
			"%d partitions do not move although the group has members (%s): they are left out of sizing, since more replicas cannot help them; look for a record the handler fails on, or set deadLetterTopic",
			len(d.Stuck), strings.Join(d.Stuck, ", ")), 32768), true
	}
	return "", "", false
}

// missed says how the target is missed.
func missed(snap lag.Snapshot, sc v1alpha1.ScalingSpec) string {
	if sc.Policy == v1alpha1.PolicyLagThreshold {
		return fmt.Sprintf("lag %d records over %d per replica", snap.TotalLag, deref(sc.LagThreshold))
	}
	target := v1alpha1.DefaultMaxLagSeconds
	if sc.MaxLagSeconds != nil {
		target = *sc.MaxLagSeconds
	}
	return fmt.Sprintf("time lag %.1fs above the %ds target", snap.TimeLagSeconds, target)
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// scalingLimited sets ScalingLimited from the last decision and records an
// event when it changes.
func (r *EventConsumerReconciler) scalingLimited(ctx context.Context, st *reconcileState) {
	d := st.decision
	if d == nil || d.Hold {
		return // no decision on fresh data: keep what the last one said
	}
	s := &st.ec.Status
	// A copy: SetStatusCondition changes the condition in place.
	var prev *metav1.Condition
	if p := meta.FindStatusCondition(s.Conditions, v1alpha1.ConditionScalingLimited); p != nil {
		prev = p.DeepCopy()
	}
	c := metav1.Condition{Type: v1alpha1.ConditionScalingLimited, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonWithinBounds,
		Message: "replicas follow the lag", ObservedGeneration: st.ec.Generation}
	if reason, msg, ok := limitOf(st); ok {
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, reason, msg
	}
	meta.SetStatusCondition(&s.Conditions, c)
	switch {
	case c.Status == metav1.ConditionTrue && (prev == nil || prev.Status != metav1.ConditionTrue || prev.Reason != c.Reason):
		r.event(ctx, st.ec, EventWarningType, v1alpha1.EventScalingLimited, c.Reason+": "+c.Message)
	case c.Status == metav1.ConditionFalse && prev != nil && prev.Status == metav1.ConditionTrue:
		r.event(ctx, st.ec, EventNormalType, v1alpha1.EventScalingUnlimited, "replicas follow the lag again after "+prev.Reason)
	}
}

// stuckCount is the number of stuck partitions in a snapshot.
func stuckCount(snap lag.Snapshot) int {
	n := 0
	for _, p := range snap.Partitions {
		if scaler.Stuck(p, snap.Members) {
			n++
		}
	}
	return n
}
