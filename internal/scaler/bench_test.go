package scaler

import (
	"testing"
	"time"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/lag"
)

// BenchmarkSteadyDecision is one consumer's work per poll in the operator
// at scale: a group of 8 partitions that keeps up with 1 record/s each,
// committing every 10 s, observed and decided on with a full history.
func BenchmarkSteadyDecision(b *testing.B) {
	s := New(time.Time{}, Learned{})
	spec := Spec(v1alpha1.ScalingSpec{}, 0)
	snap := func(i int) lag.Snapshot {
		sn := lag.Snapshot{Time: t0.Add(time.Duration(5*i) * time.Second), Reachable: true, GroupState: "Stable", Members: 1, PartitionCount: 8,
			ProductionRate: 8, ConsumptionRate: 8}
		committed := int64(5 * i / 10 * 10) // a commit every 10 s
		for p := range 8 {
			end := int64(5 * i)
			sn.Partitions = append(sn.Partitions, lag.PartitionLag{Topic: "t", Partition: int32(p), Lag: end - committed,
				CommittedOffset: committed, HasCommit: true, EndOffset: end, Health: lag.HealthOK, ProductionRate: 1, ConsumptionRate: 1})
			sn.TotalLag += end - committed
		}
		return sn
	}
	i := 0
	for ; i < 2*MaxHistory; i++ {
		sn := snap(i)
		s.Observe(sn, sn.Time)
		s.Commit(s.Decide(spec, 1, sn.Time))
	}
	b.ResetTimer()
	for range b.N {
		sn := snap(i)
		i++
		s.Observe(sn, sn.Time)
		s.Commit(s.Decide(spec, 1, sn.Time))
	}
}
