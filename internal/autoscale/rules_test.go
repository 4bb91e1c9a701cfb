package autoscale

import (
	"strings"
	"testing"
	"time"
)

// partial marks o as partial: some subscribed partitions were unreadable.
func partial(o Observation) Observation { o.Partial = true; return o }

// stuckOn marks partition i of o stuck with the given lag and time lag and
// sums the totals again.
func stuckOn(o Observation, i int, lag int64, timeLag float64) Observation {
	o.Partitions = append([]PartitionObs(nil), o.Partitions...)
	o.Partitions[i] = PartitionObs{Name: "t/" + string(rune('0'+i)), Lag: lag, TimeLagSeconds: timeLag, Stuck: true}
	o.TotalLag, o.TimeLagSeconds, o.ProductionRate, o.ConsumptionRate = 0, 0, 0, 0
	for _, p := range o.Partitions {
		o.TotalLag += p.Lag
		o.TimeLagSeconds = max(o.TimeLagSeconds, p.TimeLagSeconds)
		o.ProductionRate += p.ProductionRate
		o.ConsumptionRate += p.ConsumptionRate
	}
	return o
}

// uncommitted marks every partition of o without a committed offset,
// producing rate records/s each, with no lag (reset policy latest).
func uncommitted(o Observation, rate float64) Observation {
	o.Partitions = append([]PartitionObs(nil), o.Partitions...)
	for i := range o.Partitions {
		o.Partitions[i].Name = "t/" + string(rune('0'+i))
		o.Partitions[i].Uncommitted = true
		o.Partitions[i].ProductionRate = rate
		o.Partitions[i].Lag = 0
	}
	o.ProductionRate = rate * float64(len(o.Partitions))
	o.TotalLag = 0
	return o
}

func TestPartialDataRules(t *testing.T) {
	lt := Spec{MinReplicas: 0, Policy: PolicyLagThreshold, LagThreshold: 100, ScaleDownStabilization: 0}
	tests := []struct {
		name       string
		spec       Spec
		cur        int32
		history    []Observation
		state      State
		want       int32
		wantReason string
	}{
		{
			// The measured bug: 12 partitions over two topics, one turns
			// unreadable; the readable one alone asks for 6.
			name: "no scale-down on partial data",
			spec: lt, cur: 12,
			history: []Observation{partial(uniform(600, 6, 600, 10, 0, 0, 12))},
			want:    12, wantReason: "lag data partial: not scaling down",
		},
		{
			name: "no scale to zero when the readable topic is idle",
			spec: lt, cur: 12,
			history: []Observation{partial(uniform(600, 6, 0, 0, 0, 0, 12))},
			want:    12, wantReason: "holding 12",
		},
		{
			// Without maxReplicas and never seen complete, the readable
			// partitions bound a scale-up; what runs is kept.
			name: "scale-up bounded by what runs when never seen complete",
			spec: lt, cur: 12,
			history: []Observation{partial(uniform(600, 6, 2400, 10, 0, 0, 12))},
			want:    12, wantReason: "bounded to 12",
		},
		{
			name: "scale-up where the readable partitions justify it",
			spec: lt, cur: 2,
			history: []Observation{partial(uniform(600, 6, 500, 10, 0, 0, 2))},
			want:    5, wantReason: "lag 500 / threshold 100",
		},
		{
			name: "scale-up bounded by the readable partitions when never seen complete",
			spec: lt, cur: 2,
			history: []Observation{partial(uniform(600, 6, 900, 10, 0, 0, 2))},
			want:    6, wantReason: "bounded to 6",
		},
		{
			// The trigger of the bug: one topic unreadable, the other
			// holding 6,000 records at a threshold of 10 asks for 600
			// replicas of a group last seen with 12 partitions.
			name: "scale-up bounded by the partition count last seen complete",
			spec: func() Spec { s := lt; s.LagThreshold = 10; return s }(), cur: 2,
			state:   State{CompletePartitions: 12},
			history: []Observation{partial(uniform(600, 6, 6000, 10, 0, 0, 2))},
			want:    12, wantReason: "bounded to 12",
		},
		{
			name: "under the last complete count, the lag decides",
			spec: lt, cur: 2,
			state:   State{CompletePartitions: 12},
			history: []Observation{partial(uniform(600, 6, 900, 10, 0, 0, 2))},
			want:    9,
		},
		{
			name: "TimeLag is bounded too",
			spec: Spec{Policy: PolicyTimeLag, MaxLagSeconds: 30, ThroughputPerReplica: 10}, cur: 8,
			state:   State{CompletePartitions: 12},
			history: []Observation{partial(uniform(600, 6, 60000, 300, 0, 0, 8))},
			want:    8, wantReason: "holding 8",
		},
		{
			name: "maxReplicas still applies",
			spec: func() Spec { s := lt; s.MaxReplicas = ptr[int32](4); return s }(), cur: 6,
			history: []Observation{partial(uniform(600, 6, 0, 0, 0, 0, 6))},
			want:    4,
		},
		{
			name: "complete data scales down as before",
			spec: lt, cur: 12,
			history: []Observation{uniform(600, 12, 600, 10, 0, 0, 12)},
			want:    6,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(Input{Spec: tc.spec, History: tc.history, State: tc.state, CurrentReplicas: tc.cur, Now: tc.history[len(tc.history)-1].Time})
			if d.Replicas != tc.want {
				t.Errorf("replicas %d, want %d (%s)", d.Replicas, tc.want, d.Reason)
			}
			if !strings.Contains(d.Reason, tc.wantReason) {
				t.Errorf("reason %q, want it to contain %q", d.Reason, tc.wantReason)
			}
			if d.Partial != tc.history[len(tc.history)-1].Partial {
				t.Errorf("Decision.Partial %v", d.Partial)
			}
		})
	}
}

