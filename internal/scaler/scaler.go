// Package scaler holds the per-consumer autoscaler that both the operator's
// reconciler and the simulator (internal/sim) drive: it turns lag snapshots
// into autoscale observations, keeps their bounded history and the
// autoscaler's State, and remembers the replica count it last applied.
//
// Observing and deciding are separate steps. Observe takes a snapshot and
// adds it to the history once per new snapshot time; Decide may run as
// often as the caller likes (every reconcile) and learns nothing from a
// snapshot it has seen: between two observations only time-based holds,
// the stabilization window and the minimum interval, can expire.
package scaler

import (
	"fmt"
	"time"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/autoscale"
	"github.com/lagscale/lagscale/internal/lag"
)

// MaxHistory bounds the observations kept per consumer. At the API's
// shortest poll interval (1 s) it covers the default stabilization window
// and the capacity learning span; at the default 5 s, 10 minutes.
const MaxHistory = 128

// Scaler is the autoscaler of one consumer. It is not safe for concurrent
// use: controller-runtime never reconciles one object twice at once.
type Scaler struct {
	history  []autoscale.Observation
	state    autoscale.State
	observed time.Time

	applied    int32
	generation int64
	hasApplied bool
}

// Learned is the part of what a Scaler has learned that outlives it: the
// operator keeps it in the EventConsumer's status (status.learned), so that
// after a restart or a change of leader the consumer continues from it
// rather than from nothing.
type Learned struct {
	// Capacity is a replica's measured capacity in records/s, 0 when not
	// measured.
	Capacity float64
	// ScaleUpDelay is the measured time from a scale-up until its pods
	// are members of the group, 0 when not measured.
	ScaleUpDelay time.Duration
	// RebalancePause is the measured time a membership change keeps the
	// group rebalancing, 0 when not measured.
	RebalancePause time.Duration
	// Partitions is the partition count last seen on complete lag data, 0
	// when none was seen.
	Partitions int
}

// New returns a Scaler. lastScale is when replicas last changed (from the
// status after an operator restart, zero if never), so that a restarted
// operator keeps the minimum interval; learned is what an earlier Scaler
// of the consumer had learned.
func New(lastScale time.Time, learned Learned) *Scaler {
	return &Scaler{state: autoscale.State{
		Scale: autoscale.ScaleRecord{LastScaleTime: lastScale},
		Model: autoscale.Model{
			Capacity:       max(learned.Capacity, 0),
			Saturated:      learned.Capacity > 0,
			ScaleUpDelay:   max(learned.ScaleUpDelay, 0),
			RebalancePause: max(learned.RebalancePause, 0),
		},
		CompletePartitions: max(learned.Partitions, 0),
	}}
}

// Learned returns the summary of what the Scaler has learned, as of its
// last committed decision.
func (s *Scaler) Learned() Learned {
	m := s.state.Model
	return Learned{Capacity: m.Capacity, ScaleUpDelay: m.ScaleUpDelay, RebalancePause: m.RebalancePause, Partitions: s.state.CompletePartitions}
}

// Observe adds a snapshot to the history and reports whether it was new. A
// snapshot is learned from once: one whose time is not after the newest
// observed one is ignored. A stale snapshot (the last poll failed) is kept
// as one marker per outage, moved to now on every look, so that the
// autoscaler holds and the windows after the outage see it.
func (s *Scaler) Observe(snap lag.Snapshot, now time.Time) bool {
	if snap.Time.IsZero() {
		return false
	}
	if snap.Stale || !snap.Reachable {
		obs := Observation(snap)
		obs.Time, obs.Stale = now, true
		if n := len(s.history); n > 0 && s.history[n-1].Stale {
			s.history[n-1] = obs
			return false
		}
		s.add(obs)
		return false
	}
	if !snap.Time.After(s.observed) {
		return false
	}
	s.observed = snap.Time
	s.add(Observation(snap))
	return true
}

