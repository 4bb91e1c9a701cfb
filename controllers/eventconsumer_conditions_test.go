package controllers

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lagscale/lagscale/api/v1alpha1"
)

// want is a condition's expected status and reason.
type want struct {
	status metav1.ConditionStatus
	reason string
}

func TestReadyReconcilingStalledConditions(t *testing.T) {
	const (
		T = metav1.ConditionTrue
		F = metav1.ConditionFalse
	)
	wait := &condition{reason: v1alpha1.ReasonSecretNotFound, message: "Secret kafka-user not found"}
	stalled := &condition{reason: v1alpha1.ReasonInvalidSpec, message: "the template has no containers"}
	tests := []struct {
		name                         string
		o                            reconcileOutcome
		ready, reconciling, stalledC want
		succeeded                    bool
	}{
		{name: "waiting on a Secret", o: reconcileOutcome{wait: wait},
			ready: want{F, wait.reason}, reconciling: want{T, wait.reason}, stalledC: want{F, wait.reason}},
		{name: "a wait wins over a failure", o: reconcileOutcome{wait: wait, err: errors.New("boom")},
			ready: want{F, wait.reason}, reconciling: want{T, wait.reason}, stalledC: want{F, wait.reason}},
		{name: "stalled on the spec", o: reconcileOutcome{stalled: stalled},
			ready: want{F, stalled.reason}, reconciling: want{F, stalled.reason}, stalledC: want{T, stalled.reason}},
		{name: "a transient error", o: reconcileOutcome{err: errors.New("connection refused")},
			ready: want{F, v1alpha1.ReasonApplyFailed}, reconciling: want{T, v1alpha1.ReasonApplyFailed}, stalledC: want{F, v1alpha1.ReasonApplyFailed}},
		{name: "a refused Deployment write", o: reconcileOutcome{err: fmt.Errorf("apply: %w", &deploymentWriteError{errors.New("denied by policy")})},
			ready: want{F, v1alpha1.ReasonDeploymentWriteFailed}, reconciling: want{T, v1alpha1.ReasonDeploymentWriteFailed}, stalledC: want{F, v1alpha1.ReasonDeploymentWriteFailed}},
		{name: "ready", o: reconcileOutcome{reason: v1alpha1.ReasonReady, message: "3 of 3 replicas ready", ready: true},
			ready: want{T, v1alpha1.ReasonReady}, reconciling: want{F, v1alpha1.ReasonSucceeded}, stalledC: want{F, v1alpha1.ReasonSucceeded}, succeeded: true},
		{name: "ready at a limit", o: reconcileOutcome{reason: v1alpha1.ReasonAtMaxReplicas, message: "at max", ready: true},
			ready: want{T, v1alpha1.ReasonAtMaxReplicas}, reconciling: want{F, v1alpha1.ReasonSucceeded}, stalledC: want{F, v1alpha1.ReasonSucceeded}, succeeded: true},
		{name: "replicas on their way", o: reconcileOutcome{reason: v1alpha1.ReasonProgressing, message: "1 of 3 replicas ready"},
			ready: want{F, v1alpha1.ReasonProgressing}, reconciling: want{T, v1alpha1.ReasonProgressing}, stalledC: want{F, v1alpha1.ReasonSucceeded}, succeeded: true},
	}
	check := func(t *testing.T, c metav1.Condition, typ string, w want) {
		t.Helper()
		if c.Type != typ || c.Status != w.status || c.Reason != w.reason || c.ObservedGeneration != 7 || c.Message == "" {
			t.Errorf("%s = %s %s %q (generation %d), want %s %s", typ, c.Status, c.Reason, c.Message, c.ObservedGeneration, w.status, w.reason)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check(t, readyConditionFor(tt.o, 7), v1alpha1.ConditionReady, tt.ready)
			check(t, reconcilingConditionFor(tt.o, 7), v1alpha1.ConditionReconciling, tt.reconciling)
			check(t, stalledConditionFor(tt.o, 7), v1alpha1.ConditionStalled, tt.stalledC)
			if tt.o.succeeded() != tt.succeeded {
				t.Errorf("succeeded = %t, want %t: observedGeneration would move wrongly", tt.o.succeeded(), tt.succeeded)
			}
		})
	}
}

func TestReadyMessageIsTruncated(t *testing.T) {
	c := readyConditionFor(reconcileOutcome{err: errors.New(strings.Repeat("x", 40000))}, 1)
	if len(c.Message) > maxConditionMessage {
		t.Errorf("message of %d bytes, above the API's %d", len(c.Message), maxConditionMessage)
	}
}

