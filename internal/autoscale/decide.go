package autoscale

import (
	"fmt"
	"slices"
	"time"
)

// Decide returns the replica count for one consumer. It is pure: the same
// Input always gives the same Decision. The decision is a candidate; the
// caller keeps Decision.State only once the write it asks for succeeded.
//
// It runs six stages, each its own function:
//
//	hold      no decision at all: paused, no data, stale data, a rebalance
//	learn     the model of the group: capacity, scale-up delay, rebalance
//	          pause, inflow level and the load's pattern
//	forecast  the inflow over the plan's horizon, from the model
//	plan      the cheapest replica count that keeps the time lag under the
//	          target over the horizon, each change priced at its rebalance
//	bound     minReplicas, maxReplicas, the partition count, partial data
//	choose    when the change is made: the minimum interval, the
//	          stabilization window, scale to zero
func Decide(in Input) Decision {
	spec := withDefaults(in.Spec)
	cur := in.CurrentReplicas
	st := in.State
	st.Recommendations = slices.Clone(st.Recommendations)
	st.Pattern.Bursts = slices.Clone(st.Pattern.Bursts)

	var obs Observation
	if len(in.History) > 0 {
		obs = in.History[len(in.History)-1]
	}
	st.CompletePartitions = completePartitions(st.CompletePartitions, obs)
	lo, hi := bounds(spec, obs, st.CompletePartitions, cur)
	if d, ok := hold(in, spec, st, obs, lo, hi); ok {
		return d
	}

	sized, stuck, history := leaveOutStuck(in, spec, obs)
	rec := recommendation{raw: st.Memo.Raw, wanted: st.Memo.Wanted, why: st.Memo.Reason}
	if st.Memo.Decided.IsZero() || obs.Time.After(st.Memo.Decided) {
		// A reconcile between two polls must not learn from the same
		// observation again: only a new one goes through learn and plan.
		st = learn(in, spec, st, obs, sized, history)
		if spec.Policy == PolicyLagThreshold {
			rec.raw, rec.why = lagThreshold(spec, sized, cur)
		} else {
			f := forecast(spec, st, history, in.Now)
			rec = plan(spec, st.Model, f, sized, planStart(in, st, cur, hi, obs), lowSince(st.Pattern.Needs, in.Now))
			st.Pattern.Needs = addNeed(st.Pattern.Needs, Recommendation{Time: in.Now, Replicas: rec.need})
		}
		rec = wake(rec, obs, cur)
		if len(stuck) > 0 {
			rec.why += fmt.Sprintf("; %s stuck, left out of sizing", names(stuck))
		}
		rec = capPartitions(rec, spec, obs)
		st.Recommendations = appendRecommendation(st.Recommendations, Recommendation{Time: in.Now, Replicas: rec.raw}, recommendationSpan(spec))
		st.Memo = Memo{Decided: obs.Time, Raw: rec.raw, Wanted: rec.wanted, Reason: rec.why}
	}

	d := Decision{Recommendation: rec.raw, State: st, Wanted: rec.wanted, Partial: obs.Partial, Stuck: stuck}
	d.Limited = limited(spec, sized, cur, rec.wanted, hi)
	d.Replicas, d.Reason = choose(in, spec, st, rec, sized, lo, hi)
	d.Changed = d.Replicas != cur
	if d.Changed {
		d.State.Scale.LastScaleTime = in.Now
		d.State.Scale.JoiningSince, d.State.Scale.JoiningTo = time.Time{}, 0
		if d.Replicas > cur {
			d.State.Scale.JoiningSince, d.State.Scale.JoiningTo = in.Now, d.Replicas
		}
	}
	return d
}

// recommendation is the raw recommendation of one observation.
type recommendation struct {
	// raw is the replicas recommended, after the partition cap.
	raw int32
	// wanted is raw before the partition cap: what the lag asks for.
	wanted int32
	// need is the fewest replicas the plan predicts keep the time lag
	// under the target; raw may keep more, where removing them does not
	// pay.
	need int32
	// why is the reason text.
	why string
}

// wake makes a consumer at zero start when records arrive on a partition
// without a committed offset: with the reset policy latest, lag cannot
// show them.
func wake(rec recommendation, obs Observation, cur int32) recommendation {
	if cur != 0 || rec.raw != 0 {
		return rec
	}
	if p := producingUncommitted(obs); p != "" {
		rec.raw = 1
		rec.why = fmt.Sprintf("records produced on %s, which has no committed offset -> 1 replica", p)
	}
	return rec
}

// leaveOutStuck returns the observation with its stuck partitions sized as
// if they had no lag and no inflow (more replicas cannot move them), their
// names, and the history with that observation last. Not while a scale
// change settles: its pods start and the group rebalances, so every
// partition may stand still for a while without being stuck, and leaving
// them out then would stop the scale-up the backlog asks for.
func leaveOutStuck(in Input, spec Spec, obs Observation) (Observation, []string, []Observation) {
	last := in.State.Scale.LastScaleTime
	if !last.IsZero() && in.Now.Sub(last) < 2*spec.MinScaleInterval {
		return obs, nil, in.History
	}
	sized, stuck := withoutStuck(obs)
	if len(stuck) == 0 {
		return obs, nil, in.History
	}
	history := append(slices.Clone(in.History[:len(in.History)-1]), sized)
	return sized, stuck, history
}

// withoutStuck returns o with its stuck partitions' lag, time lag and rates
// set to zero and the totals summed again, and the names of those
// partitions.
func withoutStuck(o Observation) (Observation, []string) {
	var stuck []string
	for _, p := range o.Partitions {
		if p.Stuck {
			stuck = append(stuck, p.Name)
		}
	}
	if len(stuck) == 0 {
		return o, nil
	}
	o.Partitions = slices.Clone(o.Partitions)
	o.TotalLag, o.TimeLagSeconds, o.ProductionRate, o.ConsumptionRate = 0, 0, 0, 0
	for i := range o.Partitions {
		p := &o.Partitions[i]
		if p.Stuck {
			p.Lag, p.TimeLagSeconds, p.ProductionRate, p.ConsumptionRate = 0, 0, 0, 0
		}
		o.TotalLag += p.Lag
		o.TimeLagSeconds = max(o.TimeLagSeconds, p.TimeLagSeconds)
		o.ProductionRate += p.ProductionRate
		o.ConsumptionRate += p.ConsumptionRate
	}
	return o, stuck
}

// producingUncommitted names a partition without a usable committed offset
// that records are being produced to, "" when there is none.
func producingUncommitted(o Observation) string {
	for _, p := range o.Partitions {
		if p.Uncommitted && p.ProductionRate > 0 {
			return p.Name
		}
	}
	return ""
}

// withDefaults fills the zero fields that have a default.
func withDefaults(s Spec) Spec {
	if s.Policy == "" {
		s.Policy = PolicyTimeLag
	}
	if s.Policy == PolicyTimeLag && s.MaxLagSeconds <= 0 {
		s.MaxLagSeconds = DefaultMaxLagSeconds
	}
	if s.LagThreshold <= 0 {
		s.LagThreshold = DefaultLagThreshold
	}
	if s.MinScaleInterval <= 0 {
		s.MinScaleInterval = DefaultMinScaleInterval
	}
	s.MinReplicas = max(s.MinReplicas, 0)
	s.ScaleDownStabilization = max(s.ScaleDownStabilization, 0)
	return s
}
