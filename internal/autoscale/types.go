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
	// DefaultBurstMemory is the API's default for Spec.BurstMemory (the
	// zero value turns the memory off). Bursts in the simulator's spikes
	// scenario come every 4 to 10 minutes.
	DefaultBurstMemory = 15 * time.Minute
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
	// ScaleDownStabilization. The window is then a floor that no mechanism
	// cuts short: the burst memory's release, which may let a burst's
	// replicas go one minimum interval after the load falls, applies only
	// to the scaler's default window.
	ExplicitStabilization bool
	// AllowIdleConsumers allows more replicas than partitions.
	AllowIdleConsumers bool
	// Paused freezes the replica count.
	Paused bool
	// MinScaleInterval is the shortest time between replica changes; 0
	// means DefaultMinScaleInterval.
	MinScaleInterval time.Duration
	// BurstMemory is how long TimeLag remembers recurring bursts; 0 turns
	// the memory off. When load comes back within BurstMemory of a
	// scale-down (the inflow alone needs more replicas than run, so the
	// ones just removed are added again), the group is seeing bursts, not
	// a level that changed: each scale-in and scale-out costs two
	// rebalances and a cold start that the next burst waits for. Until
	// BurstMemory has passed since the last recurrence, scale-in stops at
	// what the highest inflow of the last BurstMemory needs, without its
	// backlog, so a burst of the same size is absorbed without a change;
	// such an absorbed burst (an inflow needing at least twice the
	// quietest of the window) counts as a recurrence too. A single burst
	// scales in as before. Keeping replicas has a price too: once a
	// burst is over, the replicas kept for it are let go as soon as the
	// inflow is back at its quiet level if keeping them for the median
	// gap between the bursts of the memory (the memory's length while it
	// holds one burst) costs more replica-seconds than scaling in and out
	// again (two changes, each priced at the whole group's replicas over
	// changeSpans targets). And while bursts recur,
	// a new one is sized at once for the median burst of the memory, not
	// for the part of it that the first poll saw.
	BurstMemory time.Duration
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

// State is what the caller keeps between two calls of Decide. It starts as
// the zero value; after each call replace it with Decision.State.
type State struct {
	// Recommendations are recent raw recommendations, oldest first, pruned
	// to the stabilization window plus the one entry before it.
	Recommendations []Recommendation
	// LearnedCapacity is the measured per-replica capacity in records/s,
	// 0 when not measured yet.
	LearnedCapacity float64
	// LastScaleTime is when the replica count last changed; zero if never.
	LastScaleTime time.Time
	// LastScaleDown is when replicas were last removed; zero if never.
	LastScaleDown time.Time
	// Recurred is when load last came back within Spec.BurstMemory of a
	// scale-down, so that replicas had to be added again; zero if never.
	Recurred time.Time
	// InflowNeeds are the replicas the inflow alone needed (no backlog),
	// at most one per 5 s, oldest first, pruned to Spec.BurstMemory.
	InflowNeeds []Recommendation
	// Decided is the time of the newest observation Decide learned from
	// and made a recommendation for. A call whose newest observation is
	// no newer learns nothing: it reuses Raw, Wanted and RawReason and
	// only lets time-based holds (stabilization, minimum interval) expire.
	Decided time.Time
	// Raw is the recommendation made at Decided, after the partition cap.
	Raw int32
	// Wanted is the recommendation made at Decided before the partition
	// cap: what the lag asks for.
	Wanted int32
	// RawReason is the reason text of Raw.
	RawReason string
	// ScaleUpDelay is the measured time from a scale-up until the group
	// has that many members, moving average; 0 until measured.
	ScaleUpDelay time.Duration
	// JoiningSince is when the newest scale-up whose pods have not all
	// joined the group was made, JoiningTo the replicas it asked for;
	// zero when there is none.
	JoiningSince time.Time
	JoiningTo    int32
	// CompletePartitions is the partition count of the newest complete
	// observation, 0 until one is seen. It bounds scale-ups while data is
	// partial.
	CompletePartitions int
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
