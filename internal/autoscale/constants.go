package autoscale

import "time"

// Every tuning constant of the TimeLag policy is in this file, each with
// the reason for its value. They describe the method, not a workload, so
// they are not Spec fields. They were chosen on the simulator's train
// split and are reported on its test split; the evidence is in
// docs/autoscaling.md.

// The model (learn.go).
const (
	// learnWindow is how long the group must have been saturated, stable
	// and of constant membership before its consumption rate is taken as a
	// capacity sample: the lag engine smooths rates over a few polls, so a
	// shorter run would mix in a rebalance pause or a starved period.
	learnWindow = 30 * time.Second
	// RateWindowPolls is how many polls the lag engine's rates are slopes
	// over (lag.DefaultHealthWindow, which a test holds it equal to): a
	// rate reflects the group's state over that many polls, not at the
	// last one.
	RateWindowPolls = 5
	// learnWeight is the weight of a capacity sample above the estimate in
	// its moving average: a few samples follow a real change, one noisy
	// sample moves it little.
	learnWeight = 0.3
	// learnDownWeight is the weight of a saturated sample below the
	// estimate. Overestimating capacity misses the target while
	// underestimating it only costs replicas, so a sample saying the
	// handler got slower is trusted more.
	learnDownWeight = 0.6
	// capacityMemory is how long an estimate below the prior lasts without
	// new evidence: a group scaled out after its handler slowed is never
	// saturated again, so drifting back to the prior is how it finds out
	// that the handler recovered.
	capacityMemory = 30 * time.Minute
	// saturatedTimeLag is the time lag, in seconds, from which a partition
	// counts as backlogged. Below it the lag is records in flight between
	// two commits and says nothing about capacity.
	saturatedTimeLag = 2.0
	// maxScaleUpDelay bounds a scale-up delay sample: pods that take
	// longer to join are failing, not starting.
	maxScaleUpDelay = 5 * time.Minute
	// maxRebalancePause bounds a rebalance pause sample for the same
	// reason: a group rebalancing for longer has a failing member.
	maxRebalancePause = 2 * time.Minute
	// sampleWeight is the weight of a new scale-up delay or rebalance
	// pause sample: start-up times vary from pod to pod, so half the
	// weight on the newest one follows a change within two samples.
	sampleWeight = 0.5
	// levelHalfLife is the half-life of the inflow level: long enough to
	// average the lag engine's per-poll jitter, short against the scale-up
	// delays it is compared with.
	levelHalfLife = 30 * time.Second
	// trendWindow is the span the inflow's trend is fitted over: a ramp
	// shows over minutes, a burst's first polls do not make one.
	trendWindow = 5 * time.Minute
)

// Load patterns (pattern.go).
const (
	// burstFactor: inflow at least this many times the quiet level is a
	// burst. Twice the quiet level is what one replica more than the quiet
	// group could not absorb at the planned utilization.
	burstFactor = 2.0
	// quietHalfLife is the half-life of the quiet level, which moves only
	// outside bursts: slow enough that a long burst does not become the
	// new quiet level while it lasts.
	quietHalfLife = 10 * time.Minute
	// maxBursts bounds the bursts kept per consumer: enough to see a
	// period three times over and take a median, a few hundred bytes.
	maxBursts = 12
	// minPeriod and maxPeriod bound the recurrence detector: batch jobs
	// every few minutes up to hourly cycles. Daily cycles need state that
	// outlives the operator's memory and are left to a later change.
	minPeriod = time.Minute
	maxPeriod = 2 * time.Hour
	// recurrenceSeen is how many bursts, evenly spaced, make a period.
	recurrenceSeen = 3
	// periodTolerance is how far, as a share of the period, a burst may
	// start from its expected time and still count as the same period;
	// the lag engine sees a start only to within one poll as well.
	periodTolerance = 0.1
)

// The plan (plan.go).
const (
	// planUtilization is the share of a replica's learned capacity a plan
	// counts on. The estimate is a moving average of noisy samples, and
	// the inflow between two polls is not seen: planning at 90% leaves the
	// rest for both.
	planUtilization = 0.9
	// planAllowance is the share of the target a plan lets the predicted
	// time lag reach: the rest is for the forecast's error.
	planAllowance = 0.8
	// minHorizon is the shortest span a plan looks ahead: a change must
	// pay for its rebalance within it, and shorter spans would make every
	// scale-down look free.
	minHorizon = 5 * time.Minute
	// maxHorizon bounds the look-ahead, and with it the work per decision.
	maxHorizon = time.Hour
	// planSteps is how many steps a plan's horizon is cut into.
	planSteps = 120
	// changeWeight prices a replica change at this many times the replica
	// seconds the group loses to its rebalance (every member paused): the
	// pause itself, the catch-up after it, and the change's share of the
	// next one when the load turns back.
	changeWeight = 3.0
	// missTolerance: where no count keeps the time lag under the target,
	// a count whose predicted excess and final backlog are within this
	// factor of the most replicas' does as well: the prediction is not
	// finer than that, and the extra replicas would buy nothing it can
	// see.
	missTolerance = 1.05
	// missBudget is the share of time a scale-down may cost above the
	// target: when the load it was low for comes back, a group whose pods
	// take longer to consume than the target allows misses it until they
	// do. 1% is the attainment an SLO on the target usually asks (99%).
	missBudget = 0.01
	// scaleDownLagFraction: replicas are removed only while the time lag
	// is below this share of the target, so a scale-down never starts from
	// a group already close to its limit.
	scaleDownLagFraction = 0.5
)
