package autoscale

import (
	"strings"
	"testing"
	"time"
)

// A group falling behind is sized for the backlog it will have when pods
// added now consume, a scale-up delay from now, not for the one of now.
func TestForecastOverTheScaleUpDelay(t *testing.T) {
	spec := Spec{MinReplicas: 1, ThroughputPerReplica: 100, MaxLagSeconds: 30, ScaleDownStabilization: 120 * time.Second}
	tests := []struct {
		name       string
		obs        Observation
		cur        int32
		delay      time.Duration
		want       int32
		wantReason string
	}{
		{
			// 300/s on 12 partitions, 200/s consumed: 100/s builds up.
			// Now: 1,200 records and 2 s of time lag, under half the
			// target, so the inflow alone would size: 25/0.85 = 29/s per
			// partition, three per replica at 95%, 4 replicas. In 30 s:
			// 4,200 records and 12 s (taken as half the target: a
			// forecast backlog is real), drained in 30 s: 29 + 12 = 41/s
			// per partition, two per replica, 6 replicas.
			name: "falling behind: the backlog at the join is drained",
			obs:  uniform(600, 12, 1200, 2, 300, 200, 2),
			cur:  2, delay: 30 * time.Second, want: 6, wantReason: "backlog growing for a 30s scale-up delay, backlog 4200 to drain in 30s",
		},
		{
			// Over a 10 s delay: 2,196 records, 29 + 6 = 35/s per
			// partition, three per replica, but 426/s in total needs 5.
			name: "a shorter measured delay forecasts less",
			obs:  uniform(600, 12, 1200, 2, 300, 200, 2),
			cur:  2, delay: 10 * time.Second, want: 5, wantReason: "backlog growing for a 10s scale-up delay, backlog 2196 to drain in 30s",
		},
		{
			// 160/s consumed of 160/s: nothing builds up.
			name: "keeping up: no forecast",
			obs:  uniform(600, 12, 120, 1, 160, 160, 2),
			cur:  2, delay: 30 * time.Second, want: 2,
		},
		{
			// Members 2 of 4 replicas: the other two are coming, and their
			// consumption with them.
			name: "pods still joining: no forecast",
			obs:  uniform(600, 12, 1200, 2, 300, 200, 2),
			cur:  4, delay: 30 * time.Second, want: 4,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := timeLag(spec, []Observation{tt.obs}, tt.cur, 100, tt.delay)
			if got != tt.want || !strings.Contains(why, tt.wantReason) {
				t.Errorf("timeLag = %d (%s), want %d containing %q", got, why, tt.want, tt.wantReason)
			}
			if tt.wantReason == "" && strings.Contains(why, "scale-up delay") {
				t.Errorf("reason %q forecasts", why)
			}
		})
	}
}