func TestStuckPartitionRules(t *testing.T) {
	tl := Spec{MinReplicas: 1, ThroughputPerReplica: 100, MaxLagSeconds: 30, ScaleDownStabilization: 0}
	lt := Spec{MinReplicas: 1, Policy: PolicyLagThreshold, LagThreshold: 100}
	tests := []struct {
		name       string
		spec       Spec
		cur        int32
		lastScale  int // seconds; 0: never scaled
		obs        Observation
		want       int32
		wantStuck  int
		wantReason string
	}{
		{
			// 12 partitions at 10/s each need 2 replicas; one partition has
			// been stuck for 10 minutes on a poison record. Counted, its
			// time lag would ask for one replica per partition.
			name: "a stuck partition does not raise replicas",
			spec: tl, cur: 2,
			obs:  stuckOn(uniform(600, 12, 0, 0, 120, 120, 2), 3, 5000, 600),
			want: 2, wantStuck: 1, wantReason: "partition t/3 stuck, left out of sizing",
		},
		{
			name: "a stuck partition does not block scale-down",
			spec: tl, cur: 8,
			obs:  stuckOn(uniform(600, 12, 0, 0, 120, 120, 8), 3, 5000, 600),
			want: 2, wantStuck: 1,
		},
		{
			name: "LagThreshold leaves a stuck partition's lag out",
			spec: lt, cur: 2,
			obs:  stuckOn(uniform(600, 12, 1200, 5, 0, 0, 2), 0, 100000, 600),
			want: 11, wantStuck: 1,
		},
		{
			name: "a recovered partition counts again",
			spec: lt, cur: 2,
			obs: func() Observation {
				o := stuckOn(uniform(600, 12, 1200, 5, 0, 0, 2), 0, 100000, 600)
				o.Partitions[0].Stuck = false
				return o
			}(),
			want: 12, wantStuck: 0,
		},
		{
			// A scale-up 40 s ago: its pods join and the group rebalances,
			// so the partitions stand still and the lag engine calls them
			// stalled. They count: the backlog asks for more.
			name: "partitions standing still while a scale change settles count",
			spec: lt, cur: 2, lastScale: 560,
			obs:  stuckOn(uniform(600, 12, 1200, 5, 0, 0, 2), 0, 100000, 600),
			want: 12, wantStuck: 0,
		},
		{
			name: "once the change has settled they are stuck again",
			spec: lt, cur: 2, lastScale: 530,
			obs:  stuckOn(uniform(600, 12, 1200, 5, 0, 0, 2), 0, 100000, 600),
			want: 11, wantStuck: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var st State
			if tc.lastScale > 0 {
				st.Scale.LastScaleTime = at(tc.lastScale)
			}
			d := Decide(Input{Spec: tc.spec, State: st, History: []Observation{tc.obs}, CurrentReplicas: tc.cur, Now: tc.obs.Time})
			if d.Replicas != tc.want {
				t.Errorf("replicas %d, want %d (%s)", d.Replicas, tc.want, d.Reason)
			}
			if len(d.Stuck) != tc.wantStuck {
				t.Errorf("stuck %v, want %d", d.Stuck, tc.wantStuck)
			}
			if !strings.Contains(d.Reason, tc.wantReason) {
				t.Errorf("reason %q, want it to contain %q", d.Reason, tc.wantReason)
			}
		})
	}
}

