package autoscale

import (
	"testing"
	"time"
)

func TestLearnRebalancePause(t *testing.T) {
	rebalancing := func(s int) Observation {
		o := uniform(s, 12, 0, 0, 100, 0, 3)
		o.GroupState = "PreparingRebalance"
		return o
	}
	tests := []struct {
		name string
		m    Model
		obs  Observation
		want time.Duration
	}{
		{"a first sample is taken whole", Model{RebalancingSince: at(100)}, uniform(110, 12, 0, 0, 100, 100, 3), 10 * time.Second},
		{"a later one moves the average half way", Model{RebalancingSince: at(100), RebalancePause: 20 * time.Second}, uniform(110, 12, 0, 0, 100, 100, 3), 15 * time.Second},
		{"still rebalancing: nothing yet", Model{RebalancingSince: at(100)}, rebalancing(110), 0},
		{"longer than a rebalance takes: not a sample", Model{RebalancingSince: at(100)}, uniform(400, 12, 0, 0, 100, 100, 3), 0},
		{"no rebalance seen: nothing", Model{}, uniform(110, 12, 0, 0, 100, 100, 3), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := learnRebalancePause(tt.m, tt.obs).RebalancePause; got != tt.want {
				t.Errorf("pause %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLearnScaleUpDelay(t *testing.T) {
	tests := []struct {
		name     string
		sc       ScaleRecord
		members  int
		want     time.Duration
		pending  bool
		previous time.Duration
	}{
		{"all members joined: a sample", ScaleRecord{JoiningSince: at(100), JoiningTo: 4}, 4, 40 * time.Second, false, 0},
		{"not all joined: pending", ScaleRecord{JoiningSince: at(100), JoiningTo: 4}, 3, 0, true, 0},
		{"averaged with the previous", ScaleRecord{JoiningSince: at(100), JoiningTo: 4}, 4, 30 * time.Second, false, 20 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, sc := learnScaleUpDelay(Model{ScaleUpDelay: tt.previous}, tt.sc, uniform(140, 12, 0, 0, 100, 100, tt.members))
			if m.ScaleUpDelay != tt.want || sc.JoiningSince.IsZero() == tt.pending {
				t.Errorf("delay %v pending %v, want %v pending %v", m.ScaleUpDelay, !sc.JoiningSince.IsZero(), tt.want, tt.pending)
			}
		})
	}
}

// TestRebalancePauseIsMeasuredThroughDecide: a rebalance seen at one poll
// and over at the next is a sample, and the plan uses it.
func TestRebalancePauseIsMeasuredThroughDecide(t *testing.T) {
	spec := Spec{MinReplicas: 1, MaxLagSeconds: 30, ThroughputPerReplica: 100}
	o1 := uniform(100, 12, 0, 0, 100, 100, 2)
	o1.GroupState = "CompletingRebalance"
	d := Decide(Input{Spec: spec, History: []Observation{o1}, CurrentReplicas: 2, Now: at(100)})
	o2 := uniform(110, 12, 0, 0, 100, 100, 2)
	d = Decide(Input{Spec: spec, History: []Observation{o1, o2}, State: d.State, CurrentReplicas: 2, Now: at(110)})
	if d.State.Model.RebalancePause != 10*time.Second {
		t.Errorf("pause %v, want 10s", d.State.Model.RebalancePause)
	}
}

// TestLevelStartsFromMeasuredRates: the lag engine's first snapshot has no
// rates, so the level starts from the second one, not from zero.
func TestLevelStartsFromMeasuredRates(t *testing.T) {
	first := uniform(100, 4, 0, 0, 0, 0, 1)
	second := uniform(110, 4, 0, 0, 400, 400, 1)
	m := learnLevel(Model{}, []Observation{first})
	m = learnLevel(m, []Observation{first, second})
	if m.Level != 400 {
		t.Errorf("level %.0f after the first measured rates of 400/s, want 400", m.Level)
	}
}

// TestCapacitySampleCoversTheRateWindow: the lag engine's rates are slopes
// over RateWindowPolls polls, so a group saturated for 30 s of a longer
// rate window is not consuming at its capacity over that window yet.
func TestCapacitySampleCoversTheRateWindow(t *testing.T) {
	history := func(poll, saturatedFor int) []Observation {
		var h []Observation
		for s := 0; s <= 300; s += poll {
			lag, tl := int64(0), 0.0
			if s >= 300-saturatedFor {
				lag, tl = 4000, 20
			}
			h = append(h, uniform(s, 4, lag, tl, 300, 200, 2))
		}
		return h
	}
	tests := []struct {
		name            string
		poll, saturated int
		wantSaturated   bool
	}{
		{"saturated over the whole rate window", 10, 60, true},
		{"saturated 30 s of a 100 s rate window", 20, 40, false},
		{"saturated over a 100 s rate window", 20, 120, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := learnCapacity(Model{}, history(tt.poll, tt.saturated), 0, false, false)
			if m.Saturated != tt.wantSaturated {
				t.Errorf("saturated %v, want %v (capacity %.0f)", m.Saturated, tt.wantSaturated, m.Capacity)
			}
		})
	}
}