// The scale-up delay is learned from the time the group takes to have
// the replicas of a scale-up as members.
func TestScaleUpDelayLearned(t *testing.T) {
	spec := Spec{MinReplicas: 1, ThroughputPerReplica: 100, MaxLagSeconds: 30, ScaleDownStabilization: 120 * time.Second}
	if got := scaleUpDelay(withDefaults(spec), State{}); got != DefaultMinScaleInterval {
		t.Errorf("unmeasured delay %s, want the minimum interval %s", got, DefaultMinScaleInterval)
	}
	// A scale-up is recorded as joining.
	history := []Observation{uniform(595, 12, 1000, 3, 600, 200, 2), uniform(600, 12, 3000, 6, 600, 200, 2)}
	d := Decide(Input{Spec: spec, History: history, CurrentReplicas: 2, Now: at(600)})
	if d.Replicas <= 2 || !d.State.JoiningSince.Equal(at(600)) || d.State.JoiningTo != d.Replicas {
		t.Fatalf("scale-up to %d: joining since %s to %d, want since t=600 to %d", d.Replicas, d.State.JoiningSince, d.State.JoiningTo, d.Replicas)
	}
	st := d.State
	to := int(st.JoiningTo)
	steps := []struct {
		obs  Observation
		want time.Duration
	}{
		{uniform(610, 12, 4000, 8, 600, 200, 2), 0}, // not joined
		{func() Observation {
			o := uniform(625, 12, 4000, 8, 600, 0, to)
			o.GroupState = "PreparingRebalance"
			return o
		}(), 0}, // rebalancing
		{uniform(630, 12, 2000, 4, 600, 900, to), 30 * time.Second}, // joined after 30 s
	}
	for _, s := range steps {
		st = learnScaleUpDelay(st, s.obs)
		if st.ScaleUpDelay != s.want {
			t.Fatalf("at %s: delay %s, want %s", s.obs.Time.Sub(t0), st.ScaleUpDelay, s.want)
		}
	}
	if !st.JoiningSince.IsZero() {
		t.Errorf("still joining after the group had its members")
	}
	// A second sample of 20 s averages to 25 s.
	st.JoiningSince, st.JoiningTo = at(1000), 6
	st = learnScaleUpDelay(st, uniform(1020, 12, 0, 0, 100, 100, 6))
	if st.ScaleUpDelay != 25*time.Second {
		t.Errorf("after a 20 s sample: %s, want 25s", st.ScaleUpDelay)
	}
	// Pods that never join within maxScaleUpDelay teach nothing.
	st.JoiningSince, st.JoiningTo = at(2000), 8
	st = learnScaleUpDelay(st, uniform(2000+int(maxScaleUpDelay.Seconds())+5, 12, 0, 0, 100, 100, 8))
	if st.ScaleUpDelay != 25*time.Second || !st.JoiningSince.IsZero() {
		t.Errorf("a join after %s: delay %s (want 25s kept), joining since %s (want none)", maxScaleUpDelay, st.ScaleUpDelay, st.JoiningSince)
	}
}

// A backlog that began to build within the last poll shows part of the
// new inflow only: Decide waits one poll for the rate, then scales once.
func TestRisingLagWaitsOnePoll(t *testing.T) {
	spec := Spec{MinReplicas: 1, ThroughputPerReplica: 100, MaxLagSeconds: 30, ScaleDownStabilization: 120 * time.Second}
	// 150/s on 12 partitions kept up by 2 replicas, then from t=597 a
	// burst of 750/s: the poll at 600 sees 3 s of it, the one at 605 all
	// five.
	history := []Observation{
		uniform(590, 12, 120, 0.8, 150, 150, 2),
		uniform(595, 12, 120, 0.8, 150, 150, 2),
		uniform(600, 12, 120+3*(750-170), 2, 150, 170, 2),
	}
	d := Decide(Input{Spec: spec, History: history, CurrentReplicas: 2, Now: at(600)})
	if d.Replicas != 2 || !strings.Contains(d.Reason, "waiting a poll to measure the inflow whole") {
		t.Fatalf("first poll of the burst: %d replicas (%s), want 2 while waiting", d.Replicas, d.Reason)
	}
	history = append(history, uniform(605, 12, 120+8*(750-170), 5, 270, 170, 2))
	d = Decide(Input{Spec: spec, History: history, State: d.State, CurrentReplicas: 2, Now: at(605)})
	if d.Replicas <= 2 || strings.Contains(d.Reason, "waiting") {
		t.Fatalf("second poll of the burst: %d replicas (%s), want a scale-up", d.Replicas, d.Reason)
	}
	if !strings.Contains(d.Reason, "inflow 748/s") || d.Replicas != 12 {
		t.Errorf("second poll: %d replicas (%s), want 12 for the whole 750/s (748/s after the rounding of the per-partition lags)", d.Replicas, d.Reason)
	}

	// Already at half the target: no waiting.
	late := append([]Observation(nil), history[:2]...)
	late = append(late, uniform(600, 12, 120+3*(750-170), 16, 150, 170, 2))
	d = Decide(Input{Spec: spec, History: late, CurrentReplicas: 2, Now: at(600)})
	if d.Replicas <= 2 {
		t.Errorf("time lag 16 s: %d replicas (%s), want a scale-up at once", d.Replicas, d.Reason)
	}
}
