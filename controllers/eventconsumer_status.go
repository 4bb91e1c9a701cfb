package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
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
	// A copy: SetStatusCondition changes the condition in place.
	var prevReady *metav1.Condition
	if p := meta.FindStatusCondition(s.Conditions, v1alpha1.ConditionReady); p != nil {
		prevReady = p.DeepCopy()
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

	o := outcomeOf(st, retErr)
	for _, c := range []metav1.Condition{
		readyConditionFor(o, ec.Generation),
		reconcilingConditionFor(o, ec.Generation),
		stalledConditionFor(o, ec.Generation),
	} {
		meta.SetStatusCondition(&s.Conditions, c)
	}
	if o.succeeded() {
		s.ObservedGeneration = ec.Generation
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
	if e := readyEvent(prevReady, *newReady, st.stalled); e != nil {
		r.event(ctx, ec, e.eventType, e.reason, e.message)
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
// interval (see statusWrite); it then returns, as figures, when those
// become due. A change of state waits for its turn in the status budget:
// turn is then how long until the reconcile that writes it.
func (r *EventConsumerReconciler) patchStatus(ctx context.Context, orig, ec *v1alpha1.EventConsumer, st *reconcileState) (figures, turn time.Duration, err error) {
	now := st.now
	interval := r.statusInterval()
	write, after := statusWrite(&orig.Status, &ec.Status, now, interval)
	if !write {
		return after, 0, nil
	}
	kind := writeState
	switch {
	case !equality.Semantic.DeepEqual(orig.Status.LastScale, ec.Status.LastScale):
		// The Deployment has the scale already; its record goes with it,
		// and the turns booked after it move back by one.
		kind = writeScale
		r.StatusBudget.spend(now)
	case onlyLiveLag(&orig.Status, &ec.Status):
		kind = writeFigures
		if !st.paid && !r.StatusBudget.allow(now) {
			// The budget is short: the figures wait another interval,
			// /metrics has them meanwhile.
			return interval, 0, nil
		}
		if ok, _ := r.StatusBudget.admit(now); !ok {
			// Their turn came while the writes of earlier turns, late
			// behind the queue, spent the budget: another interval.
			return interval, 0, nil
		}
	default:
		if !st.paid {
			if wait := r.turnForState(st, now); wait > 0 {
				return 0, wait, nil
			}
		}
		if ok, retry := r.StatusBudget.admit(now); !ok {
			// The turn came while the writes of earlier turns, late
			// behind the queue, spent the budget: the write keeps its
			// turn and goes at the next token.
			r.keepTurn(st, now.Add(retry))
			return 0, retry, nil
		}
	}
	if err := r.Status().Patch(ctx, ec, client.MergeFrom(orig)); err != nil {
		if client.IgnoreNotFound(err) == nil {
			return 0, 0, nil
		}
		return 0, 0, fmt.Errorf("patch status: %w", err)
	}
	r.Metrics.StatusWrite(kind)
	return 0, 0, nil
}

// turnForState returns how long a write of changed state must wait for its
// turn in the status budget, 0 when it may go now. The turn is booked on
// the consumer's entry, which arrive and decideReplicas also read, so that
// a reconcile coming earlier for another reason does not take a second one
// and the one at the turn writes (st.paid).
func (r *EventConsumerReconciler) turnForState(st *reconcileState, now time.Time) time.Duration {
	e := st.written
	if e == nil {
		// A consumer that has not reached its scaler yet (waiting for
		// a Secret or a KafkaCluster).
		e = r.scalers.get(st.ec)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.booked {
		if wait := e.turn.Sub(now); wait > 0 {
			return wait
		}
		e.booked = false
		return 0
	}
	wait := r.StatusBudget.reserve(now)
	if wait > 0 {
		e.booked, e.turn = true, now.Add(wait)
	}
	return wait
}

// keepTurn books the consumer's turn at at without reserving another in
// the budget: the reconcile then is at its turn (st.paid), as this one was.
func (r *EventConsumerReconciler) keepTurn(st *reconcileState, at time.Time) {
	e := st.written
	if e == nil {
		e = r.scalers.get(st.ec)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.booked, e.turn = true, at
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
	reason, msg, limited := limitOf(st)
	c := scalingLimitedConditionFor(reason, msg, limited, st.ec.Generation)
	meta.SetStatusCondition(&s.Conditions, c)
	if e := scalingLimitedEvent(prev, c); e != nil {
		r.event(ctx, st.ec, e.eventType, e.reason, e.message)
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
