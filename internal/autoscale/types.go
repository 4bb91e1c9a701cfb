// Package autoscale decides how many replicas a Kafka consumer Deployment
// should run, from a window of consumer-group lag observations.
//
// The package is pure: it has no clock, no client and no Kafka types. The
// caller (the EventConsumer reconciler, or the simulator in internal/sim)
// converts its own data into an Input, calls Decide, applies
// Decision.Replicas and keeps Decision.State for the next call. The same
// inputs always give the same Decision, which is what lets the simulator and
// the table tests stand in for a cluster.
package autoscale

import "time"

// Policy selects how the raw replica recommendation is computed.
type Policy string

const (
	// PolicyTimeLag keeps the group's time lag (the age of the oldest
	// unconsumed record) under Spec.MaxLagSeconds with the fewest replicas.
	// It is the default.
	PolicyTimeLag Policy = "TimeLag"
	// PolicyLagThreshold reproduces KEDA's Kafka scaler: one replica per
	// Spec.LagThreshold records of total lag.
	PolicyLagThreshold Policy = "LagThreshold"
)

// Defaults used when a Spec field is zero. The operator and the simulator
// fill every field from the API's defaults (internal/scaler), so these only
// serve callers that leave a field empty; a test checks that they equal the
// API's.
const (
	// DefaultMaxLagSeconds is the TimeLag target when Spec.MaxLagSeconds is 0.
	DefaultMaxLagSeconds = 30
	// DefaultLagThreshold is the LagThreshold policy's records per replica
	// when Spec.LagThreshold is 0 (the API's default).
	DefaultLagThreshold = 1000
	// DefaultMinScaleInterval is the shortest time between two replica
	// changes when Spec.MinScaleInterval is 0. Every change makes the group
	// rebalance and new pods start; 30 s lets one change settle and show in
	// the lag before the next one is judged.
	DefaultMinScaleInterval = 30 * time.Second
	// DefaultBurstMemory is the API's default for Spec.BurstMemory:
	// three times the longest period the detector looks for.
	DefaultBurstMemory = 6 * time.Hour
)

// Spec is the scaling configuration of one consumer, already defaulted by
// the API except where a field says otherwise.
type Spec struct {
	// MinReplicas is the fewest replicas; 0 allows scale to zero.
	MinReplicas int32
	// MaxReplicas is the most replicas; nil means the partition count, or
	// no bound for a share group (the API requires it for Share).
	MaxReplicas *int32
	// Share is true for a KIP-932 share group: every member consumes from
	// every partition, so the partition count neither caps the replicas
	// nor sets the steps between useful counts, and capacity is per
	// member whatever the partitions.
	Share bool
	// Policy is PolicyTimeLag (also when empty) or PolicyLagThreshold.
	Policy Policy
	// MaxLagSeconds is the TimeLag target; 0 means DefaultMaxLagSeconds.
	// With LagThreshold it only gates scale-down when set.
	MaxLagSeconds float64
	// LagThreshold is LagThreshold's records of lag per replica; 0 means
	// DefaultLagThreshold.
	LagThreshold int64
	// ActivationLag is the total lag above which a consumer at zero
	// replicas wakes up.
	ActivationLag int64
	// ThroughputPerReplica is the prior for one replica's capacity in
	// records/s, used until capacity has been measured; 0 means unknown.
	ThroughputPerReplica float64
	// ScaleDownStabilization is how long recommendations must stay below
	// the current replicas before replicas are removed.
	ScaleDownStabilization time.Duration
	// ExplicitStabilization is true when the user set
	// ScaleDownStabilization: the window is then a floor for every policy.
	// Left to the scaler, TimeLag's plan prices each change at its
	// rebalance and asks only that its recommendations agree over one
	// minimum interval, while LagThreshold keeps the window, as KEDA's HPA
	// does.
	ExplicitStabilization bool
	// AllowIdleConsumers allows more replicas than partitions.
	AllowIdleConsumers bool
	// Paused freezes the replica count.
	Paused bool
	// MinScaleInterval is the shortest time between replica changes; 0
	// means DefaultMinScaleInterval.
	MinScaleInterval time.Duration
	// BurstMemory is how long TimeLag remembers a burst: the bursts of
	// the last BurstMemory make the load's pattern, from which a period
	// is found (at least recurrenceSeen bursts evenly spaced, between
	// minPeriod and maxPeriod apart) and the next burst provisioned for
	// one scale-up delay before it is due. 0 turns the pattern off: the
	// scaler then reacts to every burst as it comes.
	BurstMemory time.Duration
	// Without turns mechanisms of the TimeLag plan off, for the
	// simulator's ablation; the operator never sets it.
	Without Mechanisms
}

