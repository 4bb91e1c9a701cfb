package autoscale

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func ptr[T any](v T) *T { return &v }

// uniform returns a stable observation of p partitions sharing the given
// totals evenly.
func uniform(s int, p int, lag int64, timeLag, inflow, consumption float64, members int) Observation {
	o := Observation{
		Time: at(s), TotalLag: lag, TimeLagSeconds: timeLag, ProductionRate: inflow, ConsumptionRate: consumption,
		PartitionCount: p, GroupState: "Stable", Members: members,
	}
	for range p {
		o.Partitions = append(o.Partitions, PartitionObs{
			Lag: lag / int64(p), TimeLagSeconds: timeLag, ProductionRate: inflow / float64(p), ConsumptionRate: consumption / float64(p),
		})
	}
	return o
}

// recs returns n recommendations of r replicas, every 5 s, ending at end.
func recs(end, n int, r int32) []Recommendation {
	var out []Recommendation
	for i := n - 1; i >= 0; i-- {
		out = append(out, Recommendation{Time: at(end - 5*i), Replicas: r})
	}
	return out
}

func TestDecide(t *testing.T) {
	base := Spec{MinReplicas: 1, ThroughputPerReplica: 100, MaxLagSeconds: 30, ScaleDownStabilization: 120 * time.Second}
	with := func(f func(*Spec)) Spec { s := base; f(&s); return s }
	quiet := uniform(600, 12, 0, 0, 200, 200, 4)

	tests := []struct {
		name       string
		in         Input
		want       int32
		wantRaw    int32 // -1: do not check
		wantHold   bool
		wantReason string
	}{
		{
			name: "scale up at once when the target is missed",
			in: Input{Spec: base, CurrentReplicas: 2, Now: at(600),
				History: []Observation{uniform(600, 12, 12000, 41, 820, 200, 2)}},
			// past the target, the backlog must drain in a quarter of it;
			// 620/s more builds up over the 30 s scale-up delay:
			// 820/0.85 + (12000+18600)/7.5 per 100/s replica -> 12
			// partitions, one each.
			want: 12, wantRaw: 12, wantReason: "time lag 41s > 30s target; inflow 820/s, backlog growing for a 30s scale-up delay, backlog 30600 to drain in 7.5s, capacity 100/s per replica",
		},
		{
			name: "steady inflow sizes by capacity",
			in: Input{Spec: base, CurrentReplicas: 2, Now: at(600),
				History: []Observation{uniform(600, 12, 0, 0, 300, 300, 2)}},
			// 300/s at 85/s per replica -> k=3 partitions of 25/s (75 <= 85) -> 4 replicas.
			want: 4, wantRaw: 4, wantReason: "-> 4 replicas",
		},
		{
			name: "stale data holds",
			in: Input{Spec: base, CurrentReplicas: 5, Now: at(600),
				History: []Observation{func() Observation { o := uniform(500, 12, 0, 0, 0, 0, 5); o.Stale = true; return o }()}},
			want: 5, wantRaw: -1, wantHold: true, wantReason: "stale",
		},
		{
			name: "stale data never scales to zero",
			in: Input{Spec: with(func(s *Spec) { s.MinReplicas = 0 }), CurrentReplicas: 3, Now: at(600),
				State:   State{Recommendations: recs(595, 30, 0)},
				History: []Observation{func() Observation { o := uniform(590, 12, 0, 0, 0, 0, 3); o.Stale = true; return o }()}},
			want: 3, wantRaw: -1, wantHold: true,
		},
		{
			name: "missing data holds",
			in: Input{Spec: base, CurrentReplicas: 4, Now: at(600),
				History: []Observation{{Time: at(600), Missing: true}}},
			want: 4, wantRaw: -1, wantHold: true, wantReason: "no lag data",
		},
		{
			name: "no history holds",
			in:   Input{Spec: base, CurrentReplicas: 4, Now: at(600)},
			want: 4, wantRaw: -1, wantHold: true,
		},
		{
			name: "no decision mid-rebalance",
			in: Input{Spec: base, CurrentReplicas: 2, Now: at(600),
				History: []Observation{func() Observation {
					o := uniform(600, 12, 50000, 90, 900, 0, 2)
					o.GroupState = "PreparingRebalance"
					return o
				}()}},
			want: 2, wantRaw: -1, wantHold: true, wantReason: "PreparingRebalance",
		},
		{
			name: "no decision while completing a rebalance",
			in: Input{Spec: base, CurrentReplicas: 6, Now: at(600),
				History: []Observation{func() Observation { o := quiet; o.GroupState = "CompletingRebalance"; return o }()}},
			want: 6, wantRaw: -1, wantHold: true,
		},
		{
			name: "never above partitions",
			in: Input{Spec: base, CurrentReplicas: 4, Now: at(600),
				History: []Observation{uniform(600, 8, 80000, 200, 5000, 400, 4)}},
			want: 8, wantRaw: 8,
		},
		{
			name: "idle consumers allowed go above partitions with maxReplicas",
			in: Input{Spec: with(func(s *Spec) {
				s.AllowIdleConsumers = true
				s.MaxReplicas = ptr[int32](20)
				s.Policy = PolicyLagThreshold
				s.LagThreshold = 100
			}),
				CurrentReplicas: 4, Now: at(600), History: []Observation{uniform(600, 8, 1500, 20, 100, 100, 4)}},
			want: 15, wantRaw: 15,
		},
		{
			name: "maxReplicas bounds the result",
			in: Input{Spec: with(func(s *Spec) { s.MaxReplicas = ptr[int32](3) }), CurrentReplicas: 2, Now: at(600),
				History: []Observation{uniform(600, 12, 12000, 41, 820, 200, 2)}},
			want: 3, wantRaw: 12, wantReason: "bounded to 3",
		},
		{
			name: "minReplicas bounds the result",
			in: Input{Spec: with(func(s *Spec) { s.MinReplicas = 5 }), CurrentReplicas: 5, Now: at(600),
				State:   State{Recommendations: recs(595, 30, 1)},
				History: []Observation{uniform(600, 12, 0, 0, 10, 10, 5)}},
			want: 5, wantRaw: 1,
		},
		{
			name: "below minReplicas is raised even within the interval",
			in: Input{Spec: with(func(s *Spec) { s.MinReplicas = 3 }), CurrentReplicas: 1, Now: at(600),
				State:   State{LastScaleTime: at(590)},
				History: []Observation{uniform(600, 12, 0, 0, 10, 10, 1)}},
			want: 3, wantRaw: 1,
		},
		{
			name: "stale data still honours maxReplicas",
			in: Input{Spec: with(func(s *Spec) { s.MaxReplicas = ptr[int32](2) }), CurrentReplicas: 4, Now: at(600),
				History: []Observation{func() Observation { o := quiet; o.Stale = true; return o }()}},
			want: 2, wantRaw: -1, wantHold: true,
		},
		{
			name: "paused freezes even outside the bounds",
			in: Input{Spec: with(func(s *Spec) { s.Paused = true; s.MaxReplicas = ptr[int32](2) }), CurrentReplicas: 4, Now: at(600),
				History: []Observation{uniform(600, 12, 90000, 300, 5000, 100, 4)}},
			want: 4, wantRaw: -1, wantHold: true, wantReason: "paused",
		},
		{
			name: "scale-down waits out the window",
			in: Input{Spec: base, CurrentReplicas: 6, Now: at(600),
				State:   State{Recommendations: append(recs(540, 13, 6), recs(595, 11, 2)...)},
				History: []Observation{quiet}},
			want: 6, wantRaw: 3, wantReason: "holding 6: recommended 6 within the last 2m0s",
		},
		{
			name: "scale-down after the window of lower recommendations",
			in: Input{Spec: base, CurrentReplicas: 6, Now: at(600),
				State:   State{Recommendations: recs(595, 30, 3)},
				History: []Observation{quiet}},
			want: 3, wantRaw: 3,
		},
		{
			name: "scale-down goes to the highest recommendation of the window",
			in: Input{Spec: base, CurrentReplicas: 6, Now: at(600),
				State:   State{Recommendations: append(recs(540, 20, 3), recs(595, 11, 4)...)},
				History: []Observation{func() Observation { o := quiet; o.ProductionRate = 50; return o }()}},
			want: 4, wantRaw: 3, wantReason: "highest in the last 2m0s -> 4 replicas",
		},
		{
			name: "no scale-down until recommendations cover the window",
			in: Input{Spec: base, CurrentReplicas: 6, Now: at(600),
				State:   State{Recommendations: recs(595, 5, 3)},
				History: []Observation{quiet}},
			want: 6, wantRaw: 3, wantReason: "until recommendations cover",
		},
		{
			name: "no scale-down while time lag is not comfortably under target",
			in: Input{Spec: base, CurrentReplicas: 12, Now: at(600),
				State:   State{Recommendations: recs(595, 30, 4)},
				History: []Observation{uniform(600, 12, 3000, 18, 200, 600, 12)}},
			want: 12, wantRaw: -1, wantReason: "not scaling down while time lag 18s",
		},
		{
			name: "minimum interval delays a scale-up",
			in: Input{Spec: base, CurrentReplicas: 2, Now: at(600),
				State:   State{LastScaleTime: at(590)},
				History: []Observation{uniform(600, 12, 12000, 41, 820, 200, 2)}},
			want: 2, wantRaw: 12, wantReason: "waiting 30s after the last scale",
		},
		{
			name: "TimeLag adds replicas within the interval while the last ones have not joined",
			// 4 replicas asked for 10 s ago, 2 members so far: the burst
			// turned out larger, and no rebalance is there to protect yet.
			in: Input{Spec: base, CurrentReplicas: 4, Now: at(600),
				State:   State{LastScaleTime: at(590)},
				History: []Observation{uniform(600, 12, 2400, 5, 820, 200, 2)}},
			want: 12, wantRaw: 12, wantReason: "time lag 5.0s <= 30s target; inflow 820/s",
		},
		{
			name: "LagThreshold keeps the interval while the last replicas join",
			in: Input{Spec: with(func(s *Spec) { s.Policy = PolicyLagThreshold }), CurrentReplicas: 4, Now: at(600),
				State:   State{LastScaleTime: at(590)},
				History: []Observation{uniform(600, 12, 12000, 41, 820, 200, 2)}},
			want: 4, wantRaw: 12, wantReason: "waiting 30s after the last scale",
		},
		{
			name: "under the target the backlog drains within the target",
			// 16 s old: each partition needs 30/0.85 + 250/30 = 43.6/s,
			// two per replica -> 6; draining before the oldest record
			// reaches 30 s (in 14 s) would need 53.1/s, one per replica.
			in: Input{Spec: base, CurrentReplicas: 4, Now: at(600),
				History: []Observation{uniform(600, 12, 3000, 16, 360, 360, 4)}},
			want: 6, wantRaw: 6, wantReason: "backlog 3000 to drain in 30s",
		},
		{
			name: "scale-down waits while the window still holds a step on the way down",
			// 6 was recommended 115 s ago on the way down from a burst,
			// 3 ever since: going to 6 now would need another step soon.
			in: Input{Spec: base, CurrentReplicas: 12, Now: at(600),
				State: State{LastScaleTime: at(400),
					Recommendations: append(append(recs(470, 2, 12), recs(485, 2, 6)...), recs(595, 22, 3)...)},
				History: []Observation{quiet}},
			want: 12, wantRaw: 3, wantReason: "holding 12: recommended 6 within the last 2m0s, 3 since 30s",
		},
		{
			name: "scale-down goes to the window's highest once the recent ones agree",
			in: Input{Spec: base, CurrentReplicas: 12, Now: at(600),
				State: State{LastScaleTime: at(400),
					Recommendations: recs(595, 26, 6)},
				History: []Observation{quiet}},
			want: 6, wantRaw: 3, wantReason: "highest in the last 2m0s -> 6 replicas",
		},
		{
			name: "a steady decline still scales down in steps when the count has not changed for long",
			// 6 until 40 s ago: the window agrees with the recent 3 only in
			// 80 s, longer than the minimum interval.
			in: Input{Spec: base, CurrentReplicas: 12, Now: at(600),
				State: State{LastScaleTime: at(300),
					Recommendations: append(recs(560, 17, 6), recs(595, 7, 3)...)},
				History: []Observation{quiet}},
			want: 6, wantRaw: 3, wantReason: "highest in the last 2m0s -> 6 replicas",
		},
		{
			name: "a scale-down unchanged for long still waits when the window agrees within the minimum interval",
			// The last 6 leaves the window in 5 s: one step to 3 then, not
			// a step to 6 now and another to 3 after it.
			in: Input{Spec: base, CurrentReplicas: 12, Now: at(600),
				State: State{LastScaleTime: at(300),
					Recommendations: append(recs(485, 4, 6), recs(595, 22, 3)...)},
				History: []Observation{quiet}},
			want: 12, wantRaw: 3, wantReason: "holding 12: recommended 6 within the last 2m0s, 3 since 30s",
		},
		{
			name: "minimum interval delays a scale-down",
			in: Input{Spec: base, CurrentReplicas: 6, Now: at(600),
				State:   State{LastScaleTime: at(590), Recommendations: recs(595, 30, 3)},
				History: []Observation{quiet}},
			want: 6, wantRaw: 3, wantReason: "waiting",
		},
		{
			name: "hot partition drives the count",
			in: Input{Spec: base, CurrentReplicas: 2, Now: at(600),
				History: []Observation{func() Observation {
					// 12 partitions: one at 60/s, eleven at 10/s; 170/s in
					// total would fit 2 replicas at 85%, but the consumer
					// with the hot partition must stay <= 95/s:
					// 60+10+10+10 = 90 -> k=4 -> 3 replicas.
					o := uniform(600, 12, 0, 0, 120, 120, 2)
					o.Partitions[0].ProductionRate = 60
					o.Partitions[0].ConsumptionRate = 60
					o.ProductionRate, o.ConsumptionRate = 170, 170
					return o
				}()}},
			want: 3, wantRaw: 3, wantReason: "hottest 5 of 12 partitions need 105/s at 95% utilization -> at most 4 partitions each -> 3 replicas",
		},
		{
			name: "a partition hotter than one replica gets a consumer of its own",
			in: Input{Spec: base, CurrentReplicas: 2, Now: at(600),
				History: []Observation{func() Observation {
					o := uniform(600, 6, 0, 0, 50, 50, 2)
					o.Partitions[0].ProductionRate = 150
					o.ProductionRate = 200
					return o
				}()}},
			want: 6, wantRaw: 6, wantReason: "more than one replica gives",
		},
		{
			name: "scale to zero after inflow and lag are zero through the window",
			in: Input{Spec: with(func(s *Spec) { s.MinReplicas = 0 }), CurrentReplicas: 2, Now: at(600),
				State:   State{Recommendations: recs(595, 30, 0)},
				History: []Observation{uniform(480, 12, 0, 0, 0, 0, 2), uniform(540, 12, 0, 0, 0, 0, 2), uniform(600, 12, 0, 0, 0, 0, 2)}},
			want: 0, wantRaw: 0, wantReason: "no inflow and no lag for 2m0s -> 0 replicas",
		},
		{
			name: "no scale to zero while inflow was seen in the window",
			in: Input{Spec: with(func(s *Spec) { s.MinReplicas = 0 }), CurrentReplicas: 2, Now: at(600),
				State:   State{Recommendations: recs(595, 30, 0)},
				History: []Observation{uniform(540, 12, 0, 0, 5, 5, 2), uniform(600, 12, 0, 0, 0, 0, 2)}},
			want: 1, wantRaw: 0,
		},
		{
			name: "no scale to zero with minReplicas 1",
			in: Input{Spec: base, CurrentReplicas: 2, Now: at(600),
				State:   State{Recommendations: recs(595, 30, 0)},
				History: []Observation{uniform(600, 12, 0, 0, 0, 0, 2)}},
			want: 1, wantRaw: 0,
		},
		{
			name: "stay at zero at or below activation lag",
			in: Input{Spec: with(func(s *Spec) { s.MinReplicas = 0; s.ActivationLag = 50 }), CurrentReplicas: 0, Now: at(600),
				History: []Observation{uniform(600, 12, 48, 20, 2, 0, 0)}},
			want: 0, wantRaw: 0, wantReason: "lag 48 <= activation 50 -> 0 replicas",
		},
		{
			name: "wake on lag above activation lag, even within the interval",
			in: Input{Spec: with(func(s *Spec) { s.MinReplicas = 0; s.ActivationLag = 50 }), CurrentReplicas: 0, Now: at(600),
				State:   State{LastScaleTime: at(590)},
				History: []Observation{uniform(600, 12, 120, 20, 6, 0, 0)}},
			want: 1, wantRaw: 1,
		},
		{
			name: "unknown capacity doubles while the target is missed",
			in: Input{Spec: with(func(s *Spec) { s.ThroughputPerReplica = 0 }), CurrentReplicas: 3, Now: at(600),
				History: []Observation{func() Observation { o := uniform(600, 12, 9000, 45, 300, 0, 3); o.Partitions[0].Lag = 0; return o }()}},
			want: 6, wantRaw: 6, wantReason: "capacity unknown",
		},
		{
			name: "LagThreshold: KEDA ceil(lag/threshold)",
			in: Input{Spec: with(func(s *Spec) { s.Policy = PolicyLagThreshold; s.LagThreshold = 1000 }), CurrentReplicas: 1, Now: at(600),
				History: []Observation{uniform(600, 12, 4001, 5, 100, 100, 1)}},
			want: 5, wantRaw: 5, wantReason: "lag 4001 / threshold 1000 per replica -> 5 replicas",
		},
		{
			name: "LagThreshold: capped at partitions like KEDA",
			in: Input{Spec: with(func(s *Spec) { s.Policy = PolicyLagThreshold; s.LagThreshold = 10 }), CurrentReplicas: 1, Now: at(600),
				History: []Observation{uniform(600, 6, 4000, 5, 100, 100, 1)}},
			want: 6, wantRaw: 6, wantReason: "capped at 6 partitions",
		},
		{
			name: "LagThreshold: no activation at activation lag",
			in: Input{Spec: with(func(s *Spec) { s.Policy = PolicyLagThreshold; s.MinReplicas = 0; s.ActivationLag = 10 }), CurrentReplicas: 0, Now: at(600),
				History: []Observation{uniform(600, 6, 10, 5, 1, 0, 0)}},
			want: 0, wantRaw: 0,
		},
		{
			name: "LagThreshold: activation above activation lag",
			in: Input{Spec: with(func(s *Spec) { s.Policy = PolicyLagThreshold; s.MinReplicas = 0; s.ActivationLag = 10 }), CurrentReplicas: 0, Now: at(600),
				History: []Observation{uniform(600, 6, 12, 5, 1, 0, 0)}},
			want: 1, wantRaw: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(tt.in)
			t.Logf("reason: %s", d.Reason)
			if d.Replicas != tt.want {
				t.Errorf("Replicas = %d, want %d", d.Replicas, tt.want)
			}
			if tt.wantRaw >= 0 && d.Recommendation != tt.wantRaw {
				t.Errorf("Recommendation = %d, want %d", d.Recommendation, tt.wantRaw)
			}
			if d.Hold != tt.wantHold {
				t.Errorf("Hold = %v, want %v", d.Hold, tt.wantHold)
			}
			if d.Changed != (d.Replicas != tt.in.CurrentReplicas) {
				t.Errorf("Changed = %v with %d -> %d", d.Changed, tt.in.CurrentReplicas, d.Replicas)
			}
			if d.Changed && !d.State.LastScaleTime.Equal(tt.in.Now) {
				t.Errorf("State.LastScaleTime = %v after a change, want %v", d.State.LastScaleTime, tt.in.Now)
			}
			if !strings.Contains(d.Reason, tt.wantReason) {
				t.Errorf("Reason = %q, want it to contain %q", d.Reason, tt.wantReason)
			}
		})
	}
}

