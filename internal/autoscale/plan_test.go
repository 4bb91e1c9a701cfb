package autoscale

import (
	"strings"
	"testing"
	"time"
)

func TestPlan(t *testing.T) {
	// The counts themselves, made at once: TestPlanWaitsForTheNextPoll
	// tests the wait.
	spec := withDefaults(Spec{MinReplicas: 1, MaxLagSeconds: 30, ThroughputPerReplica: 100, Without: MechWait})
	measured := Model{Capacity: 100, Saturated: true, ScaleUpDelay: 30 * time.Second, RebalancePause: 5 * time.Second}
	steady := func(inflow float64, members int) (Observation, inflowForecast) {
		o := uniform(600, 12, 0, 0, inflow, inflow, members)
		return o, forecast(spec, State{}, []Observation{o}, at(600))
	}
	tests := []struct {
		name     string
		model    Model
		inflow   float64
		cur      int32
		low      time.Duration
		want     int32
		contains string
	}{
		// 300/s at 90/s planned per replica: 4 replicas give 3 partitions
		// each, 75/s; 3 give 4 each, 100/s, which falls behind.
		{"the fewest replicas that keep up", measured, 300, 2, 0, 4, "-> 4 replicas"},
		{"no change while the count keeps up", measured, 300, 4, 0, 4, "time lag at most"},
		{"a lower count after an hour of low load", measured, 150, 6, time.Hour, 2, "-> 2 replicas"},
		// Two fewer replicas save 2 x 10 s; two changes cost far more.
		{"no scale-down just after the load fell", measured, 150, 6, 10 * time.Second, 6, "-> 6 replicas"},
		// 3 replicas of 100/s on 4 partitions of 25/s each keep up exactly.
		{"a lower bound is planned with as it is", Model{Capacity: 100}, 300, 4, time.Hour, 3, "at least, as consumed so far"},
		{"no capacity seen keeps what starts", Model{}, 300, 3, 0, 3, "capacity not seen yet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, f := steady(tt.inflow, int(tt.cur))
			low := func(int32) time.Duration { return tt.low }
			sp := spec
			if !tt.model.Saturated {
				sp.ThroughputPerReplica = 0
			}
			r := plan(sp, tt.model, f, o, start{cur: tt.cur, members: int(tt.cur), hi: 12}, low)
			if r.raw != tt.want || !strings.Contains(r.why, tt.contains) {
				t.Errorf("plan = %d (%s), want %d containing %q", r.raw, r.why, tt.want, tt.contains)
			}
		})
	}
}

// TestPlanPricesAChangeByItsRebalance: the same saving pays for a change
// whose rebalance is short and not for one whose rebalance is long.
func TestPlanPricesAChangeByItsRebalance(t *testing.T) {
	spec := withDefaults(Spec{MinReplicas: 1, MaxLagSeconds: 300})
	o := uniform(600, 12, 0, 0, 150, 150, 12)
	f := forecast(spec, State{}, []Observation{o}, at(600))
	low := func(int32) time.Duration { return 5 * time.Minute }
	for _, tc := range []struct {
		pause time.Duration
		down  bool
	}{{2 * time.Second, true}, {60 * time.Second, false}} {
		m := Model{Capacity: 100, Saturated: true, ScaleUpDelay: 30 * time.Second, RebalancePause: tc.pause}
		r := plan(spec, m, f, o, start{cur: 12, members: 12, hi: 12}, low)
		if got := r.raw < 12; got != tc.down {
			t.Errorf("rebalance %v: plan %d (%s), want scale-down %v", tc.pause, r.raw, r.why, tc.down)
		}
	}
}