func (s *Scaler) add(o autoscale.Observation) {
	if n := len(s.history); n == MaxHistory {
		// Full: the oldest goes, in place. The array never holds more
		// than MaxHistory: append would double it past that, and at
		// 10,000 consumers the spare half alone is over 150 MB.
		copy(s.history, s.history[1:])
		s.history[n-1] = o
	} else {
		if n == cap(s.history) {
			grown := make([]autoscale.Observation, n, min(max(2*n, 8), MaxHistory))
			copy(grown, s.history)
			s.history = grown
		}
		s.history = append(s.history, o)
	}
	// The autoscaler reads per-partition data over a short span only;
	// older observations keep their totals. At 10,000 consumers the
	// partitions of a full history would hold most of the operator's
	// memory.
	since := autoscale.PartitionsSince(s.history)
	last := -1
	for i := range s.history {
		if !s.history[i].Time.Before(since) {
			break
		}
		last = i
	}
	for i := 0; i < last; i++ {
		s.history[i].Partitions = nil
	}
}

// Decide returns the replica count for now, given the replicas the
// Deployment has. The decision is a candidate: the autoscaler's State moves
// on only when the caller commits it with Commit, once the write it asks
// for has succeeded. A refused write thus leaves no trace (no minimum
// interval started, no scale-up delay counted from a start that never
// was), and the next Decide decides afresh from the same observations.
func (s *Scaler) Decide(spec autoscale.Spec, current int32, now time.Time) autoscale.Decision {
	return autoscale.Decide(autoscale.Input{
		Spec:            spec,
		History:         s.history,
		State:           s.state,
		CurrentReplicas: current,
		Now:             now,
	})
}

// Commit keeps the State of d, a decision of Decide whose write succeeded.
func (s *Scaler) Commit(d autoscale.Decision) { s.state = d.State }

// State returns the autoscaler's State, for tests and diagnostics.
func (s *Scaler) State() autoscale.State { return s.state }

// Applied records the replica count the caller wrote and the Deployment
// generation that write produced.
func (s *Scaler) Applied(replicas int32, generation int64) {
	s.applied, s.generation, s.hasApplied = replicas, generation, true
}

// Current returns the replica count to decide from: the cached
// Deployment's, unless the cache has not seen the scaler's last write yet
// (its generation is older than the one that write produced). A cache
// that lags behind lagscale's own write is no reason to change replicas,
// and reading it as one would undo the write.
func (s *Scaler) Current(cached int32, cachedGeneration int64) (replicas int32, stale bool) {
	if s.hasApplied && cachedGeneration < s.generation {
		return s.applied, true
	}
	return cached, false
}

// Observation converts a lag snapshot into the autoscaler's input.
func Observation(snap lag.Snapshot) autoscale.Observation {
	o := autoscale.Observation{
		Time:            snap.Time,
		Stale:           snap.Stale || !snap.Reachable,
		Missing:         snap.PartitionCount == 0,
		Partial:         len(snap.MissingTopics) > 0 || len(snap.TopicErrors) > 0,
		TotalLag:        snap.TotalLag,
		TimeLagSeconds:  snap.TimeLagSeconds,
		ProductionRate:  snap.ProductionRate,
		ConsumptionRate: snap.ConsumptionRate,
		PartitionCount:  snap.PartitionCount,
		GroupState:      snap.GroupState,
		Members:         snap.Members,
		// A KIP-848 group moving partitions member by member.
		MembersRebalancing: snap.Rebalancing,
	}
	if s := snap.Streams; s != nil && s.MaxInstances > 0 {
		// A streams group's unit of parallelism is the task: the most
		// instances it can use are its active tasks over the stream
		// threads of each, not the partitions of its topics.
		o.PartitionCount = s.MaxInstances
	}
	o.Partitions = make([]autoscale.PartitionObs, 0, len(snap.Partitions))
	dropped := false
	for _, p := range snap.Partitions {
		if p.Error != "" {
			// Its offsets are unknown or old: the observation does not
			// cover it.
			o.Partial, dropped = true, true
			continue
		}
		o.Partitions = append(o.Partitions, autoscale.PartitionObs{
			Name:            fmt.Sprintf("%s/%d", p.Topic, p.Partition),
			Lag:             p.Lag,
			TimeLagSeconds:  p.TimeLagSeconds,
			ProductionRate:  p.ProductionRate,
			ConsumptionRate: p.ConsumptionRate,
			Stuck:           Stuck(p, snap.Members),
			Uncommitted:     !p.HasCommit || p.CommittedOffset > p.EndOffset,
		})
	}
	if dropped {
		o.TotalLag, o.TimeLagSeconds, o.ProductionRate, o.ConsumptionRate = 0, 0, 0, 0
		for _, p := range o.Partitions {
			o.TotalLag += p.Lag
			o.TimeLagSeconds = max(o.TimeLagSeconds, p.TimeLagSeconds)
			o.ProductionRate += p.ProductionRate
			o.ConsumptionRate += p.ConsumptionRate
		}
	}
	return o
}