func TestWakeFromZeroRules(t *testing.T) {
	tests := []struct {
		name       string
		spec       Spec
		obs        Observation
		want       int32
		wantReason string
	}{
		{
			name: "production without commits wakes TimeLag",
			spec: Spec{MinReplicas: 0, MaxLagSeconds: 30},
			obs:  uncommitted(uniform(600, 4, 0, 0, 0, 0, 0), 5),
			want: 1, wantReason: "records produced on t/0, which has no committed offset -> 1 replica",
		},
		{
			name: "production without commits wakes LagThreshold",
			spec: Spec{MinReplicas: 0, Policy: PolicyLagThreshold, LagThreshold: 100, ActivationLag: 50},
			obs:  uncommitted(uniform(600, 4, 0, 0, 0, 0, 0), 5),
			want: 1,
		},
		{
			name: "no production without commits stays at zero",
			spec: Spec{MinReplicas: 0, MaxLagSeconds: 30},
			obs:  uncommitted(uniform(600, 4, 0, 0, 0, 0, 0), 0),
			want: 0,
		},
		{
			name: "activationLag still applies to committed lag",
			spec: Spec{MinReplicas: 0, Policy: PolicyLagThreshold, LagThreshold: 100, ActivationLag: 50},
			obs:  uniform(600, 4, 40, 5, 2, 0, 0),
			want: 0, wantReason: "lag 40 <= activation 50",
		},
		{
			name: "committed lag above activationLag wakes as before",
			spec: Spec{MinReplicas: 0, Policy: PolicyLagThreshold, LagThreshold: 100, ActivationLag: 50},
			obs:  uniform(600, 4, 80, 5, 2, 0, 0),
			want: 1, wantReason: "lag 80 / threshold 100",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(Input{Spec: tc.spec, History: []Observation{tc.obs}, CurrentReplicas: 0, Now: tc.obs.Time})
			if d.Replicas != tc.want {
				t.Errorf("replicas %d, want %d (%s)", d.Replicas, tc.want, d.Reason)
			}
			if !strings.Contains(d.Reason, tc.wantReason) {
				t.Errorf("reason %q, want it to contain %q", d.Reason, tc.wantReason)
			}
		})
	}
}

func TestLimitRules(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		cur  int32
		obs  Observation
		want Limit
	}{
		{
			name: "at maxReplicas with the target missed",
			spec: Spec{MinReplicas: 1, MaxReplicas: ptr[int32](6), ThroughputPerReplica: 50, MaxLagSeconds: 20},
			cur:  6, obs: uniform(600, 12, 20000, 64.6, 400, 300, 6),
			want: LimitMaxReplicas,
		},
		{
			name: "at the partition count with the target missed",
			spec: Spec{MinReplicas: 1, ThroughputPerReplica: 50, MaxLagSeconds: 20},
			cur:  6, obs: uniform(600, 6, 20000, 64.6, 400, 300, 6),
			want: LimitPartitionCount,
		},
		{
			name: "at maxReplicas but under the target",
			spec: Spec{MinReplicas: 1, MaxReplicas: ptr[int32](6), ThroughputPerReplica: 50, MaxLagSeconds: 20},
			cur:  6, obs: uniform(600, 12, 600, 8, 400, 300, 6),
			want: "",
		},
		{
			name: "within bounds",
			spec: Spec{MinReplicas: 1, MaxReplicas: ptr[int32](24), ThroughputPerReplica: 50, MaxLagSeconds: 20},
			cur:  6, obs: uniform(600, 24, 20000, 64.6, 400, 300, 6),
			want: "",
		},
		{
			name: "LagThreshold at maxReplicas",
			spec: Spec{MinReplicas: 1, MaxReplicas: ptr[int32](3), Policy: PolicyLagThreshold, LagThreshold: 100},
			cur:  3, obs: uniform(600, 12, 1200, 5, 0, 0, 3),
			want: LimitMaxReplicas,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(Input{Spec: tc.spec, History: []Observation{tc.obs}, CurrentReplicas: tc.cur, Now: tc.obs.Time})
			if d.Limited != tc.want {
				t.Errorf("limited %q, want %q (replicas %d, wanted %d: %s)", d.Limited, tc.want, d.Replicas, d.Wanted, d.Reason)
			}
		})
	}
}

