package autoscale

import (
	"math"
	"strings"
	"testing"
	"time"
)

// TestShareGroupScalesPastPartitions checks what a share group changes:
// the partition count no longer caps or steps the replicas, maxReplicas
// does, and a hot partition is no reason for one member per partition.
func TestShareGroupScalesPastPartitions(t *testing.T) {
	base := Spec{MinReplicas: 1, ThroughputPerReplica: 100, MaxLagSeconds: 30, ScaleDownStabilization: 120 * time.Second, MaxReplicas: ptr[int32](40)}
	share := base
	share.Share = true
	hot := func() Observation {
		// 4 partitions, one carrying 900 of the 1000/s.
		o := uniform(600, 4, 0, 0, 1000, 400, 4)
		o.Partitions[0].ProductionRate = 900
		for i := 1; i < 4; i++ {
			o.Partitions[i].ProductionRate = 100.0 / 3
		}
		return o
	}
	// A share group's members each take records of every partition, so it
	// scales past the partition count, to at least the inflow over the
	// capacity it plans with; a classic group stops at one member per
	// partition.
	need := int32(math.Ceil(1000 / 100.0))
	tests := []struct {
		name     string
		spec     Spec
		obs      Observation
		lo, hi   int32
		contains string
	}{
		{"classic: one consumer per partition at most", base, uniform(600, 4, 0, 0, 1000, 400, 4), 4, 4, "-> 4 replicas"},
		{"share: the inflow over the capacity per member", share, uniform(600, 4, 0, 0, 1000, 400, 4), need, 40, "replicas"},
		{"share: maxReplicas is the cap", func() Spec { s := share; s.MaxReplicas = ptr[int32](9); return s }(), uniform(600, 4, 0, 0, 1000, 400, 4), 9, 9, "-> 9 replicas"},
		{"classic: a hot partition is one consumer's, whatever the count", base, hot(), 1, 4, "no count keeps the time lag under"},
		{"share: a hot partition is shared like the others", share, hot(), need, 40, "replicas"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(Input{Spec: tt.spec, CurrentReplicas: 4, Now: at(600), History: []Observation{tt.obs}})
			if d.Replicas < tt.lo || d.Replicas > tt.hi || !strings.Contains(d.Reason, tt.contains) {
				t.Fatalf("Decide = %d (%s), want %d to %d containing %q", d.Replicas, d.Reason, tt.lo, tt.hi, tt.contains)
			}
		})
	}
}

// TestShareGroupLearnsCapacityPerMember: ten members on four partitions
// each consume a tenth of the group's rate; a classic group's members
// beyond the partition count would be idle and are not counted.
func TestShareGroupLearnsCapacityPerMember(t *testing.T) {
	var h []Observation
	for s := 560; s <= 600; s += 5 {
		h = append(h, uniform(s, 4, 6000, 20, 900, 240, 10))
	}
	if got, want := learnCapacity(Model{}, h, 0, true, false).Capacity, 240.0/10; got != want {
		t.Errorf("share: learnCapacity = %v, want %v (per member)", got, want)
	}
	if got, want := learnCapacity(Model{}, h, 0, false, false).Capacity, 240.0/4; got != want {
		t.Errorf("classic: learnCapacity = %v, want %v (per partition owner)", got, want)
	}
}