// Stuck reports whether a partition is stuck: its health is STALL while
// the group has members, so the members hold it and its committed offset
// does not move. STOP with members means the group has never committed
// there: a consumer that has not reached the partition yet (one member
// working through another partition's batch), not a sign that more
// replicas cannot help, so it is sized like any other.
func Stuck(p lag.PartitionLag, members int) bool {
	return members > 0 && p.Health == lag.HealthStall
}

// Spec converts the API's scaling spec into the autoscaler's. Fields the
// API server left empty (an object written before a default existed) get
// the API's defaults, the constants of api/v1alpha1. minScaleInterval is
// the operator's setting; 0 uses the autoscaler's default.
func Spec(sc v1alpha1.ScalingSpec, minScaleInterval time.Duration) autoscale.Spec {
	policy := sc.Policy
	if policy == "" {
		policy = v1alpha1.DefaultPolicy
	}
	return autoscale.Spec{
		MinReplicas:            deref(sc.MinReplicas, v1alpha1.DefaultMinReplicas),
		MaxReplicas:            sc.MaxReplicas,
		Policy:                 autoscale.Policy(policy),
		MaxLagSeconds:          float64(deref(sc.MaxLagSeconds, v1alpha1.DefaultMaxLagSeconds)),
		LagThreshold:           deref(sc.LagThreshold, v1alpha1.DefaultLagThreshold),
		ActivationLag:          deref(sc.ActivationLag, v1alpha1.DefaultActivationLag),
		ThroughputPerReplica:   float64(deref(sc.ThroughputPerReplica, 0)),
		ScaleDownStabilization: seconds(deref(sc.ScaleDownStabilizationSeconds, v1alpha1.DefaultScaleDownStabilizationSeconds)),
		ExplicitStabilization:  sc.ScaleDownStabilizationSeconds != nil,
		BurstMemory:            seconds(deref(sc.BurstMemorySeconds, v1alpha1.DefaultBurstMemorySeconds)),
		AllowIdleConsumers:     sc.AllowIdleConsumers,
		Paused:                 sc.Paused,
		MinScaleInterval:       minScaleInterval,
	}
}

// PollInterval is the consumer's poll interval: pollIntervalSeconds, else
// the operator's default, else the API's.
func PollInterval(sc v1alpha1.ScalingSpec, operatorDefault time.Duration) time.Duration {
	if p := sc.PollIntervalSeconds; p != nil && *p > 0 {
		return seconds(*p)
	}
	if operatorDefault > 0 {
		return operatorDefault
	}
	return seconds(v1alpha1.DefaultPollIntervalSeconds)
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

func seconds[T int32 | int64](n T) time.Duration { return time.Duration(n) * time.Second }