func TestOutcomeOfRunsReadinessOnlyOnSuccess(t *testing.T) {
	ec := &v1alpha1.EventConsumer{}
	ec.Status.DesiredReplicas, ec.Status.ReadyReplicas, ec.Status.Replicas = 2, 2, 2
	if o := outcomeOf(&reconcileState{ec: ec}, nil); o.reason != v1alpha1.ReasonReady || !o.ready {
		t.Errorf("success: %+v, want readiness's Ready", o)
	}
	if o := outcomeOf(&reconcileState{ec: ec}, errors.New("boom")); o.reason != "" || o.ready {
		t.Errorf("failure: %+v, want no readiness verdict", o)
	}
}

func TestReadyEvent(t *testing.T) {
	cond := func(status metav1.ConditionStatus, reason string) *metav1.Condition {
		return &metav1.Condition{Type: v1alpha1.ConditionReady, Status: status, Reason: reason, Message: "m"}
	}
	stalled := &condition{reason: v1alpha1.ReasonInvalidSpec, message: "the template has no containers"}
	tests := []struct {
		name      string
		prev      *metav1.Condition
		ready     metav1.Condition
		stalled   *condition
		wantEvent string
	}{
		{name: "same reason", prev: cond(metav1.ConditionFalse, v1alpha1.ReasonApplyFailed), ready: *cond(metav1.ConditionFalse, v1alpha1.ReasonApplyFailed)},
		{name: "first Ready", ready: *cond(metav1.ConditionTrue, v1alpha1.ReasonReady)},
		{name: "stalled", prev: cond(metav1.ConditionTrue, v1alpha1.ReasonReady), ready: *cond(metav1.ConditionFalse, stalled.reason), stalled: stalled, wantEvent: v1alpha1.EventStalled},
		{name: "a refused write", prev: cond(metav1.ConditionTrue, v1alpha1.ReasonReady), ready: *cond(metav1.ConditionFalse, v1alpha1.ReasonDeploymentWriteFailed), wantEvent: v1alpha1.EventDeploymentWriteFailed},
		{name: "recovered", prev: cond(metav1.ConditionFalse, v1alpha1.ReasonKafkaUnreachable), ready: *cond(metav1.ConditionTrue, v1alpha1.ReasonReady), wantEvent: v1alpha1.EventRecovered},
		{name: "progressing to Ready is no recovery", prev: cond(metav1.ConditionFalse, v1alpha1.ReasonProgressing), ready: *cond(metav1.ConditionTrue, v1alpha1.ReasonReady)},
		{name: "Ready to Ready at a limit", prev: cond(metav1.ConditionTrue, v1alpha1.ReasonReady), ready: *cond(metav1.ConditionTrue, v1alpha1.ReasonAtMaxReplicas)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ""
			if e := readyEvent(tt.prev, tt.ready, tt.stalled); e != nil {
				got = e.reason
			}
			if got != tt.wantEvent {
				t.Errorf("event %q, want %q", got, tt.wantEvent)
			}
		})
	}
}

func TestScalingLimitedCondition(t *testing.T) {
	if c := scalingLimitedConditionFor("", "", false, 3); c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonWithinBounds || c.ObservedGeneration != 3 {
		t.Errorf("within bounds: %+v", c)
	}
	if c := scalingLimitedConditionFor(v1alpha1.ReasonAtPartitionCount, "12 partitions", true, 3); c.Status != metav1.ConditionTrue || c.Reason != v1alpha1.ReasonAtPartitionCount || c.Message != "12 partitions" {
		t.Errorf("limited: %+v", c)
	}
}

func TestScalingLimitedEvent(t *testing.T) {
	within := scalingLimitedConditionFor("", "", false, 1)
	atMax := scalingLimitedConditionFor(v1alpha1.ReasonAtMaxReplicas, "m", true, 1)
	atPartitions := scalingLimitedConditionFor(v1alpha1.ReasonAtPartitionCount, "m", true, 1)
	tests := []struct {
		name      string
		prev      *metav1.Condition
		c         metav1.Condition
		wantEvent string
	}{
		{name: "first, within bounds", c: within},
		{name: "first, limited", c: atMax, wantEvent: v1alpha1.EventScalingLimited},
		{name: "becomes limited", prev: &within, c: atMax, wantEvent: v1alpha1.EventScalingLimited},
		{name: "another limit", prev: &atMax, c: atPartitions, wantEvent: v1alpha1.EventScalingLimited},
		{name: "the same limit", prev: &atMax, c: atMax},
		{name: "no limit any more", prev: &atMax, c: within, wantEvent: v1alpha1.EventScalingUnlimited},
		{name: "still within bounds", prev: &within, c: within},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ""
			if e := scalingLimitedEvent(tt.prev, tt.c); e != nil {
				got = e.reason
			}
			if got != tt.wantEvent {
				t.Errorf("event %q, want %q", got, tt.wantEvent)
			}
		})
	}
}
