package autoscale

import (
	"strings"
	"testing"
	"time"
)

// TestTimeLagWhilePodsJoin checks that a backlog built up while the pods
// of the last scale-up start adds no pods of its own: once they join, the
// group consumes more than the inflow and the time lag falls.
func TestTimeLagWhilePodsJoin(t *testing.T) {
	parts := make([]PartitionObs, 24)
	for i := range parts {
		// 25 records/s each (6 replicas' worth at 100/s) and 15 s of it
		// waiting.
		parts[i] = PartitionObs{Lag: 375, TimeLagSeconds: 15, ProductionRate: 25, ConsumptionRate: 8}
	}
	o := Observation{Time: time.Unix(100, 0), TotalLag: 24 * 375, TimeLagSeconds: 15, ProductionRate: 600, ConsumptionRate: 200,
		Partitions: parts, PartitionCount: 24, GroupState: "Stable"}
	spec := Spec{MaxLagSeconds: 30}
	tests := []struct {
		name    string
		members int
		cur     int32
		want    int32
	}{
		// 25/0.85 = 29.4 per partition: 3 fit a replica -> 8.
		{"pods still starting: inflow only", 2, 8, 8},
		// Plus 375/30 = 12.5 per partition: 2 fit -> 12.
		{"every pod joined: the backlog counts", 8, 8, 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obs := o
			obs.Members = tt.members
			if got, why := timeLag(spec, []Observation{obs}, tt.cur, 100, 30*time.Second); got != tt.want {
				t.Errorf("%d replicas (%s), want %d", got, why, tt.want)
			}
		})
	}
}

// TestBacklogFromHalfTheTarget checks that the backlog sizes the group
// only from half the target on: below it the replicas sized for the
// inflow drain it on their own.
func TestBacklogFromHalfTheTarget(t *testing.T) {
	for _, lag := range []float64{14, 15} {
		parts := make([]PartitionObs, 12)
		for i := range parts {
			parts[i] = PartitionObs{Lag: 250, TimeLagSeconds: lag, ProductionRate: 30, ConsumptionRate: 30}
		}
		o := Observation{Time: time.Unix(100, 0), TotalLag: 3000, TimeLagSeconds: lag, ProductionRate: 360, ConsumptionRate: 360,
			Partitions: parts, PartitionCount: 12, GroupState: "Stable", Members: 4}
		_, why := timeLag(Spec{MaxLagSeconds: 30}, []Observation{o}, 4, 100, 30*time.Second)
		if counted, want := strings.Contains(why, "backlog 3000"), lag >= 15; counted != want {
			t.Errorf("time lag %gs: backlog counted %v, want %v (%s)", lag, counted, want, why)
		}
	}
}
