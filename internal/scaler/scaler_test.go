package scaler

import (
	"testing"
	"time"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/autoscale"
	"github.com/lagscale/lagscale/internal/lag"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func snapAt(s int, lagPerPartition int64) lag.Snapshot {
	snap := lag.Snapshot{Time: t0.Add(time.Duration(s) * time.Second), Reachable: true, GroupState: "Stable", Members: 2, PartitionCount: 4}
	for p := range 4 {
		snap.Partitions = append(snap.Partitions, lag.PartitionLag{Topic: "t", Partition: int32(p), Lag: lagPerPartition,
			CommittedOffset: 10, HasCommit: true, EndOffset: 10 + lagPerPartition, Health: lag.HealthOK})
		snap.TotalLag += lagPerPartition
	}
	return snap
}

func TestObserveOncePerSnapshot(t *testing.T) {
	s := New(time.Time{}, Learned{})
	tests := []struct {
		name    string
		snap    lag.Snapshot
		now     int
		wantNew bool
		wantLen int
	}{
		{"first snapshot", snapAt(0, 5), 0, true, 1},
		{"the same snapshot again", snapAt(0, 5), 1, false, 1},
		{"an older snapshot", snapAt(-5, 5), 2, false, 1},
		{"a newer snapshot", snapAt(5, 5), 5, true, 2},
		{"stale: one marker", func() lag.Snapshot { x := snapAt(5, 5); x.Stale = true; return x }(), 8, false, 3},
		{"stale again: the marker moves", func() lag.Snapshot { x := snapAt(5, 5); x.Stale = true; return x }(), 12, false, 3},
		{"fresh after the outage", snapAt(15, 5), 15, true, 4},
	}
	for _, tc := range tests {
		got := s.Observe(tc.snap, t0.Add(time.Duration(tc.now)*time.Second))
		if got != tc.wantNew || len(s.history) != tc.wantLen {
			t.Errorf("%s: new %v, history %d; want %v, %d", tc.name, got, len(s.history), tc.wantNew, tc.wantLen)
		}
	}
	if m := s.history[2]; !m.Stale || !m.Time.Equal(t0.Add(12*time.Second)) {
		t.Errorf("stale marker %+v, want stale at 12s", m)
	}
	for i := range 2 * MaxHistory {
		s.Observe(snapAt(20+5*i, 1), t0)
	}
	if len(s.history) != MaxHistory || cap(s.history) != MaxHistory {
		t.Errorf("history %d (capacity %d), want the bound %d", len(s.history), cap(s.history), MaxHistory)
	}
	// The newest observations, oldest first.
	for i, o := range s.history {
		if want := t0.Add(time.Duration(20+5*(MaxHistory+i)) * time.Second); !o.Time.Equal(want) {
			t.Fatalf("history[%d] at %s, want %s", i, o.Time.Sub(t0), want.Sub(t0))
		}
	}
}

func TestCurrentIgnoresAStaleCache(t *testing.T) {
	tests := []struct {
		name      string
		applied   bool
		cached    int32
		cachedGen int64
		want      int32
		wantStale bool
	}{
		{"nothing applied yet", false, 3, 1, 3, false},
		{"cache older than the last write", true, 8, 4, 4, true},
		{"cache has seen the write", true, 4, 5, 4, false},
		{"someone edited the Deployment since", true, 6, 6, 6, false},
	}
	for _, tc := range tests {
		s := New(time.Time{}, Learned{})
		if tc.applied {
			s.Applied(4, 5)
		}
		got, stale := s.Current(tc.cached, tc.cachedGen)
		if got != tc.want || stale != tc.wantStale {
			t.Errorf("%s: %d stale=%v, want %d stale=%v", tc.name, got, stale, tc.want, tc.wantStale)
		}
	}
}

func TestObservation(t *testing.T) {
	tests := []struct {
		name string
		snap lag.Snapshot
		test func(t *testing.T, o autoscale.Observation)
	}{
		{"complete", snapAt(0, 5), func(t *testing.T, o autoscale.Observation) {
			if o.Partial || o.Missing || len(o.Partitions) != 4 || o.TotalLag != 20 {
				t.Errorf("%+v", o)
			}
		}},
		{"a topic-level error is partial", func() lag.Snapshot {
			x := snapAt(0, 5)
			x.TopicErrors = []lag.TopicError{{Topic: "u", Error: "TOPIC_AUTHORIZATION_FAILED"}}
			return x
		}(), func(t *testing.T, o autoscale.Observation) {
			if !o.Partial {
				t.Error("not partial")
			}
		}},
		{"a missing topic beside a readable one is partial", func() lag.Snapshot {
			x := snapAt(0, 5)
			x.MissingTopics = []string{"gone"}
			return x
		}(), func(t *testing.T, o autoscale.Observation) {
			if !o.Partial || o.Missing {
				t.Errorf("partial %v missing %v", o.Partial, o.Missing)
			}
		}},
		{"a partition with an error is partial and left out", func() lag.Snapshot {
			x := snapAt(0, 5)
			x.Partitions[1].Error = "NOT_LEADER_OR_FOLLOWER"
			return x
		}(), func(t *testing.T, o autoscale.Observation) {
			if !o.Partial || len(o.Partitions) != 3 || o.TotalLag != 15 {
				t.Errorf("partial %v partitions %d lag %d", o.Partial, len(o.Partitions), o.TotalLag)
			}
		}},
		{"nothing readable is missing", lag.Snapshot{Time: t0, Reachable: true, TopicErrors: []lag.TopicError{{Topic: "u", Error: "x"}}},
			func(t *testing.T, o autoscale.Observation) {
				if !o.Missing {
					t.Error("not missing")
				}
			}},
		{"STALL with members is stuck, STOP without members is not", func() lag.Snapshot {
			x := snapAt(0, 5)
			x.Partitions[0].Health = lag.HealthStall
			return x
		}(), func(t *testing.T, o autoscale.Observation) {
			if !o.Partitions[0].Stuck || o.Partitions[1].Stuck {
				t.Errorf("stuck %v %v", o.Partitions[0].Stuck, o.Partitions[1].Stuck)
			}
		}},
		{"no commit, or a commit beyond a recreated topic's end, is uncommitted", func() lag.Snapshot {
			x := snapAt(0, 5)
			x.Partitions[0].HasCommit, x.Partitions[0].CommittedOffset = false, -1
			x.Partitions[1].CommittedOffset, x.Partitions[1].EndOffset = 500, 3
			return x
		}(), func(t *testing.T, o autoscale.Observation) {
			if !o.Partitions[0].Uncommitted || !o.Partitions[1].Uncommitted || o.Partitions[2].Uncommitted {
				t.Errorf("uncommitted %v %v %v", o.Partitions[0].Uncommitted, o.Partitions[1].Uncommitted, o.Partitions[2].Uncommitted)
			}
		}},
		{"a streams group is bounded by its tasks over its threads, not its partitions", func() lag.Snapshot {
			x := snapAt(0, 5)
			x.Streams = &lag.StreamsInfo{ActiveTasks: 6, ThreadsPerInstance: 2, MaxInstances: 3}
			return x
		}(), func(t *testing.T, o autoscale.Observation) {
			if o.PartitionCount != 3 {
				t.Errorf("partition count %d, want the 3 instances 6 tasks keep busy at 2 threads each", o.PartitionCount)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.test(t, Observation(tc.snap)) })
	}
	stop := snapAt(0, 5)
	stop.Members = 0
	stop.Partitions[0].Health = lag.HealthStop
	if Observation(stop).Partitions[0].Stuck {
		t.Error("STOP without members counted as stuck")
	}
	// With members, STOP is a partition never committed yet: the one
	// member may still be working through another partition's batch.
	stop.Members = 1
	if Observation(stop).Partitions[0].Stuck {
		t.Error("STOP with members (never committed) counted as stuck")
	}
	stop.Partitions[0].Health = lag.HealthStall
	if !Observation(stop).Partitions[0].Stuck {
		t.Error("STALL with members not counted as stuck")
	}
}

func TestSpecDefaultsAreTheAPIs(t *testing.T) {
	got := Spec(v1alpha1.ScalingSpec{}, 0)
	if got.MinReplicas != v1alpha1.DefaultMinReplicas || got.MaxLagSeconds != float64(v1alpha1.DefaultMaxLagSeconds) ||
		got.LagThreshold != v1alpha1.DefaultLagThreshold || got.ScaleDownStabilization != time.Duration(v1alpha1.DefaultScaleDownStabilizationSeconds)*time.Second ||
		got.BurstMemory != time.Duration(v1alpha1.DefaultBurstMemorySeconds)*time.Second || string(got.Policy) != string(v1alpha1.DefaultPolicy) {
		t.Errorf("spec %+v does not carry the API's defaults", got)
	}
	if autoscale.DefaultMaxLagSeconds != v1alpha1.DefaultMaxLagSeconds || autoscale.DefaultLagThreshold != v1alpha1.DefaultLagThreshold ||
		autoscale.DefaultBurstMemory != time.Duration(v1alpha1.DefaultBurstMemorySeconds)*time.Second {
		t.Errorf("autoscale's fallbacks (%d s, %d records, %s) differ from the API's defaults (%d s, %d records, %d s)",
			autoscale.DefaultMaxLagSeconds, autoscale.DefaultLagThreshold, autoscale.DefaultBurstMemory,
			v1alpha1.DefaultMaxLagSeconds, v1alpha1.DefaultLagThreshold, v1alpha1.DefaultBurstMemorySeconds)
	}
	if p := PollInterval(v1alpha1.ScalingSpec{}, 0); p != time.Duration(v1alpha1.DefaultPollIntervalSeconds)*time.Second {
		t.Errorf("poll interval %s, API default %ds", p, v1alpha1.DefaultPollIntervalSeconds)
	}
	if lag.DefaultPollInterval != time.Duration(v1alpha1.DefaultPollIntervalSeconds)*time.Second {
		t.Errorf("lag engine default poll interval %s, API default %ds", lag.DefaultPollInterval, v1alpha1.DefaultPollIntervalSeconds)
	}
}

// TestOlderPartitionsDropped: the per-partition data of observations older
// than the autoscaler reads is dropped, and decisions are those on the
// full history. The load ramps, bursts and drains with a gap (an outage)
// on the way, so that capacity, growth and saturation all read the
// partitions.
func TestOlderPartitionsDropped(t *testing.T) {
	s := New(time.Time{}, Learned{})
	var full []autoscale.Observation
	spec := Spec(v1alpha1.ScalingSpec{Policy: v1alpha1.PolicyTimeLag}, time.Second)
	replicas := int32(2)
	sec := 0
	for i := range 3 * MaxHistory {
		sec += 5
		if i == 150 {
			sec += 120 // an outage: no observation for two minutes
		}
		lagPer := int64(10 + 40*(i%60))
		snap := snapAt(sec, lagPer)
		for p := range snap.Partitions {
			snap.Partitions[p].TimeLagSeconds = float64(lagPer) / 20
			snap.Partitions[p].ProductionRate = float64(20 + i%60)
			snap.Partitions[p].ConsumptionRate = 20
		}
		snap.TimeLagSeconds = float64(lagPer) / 20
		snap.ProductionRate, snap.ConsumptionRate = float64(4*(20+i%60)), 80
		now := snap.Time
		if !s.Observe(snap, now) {
			t.Fatalf("observation %d not new", i)
		}
		full = append(full, Observation(snap))
		if len(full) > MaxHistory {
			full = full[len(full)-MaxHistory:]
		}
		got := s.Decide(spec, replicas, now)
		want := autoscale.Decide(autoscale.Input{Spec: spec, History: full, State: s.state, CurrentReplicas: replicas, Now: now})
		if got.Replicas != want.Replicas || got.Reason != want.Reason {
			t.Fatalf("observation %d: %d (%s) on the trimmed history, %d (%s) on the full one", i, got.Replicas, got.Reason, want.Replicas, want.Reason)
		}
		s.Commit(got)
		replicas = got.Replicas
	}
	kept := 0
	for _, o := range s.history {
		if len(o.Partitions) > 0 {
			kept++
		}
	}
	if kept == len(s.history) || kept > 16 {
		t.Fatalf("%d of %d observations keep their partitions, want only the last few", kept, len(s.history))
	}
}
