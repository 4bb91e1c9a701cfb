package sandbox

import (
	"testing"
	"time"
)

// TestDemoRecord: the demo's summary counts a scale event per change of
// the desired replicas and takes the drain time from the first sample
// after the burst whose time lag is under a sixth of the target.
func TestDemoRecord(t *testing.T) {
	s := time.Second
	samples := []Sample{
		{At: 10 * s, DesiredReplicas: 1, LagSeconds: 1},
		{At: 20 * s, DesiredReplicas: 4, LagSeconds: 40},
		{At: 40 * s, DesiredReplicas: 4, LagSeconds: 12},
		{At: 50 * s, DesiredReplicas: 4, LagSeconds: 4},
		{At: 60 * s, DesiredReplicas: 2, LagSeconds: 1},
	}
	res := &DemoResult{MaxLagSeconds: 30, MinReplicas: 1, BurstEnd: 30 * s, LoadEnd: 60 * s, DrainTime: -1}
	last := int32(-1)
	for _, smp := range samples {
		res.record(smp, last)
		last = smp.DesiredReplicas
	}
	if len(res.Samples) != len(samples) || res.ScaleEvents != 2 || res.DrainTime != 20*s {
		t.Errorf("samples %d, scale events %d, drain time %s; want %d, 2, 20s", len(res.Samples), res.ScaleEvents, res.DrainTime, len(samples))
	}
}

func TestDemoAtMin(t *testing.T) {
	res := &DemoResult{MinReplicas: 1}
	tests := []struct {
		name string
		smp  Sample
		want bool
	}{
		{"back at the minimum", Sample{DesiredReplicas: 1, Replicas: 1}, true},
		{"lag left", Sample{DesiredReplicas: 1, Replicas: 1, Lag: 3}, false},
		{"a replica still draining", Sample{DesiredReplicas: 1, Replicas: 2}, false},
		{"still wanting more", Sample{DesiredReplicas: 2, Replicas: 1}, false},
	}
	for _, tt := range tests {
		if got := res.atMin(tt.smp); got != tt.want {
			t.Errorf("%s: atMin = %t, want %t", tt.name, got, tt.want)
		}
	}
}
