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
	base := Spec{MinReplicas: 1, ThroughputPerReplica: 100, MaxLagSeconds: 30, ScaleDownStabilization: 120 * time.Second, ExplicitStabilization: true}
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
			// Every partition falls behind: one consumer each.
			want: 12, wantRaw: 12, wantReason: "-> 12 replicas",
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
			want: 3, wantRaw: 3, wantReason: "-> 3 replicas",
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
				State:   State{Scale: ScaleRecord{LastScaleTime: at(590)}},
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
				State:   State{Scale: ScaleRecord{LastScaleTime: at(590)}},
				History: []Observation{uniform(600, 12, 12000, 41, 820, 200, 2)}},
			want: 2, wantRaw: 12, wantReason: "waiting 30s after the last scale",
		},
		{
			name: "TimeLag adds replicas within the interval while the last ones have not joined",
			// 4 replicas asked for 10 s ago, 2 members so far: the burst
			// turned out larger, and no rebalance is there to protect yet.
			in: Input{Spec: base, CurrentReplicas: 4, Now: at(600),
				State:   State{Scale: ScaleRecord{LastScaleTime: at(590)}},
				History: []Observation{uniform(600, 12, 2400, 5, 820, 200, 2)}},
			want: 12, wantRaw: 12, wantReason: "time lag 5.0s <= 30s target; inflow 820/s",
		},
		{
			name: "TimeLag adds replicas within the interval while none has joined",
			// 2 replicas asked for 10 s ago and no member yet: a backlog
			// arrives, and no rebalance is there to protect.
			in: Input{Spec: base, CurrentReplicas: 2, Now: at(600),
				State:   State{Scale: ScaleRecord{LastScaleTime: at(590)}},
				History: []Observation{uniform(600, 12, 12000, 5, 820, 0, 0)}},
			want: 12, wantRaw: 12, wantReason: "inflow 820/s",
		},
		{
			name: "LagThreshold keeps the interval while the last replicas join",
			in: Input{Spec: with(func(s *Spec) { s.Policy = PolicyLagThreshold }), CurrentReplicas: 4, Now: at(600),
				State:   State{Scale: ScaleRecord{LastScaleTime: at(590)}},
				History: []Observation{uniform(600, 12, 12000, 41, 820, 200, 2)}},
			want: 4, wantRaw: 12, wantReason: "waiting 30s after the last scale",
		},
		{
			name: "scale-down goes to the window's highest once the recent ones agree",
			in: Input{Spec: base, CurrentReplicas: 12, Now: at(600),
				State: State{Scale: ScaleRecord{LastScaleTime: at(400)},
					Recommendations: recs(595, 26, 6)},
				History: []Observation{quiet}},
			want: 6, wantRaw: 3, wantReason: "highest in the last 2m0s -> 6 replicas",
		},
		{
			name: "a steady decline still scales down in steps when the count has not changed for long",
			// 6 until 40 s ago: the window agrees with the recent 3 only in
			// 80 s, longer than the minimum interval.
			in: Input{Spec: base, CurrentReplicas: 12, Now: at(600),
				State: State{Scale: ScaleRecord{LastScaleTime: at(300)},
					Recommendations: append(recs(560, 17, 6), recs(595, 7, 3)...)},
				History: []Observation{quiet}},
			want: 6, wantRaw: 3, wantReason: "highest in the last 2m0s -> 6 replicas",
		},
		{
			name: "minimum interval delays a scale-down",
			in: Input{Spec: base, CurrentReplicas: 6, Now: at(600),
				State:   State{Scale: ScaleRecord{LastScaleTime: at(590)}, Recommendations: recs(595, 30, 3)},
				History: []Observation{quiet}},
			want: 6, wantRaw: 3, wantReason: "waiting",
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
				State:   State{Scale: ScaleRecord{LastScaleTime: at(590)}},
				History: []Observation{uniform(600, 12, 120, 20, 6, 0, 0)}},
			want: 1, wantRaw: 1,
		},
		{
			// Nothing consumed yet and no prior: no capacity to plan with,
			// and no doubling in the dark; the replicas that start keep
			// starting.
			name: "unknown capacity holds while nothing was consumed",
			in: Input{Spec: with(func(s *Spec) { s.ThroughputPerReplica = 0 }), CurrentReplicas: 3, Now: at(600),
				History: []Observation{func() Observation { o := uniform(600, 12, 9000, 45, 300, 0, 3); o.Partitions[0].Lag = 0; return o }()}},
			want: 3, wantRaw: 3, wantReason: "capacity not seen yet",
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
			if d.Changed && !d.State.Scale.LastScaleTime.Equal(tt.in.Now) {
				t.Errorf("State.LastScaleTime = %v after a change, want %v", d.State.Scale.LastScaleTime, tt.in.Now)
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
			got := learnCapacity(Model{Capacity: tt.learned}, tt.history, tt.prior, false, false).Capacity
			if d := got - tt.want; d > 1e-9 || d < -1e-9 {
				t.Errorf("learnCapacity = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestDecideStateRoundTrip drives Decide the way a caller does, passing
// Decision.State back in, through a burst and the quiet after it.
func TestDecideStateRoundTrip(t *testing.T) {
	spec := Spec{MinReplicas: 1, ThroughputPerReplica: 100, MaxLagSeconds: 30, ScaleDownStabilization: 60 * time.Second, ExplicitStabilization: true}
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
