package controllers

import (
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lagscale/lagscale/api/v1alpha1"
)

// The conditions finishStatus sets, each computed by a pure function from
// what the reconcile learned, so that each has its own table test; the
// envtest scenarios check that they reach the API server.

// reconcileOutcome is how a reconcile ended, as the Ready, Reconciling and
// Stalled conditions see it. In order of precedence: waiting on something,
// stalled until the spec or the cluster changes, failed and retrying, or
// done, with readiness's verdict.
type reconcileOutcome struct {
	wait    *condition
	stalled *condition
	err     error
	// reason, message and ready are readiness's verdict, set only when
	// the reconcile succeeded.
	reason  string
	message string
	ready   bool
}

// outcomeOf reads the outcome from a reconcile's state and error.
// readiness runs only for a successful reconcile, before ScalingLimited is
// updated, since a hold keeps the reason the last decision gave.
func outcomeOf(st *reconcileState, retErr error) reconcileOutcome {
	o := reconcileOutcome{wait: st.wait, stalled: st.stalled, err: retErr}
	if o.succeeded() {
		o.reason, o.message, o.ready = readiness(st)
	}
	return o
}

// succeeded reports whether the reconcile did all it had to, which is when
// observedGeneration moves.
func (o reconcileOutcome) succeeded() bool {
	return o.wait == nil && o.stalled == nil && o.err == nil
}

// errorReason is the reason of a failed reconcile: DeploymentWriteFailed
// when the API server refused the workload's write, else ApplyFailed.
func errorReason(err error) string {
	wErr, tErr := (*deploymentWriteError)(nil), (*scaleTargetWriteError)(nil)
	if errors.As(err, &wErr) || errors.As(err, &tErr) {
		return v1alpha1.ReasonDeploymentWriteFailed
	}
	return v1alpha1.ReasonApplyFailed
}

// maxConditionMessage is the API's limit on a condition's message.
const maxConditionMessage = 32768

func newCondition(t string, status metav1.ConditionStatus, reason, message string, gen int64) metav1.Condition {
	return metav1.Condition{Type: t, Status: status, Reason: reason, Message: message, ObservedGeneration: gen}
}

// readyConditionFor is Ready: True only when the reconcile succeeded and
// readiness says so.
func readyConditionFor(o reconcileOutcome, gen int64) metav1.Condition {
	const t = v1alpha1.ConditionReady
	switch {
	case o.wait != nil:
		return newCondition(t, metav1.ConditionFalse, o.wait.reason, o.wait.message, gen)
	case o.stalled != nil:
		return newCondition(t, metav1.ConditionFalse, o.stalled.reason, o.stalled.message, gen)
	case o.err != nil:
		return newCondition(t, metav1.ConditionFalse, errorReason(o.err), truncate(o.err.Error(), maxConditionMessage), gen)
	case o.ready:
		return newCondition(t, metav1.ConditionTrue, o.reason, o.message, gen)
	default:
		return newCondition(t, metav1.ConditionFalse, o.reason, o.message, gen)
	}
}

// reconcilingConditionFor is Reconciling: True while lagscale is still
// working towards Ready (waiting, retrying, replicas on their way).
func reconcilingConditionFor(o reconcileOutcome, gen int64) metav1.Condition {
	const t = v1alpha1.ConditionReconciling
	switch {
	case o.wait != nil:
		return newCondition(t, metav1.ConditionTrue, o.wait.reason, o.wait.message, gen)
	case o.stalled != nil:
		return newCondition(t, metav1.ConditionFalse, o.stalled.reason, "stalled until the spec or the cluster changes", gen)
	case o.err != nil:
		return newCondition(t, metav1.ConditionTrue, errorReason(o.err), "retrying with backoff", gen)
	case o.ready:
		return newCondition(t, metav1.ConditionFalse, v1alpha1.ReasonSucceeded, "up to date", gen)
	default:
		return newCondition(t, metav1.ConditionTrue, o.reason, o.message, gen)
	}
}

// stalledConditionFor is Stalled: True only for a spec that retrying cannot
// fix.
func stalledConditionFor(o reconcileOutcome, gen int64) metav1.Condition {
	const t = v1alpha1.ConditionStalled
	switch {
	case o.wait != nil:
		return newCondition(t, metav1.ConditionFalse, o.wait.reason, "waiting, not stalled: lagscale continues when it appears", gen)
	case o.stalled != nil:
		return newCondition(t, metav1.ConditionTrue, o.stalled.reason, o.stalled.message, gen)
	case o.err != nil:
		return newCondition(t, metav1.ConditionFalse, errorReason(o.err), "retrying with backoff", gen)
	default:
		return newCondition(t, metav1.ConditionFalse, v1alpha1.ReasonSucceeded, "not stalled", gen)
	}
}

// transitionEvent is an event recorded when a condition changes.
type transitionEvent struct {
	eventType string
	reason    string
	message   string
}

// readyEvent is the event of a change of Ready's reason from prev (nil
// when there was no Ready condition), if the change deserves one: stalled,
// a refused write, or ready again after a failure.
func readyEvent(prev *metav1.Condition, ready metav1.Condition, stalled *condition) *transitionEvent {
	prevReason, prevStatus := "", metav1.ConditionUnknown
	if prev != nil {
		prevReason, prevStatus = prev.Reason, prev.Status
	}
	if ready.Reason == prevReason {
		return nil
	}
	switch {
	case stalled != nil:
		return &transitionEvent{EventWarningType, v1alpha1.EventStalled, stalled.message}
	case ready.Reason == v1alpha1.ReasonDeploymentWriteFailed:
		return &transitionEvent{EventWarningType, v1alpha1.EventDeploymentWriteFailed, ready.Message}
	case ready.Status == metav1.ConditionTrue && prevStatus == metav1.ConditionFalse && prevReason != v1alpha1.ReasonProgressing:
		return &transitionEvent{EventNormalType, v1alpha1.EventRecovered, fmt.Sprintf("Ready again after %s", prevReason)}
	}
	return nil
}

// scalingLimitedConditionFor is ScalingLimited from limitOf's verdict on the
// last decision: True with the limit's reason when replicas cannot follow
// the lag.
func scalingLimitedConditionFor(reason, message string, limited bool, gen int64) metav1.Condition {
	if limited {
		return newCondition(v1alpha1.ConditionScalingLimited, metav1.ConditionTrue, reason, message, gen)
	}
	return newCondition(v1alpha1.ConditionScalingLimited, metav1.ConditionFalse, v1alpha1.ReasonWithinBounds, "replicas follow the lag", gen)
}

// scalingLimitedEvent is the event of a change of ScalingLimited from prev
// (nil when there was none) to c: a new limit, or none any more.
func scalingLimitedEvent(prev *metav1.Condition, c metav1.Condition) *transitionEvent {
	switch {
	case c.Status == metav1.ConditionTrue && (prev == nil || prev.Status != metav1.ConditionTrue || prev.Reason != c.Reason):
		return &transitionEvent{EventWarningType, v1alpha1.EventScalingLimited, c.Reason + ": " + c.Message}
	case c.Status == metav1.ConditionFalse && prev != nil && prev.Status == metav1.ConditionTrue:
		return &transitionEvent{EventNormalType, v1alpha1.EventScalingUnlimited, "replicas follow the lag again after " + prev.Reason}
	}
	return nil
}