// TestDecideLearnsOncePerObservation is the reconcile storm at the level of
// Decide: deciding again on the same newest observation, with the current
// replicas the previous answer set, neither learns nor doubles.
func TestDecideLearnsOncePerObservation(t *testing.T) {
	tests := []struct {
		name  string
		spec  Spec
		obs   []Observation
		cur   int32
		check func(t *testing.T, first, again Decision)
	}{
		{
			// The target missed: a decision on new data scales up. Before
			// the pods of that scale-up join, another reconcile must not
			// add more on the same data.
			name: "a scale-up is not repeated per reconcile",
			spec: Spec{MinReplicas: 1, MaxLagSeconds: 30, ThroughputPerReplica: 100},
			obs:  []Observation{uniform(600, 24, 24000, 45, 100, 0, 1)},
			cur:  2,
			check: func(t *testing.T, first, again Decision) {
				if first.Replicas <= 2 || again.Replicas != first.Replicas {
					t.Errorf("replicas %d then %d, want a scale-up, the same both times", first.Replicas, again.Replicas)
				}
			},
		},
		{
			name: "capacity is learned once per sample",
			spec: Spec{MinReplicas: 1, ThroughputPerReplica: 100, MaxLagSeconds: 30},
			obs: func() []Observation {
				var h []Observation
				for s := 540; s <= 600; s += 5 {
					h = append(h, uniform(s, 12, 6000, 20, 300, 160, 4))
				}
				return h
			}(),
			cur: 4,
			check: func(t *testing.T, first, again Decision) {
				if first.State.Model.Capacity == 100 {
					t.Fatalf("the first decision learned nothing: test is wrong")
				}
				if again.State.Model.Capacity != first.State.Model.Capacity {
					t.Errorf("capacity %v after the first decision, %v after a second on the same data", first.State.Model.Capacity, again.State.Model.Capacity)
				}
				if len(again.State.Recommendations) != len(first.State.Recommendations) {
					t.Errorf("recommendations %d then %d", len(first.State.Recommendations), len(again.State.Recommendations))
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := tc.obs[len(tc.obs)-1].Time
			first := Decide(Input{Spec: tc.spec, History: tc.obs, CurrentReplicas: tc.cur, Now: now})
			again := Decide(Input{Spec: tc.spec, History: tc.obs, State: first.State, CurrentReplicas: first.Replicas, Now: now.Add(time.Second)})
			tc.check(t, first, again)
		})
	}
}

// TestHoldsExpireBetweenObservations: with no new observation, a decision
// later than the minimum interval acts on the recommendation it held.
func TestHoldsExpireBetweenObservations(t *testing.T) {
	spec := Spec{MinReplicas: 1, Policy: PolicyLagThreshold, LagThreshold: 100, MinScaleInterval: 30 * time.Second}
	obs := []Observation{uniform(600, 12, 800, 5, 0, 0, 4)}
	st := State{Scale: ScaleRecord{LastScaleTime: at(590)}}
	first := Decide(Input{Spec: spec, History: obs, State: st, CurrentReplicas: 4, Now: at(600)})
	if first.Replicas != 4 {
		t.Fatalf("replicas %d within the minimum interval, want 4 held (%s)", first.Replicas, first.Reason)
	}
	later := Decide(Input{Spec: spec, History: obs, State: first.State, CurrentReplicas: 4, Now: at(621)})
	if later.Replicas != 8 {
		t.Fatalf("replicas %d once the interval passed, want 8 (%s)", later.Replicas, later.Reason)
	}
}

// A backlog far beyond any replica count saturates rather than wraps.
func TestHugeBacklogDoesNotWrap(t *testing.T) {
	spec := Spec{Policy: PolicyTimeLag, MaxLagSeconds: 30, ThroughputPerReplica: 0.001, MaxReplicas: ptr[int32](50), Share: true}
	o := uniform(600, 12, 1<<40, 3000, 1e6, 1, 4)
	d := Decide(Input{Spec: spec, History: []Observation{o}, CurrentReplicas: 4, Now: at(600)})
	if d.Replicas < 1 || d.Replicas > 50 || d.Wanted <= 0 {
		t.Errorf("replicas %d wanted %d, want 1 to 50 and a positive count (%s)", d.Replicas, d.Wanted, d.Reason)
	}
}
