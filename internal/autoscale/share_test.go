package autoscale

import (
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
	tests := []struct {
		name       string
		spec       Spec
		obs        Observation
		want       int32
		wantReason string
	}{
		{"classic: one consumer per partition at most", base, uniform(600, 4, 0, 0, 1000, 400, 4), 4, "(one per partition)"},
		// The group consumes 400 of the 1000/s: over a 30 s scale-up delay
		// 18,000 records build up, to drain in 30 s. 1000/0.85 + 600 =
		// 1,776/s at 100/s per member.
		{"share: the inflow over the capacity per member", share, uniform(600, 4, 0, 0, 1000, 400, 4), 18, "shared over 4 partitions -> 18 replicas"},
		{"share: maxReplicas is the cap", func() Spec { s := share; s.MaxReplicas = ptr[int32](9); return s }(), uniform(600, 4, 0, 0, 1000, 400, 4), 9, "bounded to 9"},
		{"classic: a hot partition needs one consumer of its own, and no more help", base, hot(), 4, "(one per partition)"},
		// The hot partition falls behind by 800/s: 1000/0.85 + 24,000/30
		// = 1,976/s.
		{"share: a hot partition is shared like the others", share, hot(), 20, "-> 20 replicas"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(Input{Spec: tt.spec, CurrentReplicas: 4, Now: at(600), History: []Observation{tt.obs}})
			if d.Replicas != tt.want || !strings.Contains(d.Reason, tt.wantReason) {
				t.Fatalf("Decide = %d (%s), want %d containing %q", d.Replicas, d.Reason, tt.want, tt.wantReason)
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
	if got, want := learnCapacity(h, 0, 0, true), 240.0/10; got != want {
		t.Errorf("share: learnCapacity = %v, want %v (per member)", got, want)
	}
	if got, want := learnCapacity(h, 0, 0, false), 240.0/4; got != want {
		t.Errorf("classic: learnCapacity = %v, want %v (per partition owner)", got, want)
	}
}
