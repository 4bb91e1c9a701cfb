package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/autoscale"
	"github.com/lagscale/lagscale/internal/scaler"
)

// TestReadinessDuringAHold: while a hold keeps ScalingLimited True, the
// Ready reason (the STATUS column) names the limit, not plain Ready.
func TestReadinessDuringAHold(t *testing.T) {
	limited := metav1.Condition{Type: v1alpha1.ConditionScalingLimited, Status: metav1.ConditionTrue,
		Reason: v1alpha1.ReasonAtMaxReplicas, Message: "the lag asks for 9 replicas and maxReplicas is 4"}
	within := limited
	within.Status, within.Reason = metav1.ConditionFalse, v1alpha1.ReasonWithinBounds
	tests := []struct {
		name       string
		conditions []metav1.Condition
		decision   *autoscale.Decision
		want       string
	}{
		{"a hold keeps the limit", []metav1.Condition{limited}, &autoscale.Decision{Hold: true}, v1alpha1.ReasonAtMaxReplicas},
		{"no decision yet keeps the limit", []metav1.Condition{limited}, nil, v1alpha1.ReasonAtMaxReplicas},
		{"a hold within bounds is Ready", []metav1.Condition{within}, &autoscale.Decision{Hold: true}, v1alpha1.ReasonReady},
		{"a fresh decision within bounds is Ready", []metav1.Condition{limited}, &autoscale.Decision{Replicas: 4}, v1alpha1.ReasonReady},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ec := &v1alpha1.EventConsumer{}
			ec.Status.DesiredReplicas, ec.Status.ReadyReplicas, ec.Status.Replicas = 4, 4, 4
			ec.Status.Conditions = tc.conditions
			reason, _, ready := readiness(&reconcileState{ec: ec, decision: tc.decision})
			if reason != tc.want || !ready {
				t.Errorf("reason %s ready %v, want %s and ready", reason, ready, tc.want)
			}
		})
	}
}

// TestLearnedStatusWritesOnMaterialMoves: status.learned changes only when
// a figure appears or moves by more than 10%, so the moving averages'
// noise costs no status write.
func TestLearnedStatusWritesOnMaterialMoves(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	prev := &v1alpha1.LearnedStatus{CapacityPerReplica: ptrTo(100.0), ScaleUpDelaySeconds: ptrTo(20.0), Partitions: 12}
	tests := []struct {
		name    string
		prev    *v1alpha1.LearnedStatus
		learned scaler.Learned
		changed bool
	}{
		{"nothing learned", nil, scaler.Learned{}, false},
		{"first capacity", nil, scaler.Learned{Capacity: 87.654}, true},
		{"capacity within 10%", prev, scaler.Learned{Capacity: 109, ScaleUpDelay: 20 * time.Second, Partitions: 12}, false},
		{"capacity beyond 10%", prev, scaler.Learned{Capacity: 111, ScaleUpDelay: 20 * time.Second, Partitions: 12}, true},
		{"delay beyond 10%", prev, scaler.Learned{Capacity: 100, ScaleUpDelay: 25 * time.Second, Partitions: 12}, true},
		{"partitions changed", prev, scaler.Learned{Capacity: 100, ScaleUpDelay: 20 * time.Second, Partitions: 24}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := learnedStatus(tc.prev, tc.learned, now)
			if changed := got != tc.prev; changed != tc.changed {
				t.Fatalf("changed %v, want %v (%+v)", changed, tc.changed, got)
			}
			if tc.changed && (got.Updated == nil || !got.Updated.Time.Equal(now)) {
				t.Errorf("updated %v, want now", got.Updated)
			}
		})
	}
	if got := learnedStatus(nil, scaler.Learned{Capacity: 87.654}, now); *got.CapacityPerReplica != 87.7 {
		t.Errorf("capacity %v, want 87.7 (3 significant digits)", *got.CapacityPerReplica)
	}
}