// Mechanisms is a set of the TimeLag plan's mechanisms.
type Mechanisms uint

// The mechanisms an ablation can turn off.
const (
	// MechTrend is the forecast's trend.
	MechTrend Mechanisms = 1 << iota
	// MechGrowth is the inflow estimated from the lag's growth, which
	// shows a burst at its first poll.
	MechGrowth
	// MechRecurrence is the recurrence detector.
	MechRecurrence
	// MechPacking is the hottest partitions packed ceil(P/r) to a
	// consumer; without it load is taken as spread evenly.
	MechPacking
	// MechRebalanceCost is the rebalance pause in the prediction and the
	// price of a change.
	MechRebalanceCost
	// MechLowSince is the wait for the load to have been low long enough
	// to pay for two changes; without it a scale-down pays over the
	// horizon.
	MechLowSince
	// MechWait is the wait for the next poll when a scale-up made then
	// keeps the target as well; without it every scale-up is made at
	// once.
	MechWait
	// MechMissBudget is the miss a scale-down risks when the load comes
	// back faster than replicas can follow, held to the objective's
	// share of the time the replicas are saved for.
	MechMissBudget
)

// MechanismNames are the names the simulator's --without flag takes.
var MechanismNames = map[string]Mechanisms{
	"trend": MechTrend, "growth": MechGrowth, "recurrence": MechRecurrence,
	"packing": MechPacking, "rebalance-cost": MechRebalanceCost, "low-since": MechLowSince,
	"wait": MechWait, "miss-budget": MechMissBudget,
}

// PartitionObs is one partition in an Observation.
type PartitionObs struct {
	// Name is "topic/partition", for reasons.
	Name string
	// Lag is the partition's unconsumed records.
	Lag int64
	// TimeLagSeconds is the age of the partition's oldest unconsumed record.
	TimeLagSeconds float64
	// ProductionRate is records/s appended, smoothed.
	ProductionRate float64
	// ConsumptionRate is records/s committed by the group, smoothed.
	ConsumptionRate float64
	// Stuck is true when the partition does not move although the group
	// has members (a poison record, a handler that stopped it): more
	// replicas cannot help it, so it is left out of sizing.
	Stuck bool
	// Uncommitted is true when the group has no usable committed offset
	// on the partition (never committed, expired, or the topic was
	// recreated below it). Its lag then depends on the offset reset
	// policy, and with "latest" is zero however much is produced.
	Uncommitted bool
}

// Observation is one lag snapshot of the consumer group.
type Observation struct {
	// Time is when the data was read.
	Time time.Time
	// Stale is true when the latest read failed and the data is old.
	Stale bool
	// Missing is true when there is no usable data at all (unknown group,
	// missing topic).
	Missing bool
	// Partial is true when some subscribed topics or partitions could not
	// be read: Partitions and the totals cover only the readable ones.
	// Decide then never scales down, and bounds a scale-up by the
	// partition count last seen complete (or, never seen complete, by the
	// partitions it can read).
	Partial bool
	// TotalLag is the sum of partition lags.
	TotalLag int64
	// TimeLagSeconds is the largest partition time lag.
	TimeLagSeconds float64
	// ProductionRate is records/s summed over partitions.
	ProductionRate float64
	// ConsumptionRate is records/s summed over partitions.
	ConsumptionRate float64
	// Partitions holds per-partition data; it may be empty, in which case
	// load is assumed to be spread evenly.
	Partitions []PartitionObs
	// PartitionCount is the number of partitions, 0 when unknown.
	PartitionCount int
	// GroupState is Kafka's group state (Stable, PreparingRebalance,
	// CompletingRebalance, Empty, Dead) or "" when unknown.
	GroupState string
	// Members is the number of group members.
	Members int
	// MembersRebalancing is true when a KIP-848 group is moving partitions
	// between members (member epochs trail the group epoch). Its other
	// members keep consuming, but the moving partitions do not.
	MembersRebalancing bool
}

// Rebalancing reports whether the group was rebalancing when o was taken.
// Consumption stops during a rebalance, so such data says nothing about
// capacity and a decision on it would chase a transient.
func (o Observation) Rebalancing() bool {
	return o.MembersRebalancing || o.GroupState == "PreparingRebalance" || o.GroupState == "CompletingRebalance"
}

// Limit names the bound that keeps replicas below what the lag asks for.
type Limit string

// Limits.
const (
	// LimitMaxReplicas: maxReplicas is reached.
	LimitMaxReplicas Limit = "AtMaxReplicas"
	// LimitPartitionCount: every partition has its own consumer; more
	// would be idle.
	LimitPartitionCount Limit = "AtPartitionCount"
)