func TestLearnCapacity(t *testing.T) {
	saturatedRun := func(members int, consumption float64) []Observation {
		var h []Observation
		for s := 560; s <= 600; s += 5 {
			h = append(h, uniform(s, 12, 6000, 20, 900, consumption, members))
		}
		return h
	}
	tests := []struct {
		name    string
		history []Observation
		learned float64
		prior   float64
		want    float64
	}{
		{name: "saturated group moves the estimate toward consumption per member",
			history: saturatedRun(4, 240), learned: 100, want: 100 + learnDownWeight*(60-100)},
		{name: "prior is the starting point",
			history: saturatedRun(4, 240), prior: 100, want: 100 + learnDownWeight*(60-100)},
		{name: "no prior takes the first sample",
			history: saturatedRun(4, 240), want: 60},
		{name: "idle members beyond the partition count do not dilute the sample",
			history: func() []Observation {
				h := saturatedRun(4, 240)
				for i := range h {
					h[i].Members = 24
				}
				return h
			}(), learned: 20, want: 20},
		{name: "with nothing known, unsaturated throughput is the estimate",
			history: []Observation{uniform(570, 12, 0, 0, 600, 600, 4), uniform(600, 12, 0, 0, 600, 600, 4)}, want: 150},
		{name: "starved consumer is not a slow one",
			history: []Observation{uniform(570, 12, 0, 0, 40, 40, 4), uniform(600, 12, 0, 0, 40, 40, 4)}, learned: 100, want: 100},
		{name: "unsaturated throughput above the estimate raises it",
			history: []Observation{uniform(570, 12, 0, 0, 600, 600, 4), uniform(600, 12, 0, 0, 600, 600, 4)}, learned: 100, want: 100 + learnWeight*(150-100)},
		{name: "a rebalance inside the window prevents learning",
			history: func() []Observation {
				h := saturatedRun(4, 240)
				h[len(h)-3].GroupState = "CompletingRebalance"
				return h
			}(), learned: 100, want: 100},
		{name: "a membership change inside the window prevents learning",
			history: func() []Observation {
				h := saturatedRun(4, 240)
				h[len(h)-3].Members = 3
				return h
			}(), learned: 100, want: 100},
		{name: "one partition without backlog means not saturated",
			history: func() []Observation {
				h := saturatedRun(4, 240)
				for i := range h {
					h[i].Partitions[3].Lag = 0
				}
				return h
			}(), learned: 100, want: 100},
		{name: "too short a history prevents learning",
			history: saturatedRun(4, 240)[6:], learned: 100, want: 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := learnCapacity(tt.history, tt.learned, tt.prior, false)
			if d := got - tt.want; d > 1e-9 || d < -1e-9 {
				t.Errorf("learnCapacity = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestDecideStateRoundTrip drives Decide the way a caller does, passing
// Decision.State back in, through a burst and the quiet after it.
func TestDecideStateRoundTrip(t *testing.T) {
	spec := Spec{MinReplicas: 1, ThroughputPerReplica: 100, MaxLagSeconds: 30, ScaleDownStabilization: 60 * time.Second}
	var st State
	cur := int32(1)
	var history []Observation
	var ups, downs int
	// The burst's saturated samples teach a capacity below the prior
	// that drifts back over capacityMemory, so the run is long enough for
	// one replica to be enough again.
	for s := 0; s <= 1200; s += 5 {
		inflow := 50.0
		var lag int64
		var tl float64
		if s >= 100 && s < 200 {
			inflow = 500
			lag, tl = 2000, 12
		}
		history = append(history, uniform(s, 12, lag, tl, inflow, inflow, int(cur)))
		d := Decide(Input{Spec: spec, History: history, State: st, CurrentReplicas: cur, Now: at(s)})
		st = d.State
		if d.Replicas > cur {
			ups++
		} else if d.Replicas < cur {
			downs++
			if s < 200+60 {
				t.Errorf("scaled down at %ds, before the 60s window after the burst", s)
			}
		}
		cur = d.Replicas
	}
	if ups == 0 || downs == 0 || cur != 1 {
		t.Fatalf("ups %d downs %d final %d, want a scale-up, a scale-down and 1 replica at the end", ups, downs, cur)
	}
	if n := len(st.Recommendations); n > 60/5+2 {
		t.Errorf("kept %d recommendations, want them pruned to the window", n)
	}
}

// TestRecurringBurstsKeepTheirReplicas drives Decide every 5 s through
// bursts of 800/s over a base of 100/s (capacity 100/s per replica), with
// a toy group that consumes at its replicas' capacity. The first burst
// scales out and back in; the second comes 160 s after the first, within
// the burst memory of that scale-down, so after it the group stays at
// what the burst's inflow needs (10 replicas for 160 s cost less than two
// changes) and absorbs the third without a change. It scales in once the
// memory holds the third burst alone: no gap is measured then, and keeping
// the replicas for a burst assumed a memory away costs more than two
// changes. With the memory off, the group scales in after every burst.
func TestRecurringBurstsKeepTheirReplicas(t *testing.T) {
	spec := Spec{MinReplicas: 1, ThroughputPerReplica: 100, MaxLagSeconds: 30, ScaleDownStabilization: 120 * time.Second, BurstMemory: DefaultBurstMemory}
	reps, reasons, changes := runBursts(spec)
	check := func(s int, want int32, why string) {
		t.Helper()
		if reps[s] != want {
			t.Errorf("t=%ds: %d replicas, want %d (%s); reason %q", s, reps[s], want, why, reasons[s])
		}
	}
	// 800/s is 67/s per partition, 78/s at 85% utilization: one
	// partition per replica.
	check(330, 12, "scaled out for the first burst")
	check(480, 2, "a single burst scales back in")
	check(550, 12, "scaled out again: the load recurred")
	check(730, 12, "kept for the recurring bursts")
	if !strings.Contains(reasons[730], "load came back after a scale-down") {
		t.Errorf("reason at t=730 does not say why replicas are kept: %q", reasons[730])
	}
	check(770, 12, "the third burst is absorbed")
	check(1300, 12, "kept while the memory holds bursts 160 s apart")
	check(1700, 2, "let go once the memory holds the third burst alone")
	check(3000, 2, "still in after the burst memory")
	if changes > 6 {
		t.Errorf("%d replica changes, want at most 6 (two per scale-out, one per scale-in)", changes)
	}

	// With the memory off, every burst is scaled out for and in after.
	spec.BurstMemory = 0
	reps, reasons, changes = runBursts(spec)
	if reps[730] != 2 || reps[770] != 12 || changes < 6 {
		t.Errorf("memory off: %d replicas at t=730 (want 2), %d at t=770 (want 12), %d changes (want 6 or more); reason at 730 %q",
			reps[730], reps[770], changes, reasons[730])
	}
}

// runBursts drives Decide every 5 s for 3,000 s through bursts of 800/s
// (t=300, 520 and 740, 60 s each) over a base of 100/s, with a toy group
// that consumes at its replicas' capacity of 100/s each. It returns the
// replicas and reason after each decision and the number of changes.
func runBursts(spec Spec) (map[int]int32, map[int]string, int) {
	bursts := [][2]int{{300, 360}, {520, 580}, {740, 800}}
	inflowAt := func(s int) float64 {
		for _, b := range bursts {
			if s >= b[0] && s < b[1] {
				return 800
			}
		}
		return 100
	}
	var (
		cur     int32 = 2
		st      State
		history []Observation
		backlog float64
		reps    = map[int]int32{}
		reasons = map[int]string{}
		changes int
	)
	for s := 0; s <= 3000; s += 5 {
		in := inflowAt(s)
		consumed := min(in+backlog/5, float64(cur)*100)
		backlog = max(0, backlog+(in-consumed)*5)
		timeLag := 0.0
		if backlog > 0 {
			timeLag = backlog / in
		}
		history = append(history, uniform(s, 12, int64(backlog), timeLag, in, consumed, int(cur)))
		if len(history) > 12 {
			history = history[1:]
		}
		d := Decide(Input{Spec: spec, History: history, State: st, CurrentReplicas: cur, Now: at(s)})
		st = d.State
		if d.Replicas != cur {
			changes++
		}
		cur = d.Replicas
		reps[s], reasons[s] = cur, d.Reason
	}
	return reps, reasons, changes
}

// A scale-out that drains a backlog left over is no recurring burst; one
// that the inflow alone needs is.
func TestRecurrenceNeedsInflow(t *testing.T) {
	spec := Spec{MinReplicas: 1, ThroughputPerReplica: 100, MaxLagSeconds: 30, ScaleDownStabilization: 120 * time.Second, BurstMemory: DefaultBurstMemory}
	st := State{LastScaleDown: at(500), LastScaleTime: at(500)}
	for _, tc := range []struct {
		name   string
		inflow float64
		want   bool
	}{
		{"backlog only", 100, false},
		{"inflow beyond the replicas", 800, true},
	} {
		d := Decide(Input{Spec: spec, State: st, CurrentReplicas: 2, Now: at(600),
			History: []Observation{uniform(595, 12, 12000, 40, tc.inflow, 200, 2), uniform(600, 12, 12000, 40, tc.inflow, 200, 2)}})
		if d.Replicas <= 2 {
			t.Fatalf("%s: %d replicas, want a scale-out; %s", tc.name, d.Replicas, d.Reason)
		}
		if got := !d.State.Recurred.IsZero(); got != tc.want {
			t.Errorf("%s: recurrence %v, want %v", tc.name, got, tc.want)
		}
	}
}