// TestPlanPacksTheHottestPartitions: a consumer owns ceil(P/r)
// partitions, not a share of the load, so the count is set by what the
// busiest member may own, not by the total.
func TestPlanPacksTheHottestPartitions(t *testing.T) {
	spec := withDefaults(Spec{MinReplicas: 1, MaxLagSeconds: 30})
	o := uniform(600, 12, 0, 0, 160, 160, 2)
	for i := range o.Partitions {
		o.Partitions[i].ProductionRate, o.Partitions[i].ConsumptionRate = 10, 10
	}
	o.Partitions[0].ProductionRate, o.Partitions[0].ConsumptionRate = 50, 50
	f := forecast(spec, State{}, []Observation{o}, at(600))
	m := Model{Capacity: 100, Saturated: true, ScaleUpDelay: 30 * time.Second, RebalancePause: 5 * time.Second}
	// The total, 160/s, fits 2 replicas at 90/s each; but of 2 members
	// the busiest owns 6 partitions, the hot one among them (50 + 5 x 10
	// = 100/s), and falls behind. Of 3 it owns 4 (80/s).
	for _, tc := range []struct {
		without Mechanisms
		want    int32
	}{{MechWait, 3}, {MechWait | MechPacking, 2}} {
		sp := spec
		sp.Without = tc.without
		r := plan(sp, m, f, o, start{cur: 2, members: 2, hi: 12}, func(int32) time.Duration { return 0 })
		if r.raw != tc.want {
			t.Errorf("without %b: plan = %d (%s), want %d", tc.without, r.raw, r.why, tc.want)
		}
	}
}

// TestPlanWaitsForTheNextPoll: a scale-up that keeps the target as well
// when made at the next poll waits for it, once the scale-up delay is
// measured; one that would then come too late is made now.
func TestPlanWaitsForTheNextPoll(t *testing.T) {
	measured := Model{Capacity: 100, Saturated: true, ScaleUpDelay: 30 * time.Second, RebalancePause: 5 * time.Second}
	unmeasured := measured
	unmeasured.ScaleUpDelay = 0
	for _, tc := range []struct {
		name    string
		target  float64
		m       Model
		without Mechanisms
		want    int32
		reason  string
	}{
		// 300/s against 180/s: 2 replicas break a 120 s target within the
		// horizon, 3 added now or at the next poll keep it.
		{"a long target waits", 120, measured, 0, 2, "3 replicas keep the time lag under 96s over the next 300s if added at the next poll"},
		{"the wait turned off", 120, measured, MechWait, 3, "-> 3 replicas"},
		{"an assumed delay does not wait", 120, unmeasured, 0, 3, "-> 3 replicas"},
		// One more poll of that backlog breaks a 22 s target.
		{"a short target scales now", 22, measured, 0, 4, "-> 4 replicas"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := withDefaults(Spec{MinReplicas: 1, MaxLagSeconds: tc.target, ThroughputPerReplica: 100, Without: tc.without})
			o := uniform(600, 12, 0, 0, 300, 300, 2)
			o.TimeLagSeconds = 5
			for i := range o.Partitions {
				o.Partitions[i].TimeLagSeconds = 5
			}
			f := forecast(spec, State{}, []Observation{o}, at(600))
			r := plan(spec, tc.m, f, o, start{cur: 2, members: 2, hi: 12}, func(int32) time.Duration { return 0 })
			if r.raw != tc.want || !strings.Contains(r.why, tc.reason) {
				t.Errorf("plan = %d (%s), want %d containing %q", r.raw, r.why, tc.want, tc.reason)
			}
		})
	}
}

func TestCounts(t *testing.T) {
	g := &groupModel{lags: make([]float64, 12)}
	got := g.counts(12)
	want := []int32{1, 2, 3, 4, 6, 12}
	if len(got) != len(want) {
		t.Fatalf("counts %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("counts %v, want %v", got, want)
		}
	}
	share := &groupModel{lags: make([]float64, 4), share: true}
	if n := len(share.counts(1000)); n >= 1000 || n < 256 {
		t.Errorf("share counts up to 1000: %d of them, want every count to 256 and 5%% steps after", n)
	}
}