// Recommendation is one raw recommendation, kept for scale-down
// stabilization.
type Recommendation struct {
	// Time is when it was made.
	Time time.Time
	// Replicas is the raw recommendation before stabilization.
	Replicas int32
}

// State is what the caller keeps between two calls of Decide, grouped by
// concern. It starts as the zero value; after each call that the caller
// commits, replace it with Decision.State.
type State struct {
	// Model is what has been learned about the group.
	Model Model
	// Pattern is the load's bursts and their period.
	Pattern Pattern
	// Scale is the record of the replica changes made.
	Scale ScaleRecord
	// Recommendations are recent raw recommendations, oldest first, pruned
	// to the stabilization window plus the one entry before it.
	Recommendations []Recommendation
	// Memo is the recommendation made for the newest observation: a call
	// whose newest observation is no newer learns nothing and reuses it.
	Memo Memo
	// CompletePartitions is the partition count of the newest complete
	// observation, 0 until one is seen. It bounds scale-ups while data is
	// partial.
	CompletePartitions int
}

// Model is the group as learned online from its observations.
type Model struct {
	// Capacity is a replica's capacity in records/s, 0 when nothing has
	// been seen.
	Capacity float64
	// Saturated is true once Capacity comes from a saturated group; until
	// then it is what the group was seen to consume, a lower bound.
	Saturated bool
	// ScaleUpDelay is the measured time from a scale-up until the group
	// has that many members, 0 until measured.
	ScaleUpDelay time.Duration
	// RebalancePause is the measured time a membership change keeps the
	// group rebalancing, 0 until measured.
	RebalancePause time.Duration
	// RebalancingSince is when the group was first seen rebalancing in the
	// rebalance being measured; zero when none is.
	RebalancingSince time.Time
	// Level is the group's inflow in records/s, smoothed.
	Level float64
	// LevelAt is when Level was last updated.
	LevelAt time.Time
}

// Pattern is what the scaler knows of the load's shape over time.
type Pattern struct {
	// Quiet is the inflow outside bursts, in records/s, smoothed.
	Quiet float64
	// QuietAt is when Quiet was last updated; zero before the first.
	QuietAt time.Time
	// Bursts are the recent bursts, oldest first, at most maxBursts.
	Bursts []Burst
	// Needs are, for every replica count, the last time the plan needed
	// it, within maxHorizon: oldest first, counts decreasing.
	Needs []Recommendation
}

// Burst is one run of inflow at burstFactor times the quiet level or more.
type Burst struct {
	// Start and End are the first and the last observation in the burst.
	Start, End time.Time
	// Peak is the highest inflow seen in it, records/s.
	Peak float64
	// Open is true while the burst goes on.
	Open bool
}

// ScaleRecord is what the scaler remembers of its own changes.
type ScaleRecord struct {
	// LastScaleTime is when the replica count last changed; zero if never.
	LastScaleTime time.Time
	// JoiningSince is when the newest scale-up whose pods have not all
	// joined the group was made, JoiningTo the replicas it asked for; zero
	// when there is none.
	JoiningSince time.Time
	JoiningTo    int32
}

// Memo is the recommendation made at one observation.
type Memo struct {
	// Decided is the time of the newest observation learned from.
	Decided time.Time
	// Raw is the recommendation after the partition cap, Wanted before.
	Raw, Wanted int32
	// Reason is Raw's reason text.
	Reason string
}

// Input is everything Decide looks at.
type Input struct {
	// Spec is the scaling configuration.
	Spec Spec
	// History holds recent observations, oldest first; the last one is the
	// current one. Capacity learning looks at the last 30 s of it.
	History []Observation
	// State is what the previous Decision returned.
	State State
	// CurrentReplicas is the Deployment's replicas now.
	CurrentReplicas int32
	// Now is the decision time.
	Now time.Time
}

// Decision is Decide's answer.
type Decision struct {
	// Replicas is the replica count to apply.
	Replicas int32
	// Reason says what was measured, the target and the arithmetic, for
	// events and kubectl describe.
	Reason string
	// Recommendation is the raw recommendation before stabilization, the
	// minimum interval and bounds; it equals Replicas' input when Hold.
	Recommendation int32
	// Changed is Replicas != Input.CurrentReplicas.
	Changed bool
	// Hold is true when no recommendation was computed (paused, stale or
	// missing data, rebalance) and the current replicas are kept.
	Hold bool
	// Limited says that the lag asks for more replicas than the bounds
	// allow while the target is missed; "" when it is not.
	Limited Limit
	// Wanted is the recommendation before the partition cap and bounds.
	Wanted int32
	// Partial is the observation's Partial: no scale-down was allowed.
	Partial bool
	// Stuck are the stuck partitions left out of sizing, by name.
	Stuck []string
	// State is the state to pass to the next call.
	State State
}
