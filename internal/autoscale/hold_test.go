package autoscale

import (
	"strings"
	"testing"
)

func TestHold(t *testing.T) {
	spec := withDefaults(Spec{MinReplicas: 2, MaxReplicas: ptr[int32](6), MaxLagSeconds: 30})
	stale := uniform(600, 12, 0, 0, 0, 0, 4)
	stale.Stale = true
	missing := Observation{Time: at(600), Missing: true}
	rebalancing := uniform(600, 12, 0, 0, 0, 0, 4)
	rebalancing.GroupState = "PreparingRebalance"
	tests := []struct {
		name     string
		spec     Spec
		obs      []Observation
		cur      int32
		want     int32
		hold     bool
		contains string
	}{
		{"paused freezes, even outside the bounds", func() Spec { s := spec; s.Paused = true; return s }(), []Observation{uniform(600, 12, 0, 0, 0, 0, 9)}, 9, 9, true, "paused"},
		{"no data holds", spec, nil, 4, 4, true, "no lag data"},
		{"missing data holds", spec, []Observation{missing}, 4, 4, true, "no lag data"},
		{"stale data holds", spec, []Observation{stale}, 4, 4, true, "stale since"},
		{"a rebalance holds", spec, []Observation{rebalancing}, 4, 4, true, "group PreparingRebalance"},
		{"a hold still applies maxReplicas", spec, []Observation{stale}, 9, 6, true, "bounded to 6"},
		{"a hold still applies minReplicas", spec, []Observation{stale}, 1, 2, true, "bounded to 2"},
		{"fresh data is no hold", spec, []Observation{uniform(600, 12, 0, 0, 0, 0, 4)}, 4, 0, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := Input{Spec: tt.spec, History: tt.obs, CurrentReplicas: tt.cur, Now: at(600)}
			var last Observation
			if len(tt.obs) > 0 {
				last = tt.obs[len(tt.obs)-1]
			}
			lo, hi := bounds(tt.spec, last, 0, tt.cur)
			d, ok := hold(in, tt.spec, State{}, last, lo, hi)
			if ok != tt.hold {
				t.Fatalf("hold %v, want %v", ok, tt.hold)
			}
			if ok && (d.Replicas != tt.want || !strings.Contains(d.Reason, tt.contains)) {
				t.Errorf("hold = %d (%s), want %d containing %q", d.Replicas, d.Reason, tt.want, tt.contains)
			}
		})
	}
}