// TestPlanDrainsABacklogNoCountCanKeepUnder: 200 records at 1/s per
// replica and a 2 s target cannot be met by any count, and all of them
// drain it within the horizon; the count that drains it soonest, one
// consumer per partition, is the one that misses the target least.
func TestPlanDrainsABacklogNoCountCanKeepUnder(t *testing.T) {
	spec := Spec{MinReplicas: 1, ThroughputPerReplica: 1, MaxLagSeconds: 2, MinScaleInterval: time.Second}
	o := uniform(600, 4, 200, 5, 0, 0, 0)
	o.GroupState = "Empty"
	d := Decide(Input{Spec: spec, History: []Observation{o}, CurrentReplicas: 1, Now: at(600)})
	if d.Replicas != 4 || !strings.Contains(d.Reason, "miss least") {
		t.Fatalf("got %d replicas (%s), want 4: the soonest drain", d.Replicas, d.Reason)
	}
}

// TestSimulateSharesAConsumerAmongItsPartitions: a saturated consumer
// fetches evenly from its partitions, so the hot one gets a share, not
// what the cold ones leave over as one queue would: its oldest record ages
// much faster than the consumer's backlog as a whole.
func TestSimulateSharesAConsumerAmongItsPartitions(t *testing.T) {
	spec := withDefaults(Spec{MinReplicas: 1, MaxLagSeconds: 1000})
	o := uniform(600, 11, 0, 0, 110, 110, 1)
	for i := range o.Partitions {
		o.Partitions[i].ProductionRate, o.Partitions[i].ConsumptionRate = 6, 6
	}
	o.Partitions[0].ProductionRate, o.Partitions[0].ConsumptionRate = 50, 50
	f := forecast(spec, State{}, []Observation{o}, at(600))
	g := newGroupModel(spec, Model{Capacity: 90, RebalancePause: time.Second}, f, o)
	c := g.simulate(1, 1, 0, false)
	// 90/s among 11 partitions: the 10 cold ones take their 6/s, the hot
	// one gets 30/s of its 50/s and ages at 0.4 s per second. As one
	// queue of 110/s drained at 90/s, the oldest record would age at
	// 0.18 s per second.
	if want := 0.35 * g.horizon; c.peak < want {
		t.Errorf("peak time lag %.0fs over %.0fs, want at least %.0fs: the hot partition's share", c.peak, g.horizon, want)
	}
}

// TestPlanKeepsWhatAReturningLoadNeeds: a scale-down pays in replicas,
// but when the load comes back the group misses the target until added
// pods consume. With a long start-up that miss is too long for the hour
// saved, so the plan removes only the replicas whose absence the target
// absorbs; with a short one it scales down to what the load needs.
func TestPlanKeepsWhatAReturningLoadNeeds(t *testing.T) {
	o := uniform(600, 24, 0, 0, 150, 150, 6)
	for _, tc := range []struct {
		name    string
		delay   time.Duration
		without Mechanisms
		want    int32
		reason  string
	}{
		// React 5 + 120 + 5 s against 24 s allowed: from 6 to 4 the
		// returning load ages the oldest record at 1/3 s a second and
		// misses for 58 s, over 1% of the hour; to 5 it does not miss.
		{"a long start-up", 120 * time.Second, 0, 5, "fewer would miss the target for 58s if the load came back"},
		{"the budget turned off", 120 * time.Second, MechMissBudget, 2, "-> 2 replicas"},
		{"a short start-up", 10 * time.Second, 0, 2, "-> 2 replicas"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := withDefaults(Spec{MinReplicas: 1, MaxLagSeconds: 30, Without: tc.without})
			f := forecast(spec, State{}, []Observation{o}, at(600))
			m := Model{Capacity: 100, Saturated: true, ScaleUpDelay: tc.delay, RebalancePause: 5 * time.Second}
			r := plan(spec, m, f, o, start{cur: 6, members: 6, hi: 24}, func(int32) time.Duration { return time.Hour })
			if r.raw != tc.want || !strings.Contains(r.why, tc.reason) {
				t.Errorf("plan = %d (%s), want %d containing %q", r.raw, r.why, tc.want, tc.reason)
			}
		})
	}
}
