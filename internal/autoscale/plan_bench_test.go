package autoscale

import (
	"math"
	"testing"
	"time"
)

// BenchmarkPlan measures one plan, the stage that simulates replica
// counts, on a group that keeps up and on a skewed one that falls behind.
// The operator plans once per consumer per changed snapshot, so this is
// the autoscaler's share of a poll cycle per consumer.
func BenchmarkPlan(b *testing.B) {
	spec := withDefaults(Spec{MinReplicas: 1, MaxLagSeconds: 30})
	m := Model{Capacity: 100, Saturated: true, ScaleUpDelay: 30 * time.Second, RebalancePause: 5 * time.Second}
	low := func(int32) time.Duration { return 10 * time.Minute }
	for _, tc := range []struct {
		name       string
		partitions int
		inflow     float64
		members    int
	}{
		{"12 partitions keeping up", 12, 300, 4},
		{"12 partitions behind", 12, 900, 4},
		{"256 partitions skewed behind", 256, 3000, 8},
	} {
		o := uniform(600, tc.partitions, 0, 0, tc.inflow, tc.inflow, tc.members)
		if tc.partitions > 12 {
			// Zipf-like: partition i carries 1/(i+1) of the first's rate.
			total := 0.0
			for i := range o.Partitions {
				total += 1 / float64(i+1)
			}
			for i := range o.Partitions {
				r := tc.inflow / float64(i+1) / total
				o.Partitions[i].ProductionRate, o.Partitions[i].ConsumptionRate = r, math.Min(r, 50)
				o.Partitions[i].Lag, o.Partitions[i].TimeLagSeconds = int64(10*r), 10
			}
		}
		f := forecast(spec, State{}, []Observation{o}, at(600))
		s := start{cur: int32(tc.members), members: tc.members, hi: int32(tc.partitions)}
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				plan(spec, m, f, o, s, low)
			}
		})
	}
}
