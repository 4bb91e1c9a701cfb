package autoscale

import (
	"math"
	"time"
)

// learn is the second stage: it advances the model of the group from a new
// observation obs. sized is obs with stuck partitions left out, history
// the observations with sized last.
func learn(in Input, spec Spec, st State, obs, sized Observation, history []Observation) State {
	m := st.Model
	m = learnRebalancePause(m, obs)
	m, st.Scale = learnScaleUpDelay(m, st.Scale, obs)
	m = learnCapacity(m, history, spec.ThroughputPerReplica, spec.Share, obs.Partial)
	m = learnLevel(m, history)
	st.Model = m
	if spec.Policy == PolicyTimeLag && spec.BurstMemory > 0 && len(history) > 1 {
		// Not from a first observation: its rates are not measured yet.
		st.Pattern = learnPattern(st.Pattern, in.Now, m.Level, spec.BurstMemory)
	} else if spec.BurstMemory <= 0 {
		st.Pattern = Pattern{}
	}
	return st
}

// learnRebalancePause ends a rebalance being measured once o shows the
// group stable again, and takes the time from its first rebalancing
// observation as a sample. The lag engine sees a rebalance only at its
// polls, so a sample is the pause to within one poll interval, and a
// pause shorter than a poll is not seen at all; until one is, the plan
// assumes one poll interval (rebalancePause).
func learnRebalancePause(m Model, o Observation) Model {
	if m.RebalancingSince.IsZero() || o.Rebalancing() || o.Stale || o.Missing {
		return m
	}
	took := o.Time.Sub(m.RebalancingSince)
	m.RebalancingSince = time.Time{}
	if took <= 0 || took > maxRebalancePause {
		return m
	}
	if m.RebalancePause <= 0 {
		m.RebalancePause = took
	} else {
		m.RebalancePause += time.Duration(sampleWeight * float64(took-m.RebalancePause))
	}
	return m
}

// learnScaleUpDelay ends the pending scale-up once o shows the group with
// all its replicas as members and no rebalance, and takes the time it took
// as a scale-up delay sample.
func learnScaleUpDelay(m Model, sc ScaleRecord, o Observation) (Model, ScaleRecord) {
	if sc.JoiningSince.IsZero() || o.Stale || o.Missing {
		return m, sc
	}
	took := o.Time.Sub(sc.JoiningSince)
	if took > maxScaleUpDelay {
		sc.JoiningSince, sc.JoiningTo = time.Time{}, 0
		return m, sc
	}
	if o.Members < int(sc.JoiningTo) || o.Rebalancing() || took <= 0 {
		return m, sc
	}
	if m.ScaleUpDelay <= 0 {
		m.ScaleUpDelay = took
	} else {
		m.ScaleUpDelay += time.Duration(sampleWeight * float64(took-m.ScaleUpDelay))
	}
	sc.JoiningSince, sc.JoiningTo = time.Time{}, 0
	return m, sc
}

// learnCapacity advances the per-replica capacity estimate.
//
// A consumer that keeps up consumes exactly its inflow, whatever its
// capacity: a starved consumer is not a slow one. Only a saturated group,
// one whose every partition has a real backlog, consumes at its capacity,
// so only then is the consumption rate over the members that own
// partitions a capacity sample, and only when that state has lasted
// learnWindow, and the lag engine's rate window, with constant membership
// and no rebalance. Otherwise what
// the group consumes is a lower bound: the rate per owning member, and the
// rate of the fastest partition, which one member consumes alone. A lower
// bound may raise the estimate, never lower it.
//
// In a share group every member works on every partition, so the rate is
// over all members, and the group is saturated when it has a real backlog
// in total. On partial data (partial) the members also consume what cannot
// be read, so even a saturated sample is only a lower bound.
func learnCapacity(m Model, history []Observation, prior float64, share, partial bool) Model {
	if m.Capacity <= 0 && prior > 0 {
		m.Capacity = prior
	}
	o := history[len(history)-1]
	if o.Members <= 0 || o.ConsumptionRate <= 0 || o.Stale || o.Missing {
		return m
	}
	owners := o.Members
	if o.PartitionCount > 0 && !share {
		owners = min(owners, o.PartitionCount)
	}
	sample := o.ConsumptionRate / float64(owners)
	// The lag engine's rates are slopes over RateWindowPolls polls: a
	// sample is the capacity only once that whole window was saturated.
	span := max(learnWindow, RateWindowPolls*pollInterval(history))
	if !steadyAndSaturated(history, o.Time.Add(-span), o.Members, share) || partial {
		if !share {
			for _, p := range o.Partitions {
				sample = max(sample, p.ConsumptionRate)
			}
		}
		if prior > m.Capacity && m.Capacity > 0 && len(history) > 1 {
			dt := o.Time.Sub(history[len(history)-2].Time)
			m.Capacity += (prior - m.Capacity) * min(1, float64(dt)/float64(capacityMemory))
		}
		switch {
		case m.Capacity <= 0:
			m.Capacity = sample
		case sample > m.Capacity:
			m.Capacity += learnWeight * (sample - m.Capacity)
		}
		return m
	}
	switch {
	case m.Capacity <= 0:
		m.Capacity = sample
	case sample < m.Capacity:
		m.Capacity += learnDownWeight * (sample - m.Capacity)
	default:
		m.Capacity += learnWeight * (sample - m.Capacity)
	}
	m.Saturated = true
	return m
}

// steadyAndSaturated reports whether every observation since start (and
// one at or before it, so the span is covered) shows a stable group of
// the given size with a backlog on every partition.
func steadyAndSaturated(history []Observation, start time.Time, members int, share bool) bool {
	for i := len(history) - 1; i >= 0; i-- {
		o := history[i]
		if o.Stale || o.Missing || o.Rebalancing() || o.Members != members || !saturated(o, share) {
			return false
		}
		if !o.Time.After(start) {
			return true
		}
	}
	return false
}

// saturated reports whether every partition has a real backlog; for a
// share group, or without per-partition data, whether the group has one.
func saturated(o Observation, share bool) bool {
	if len(o.Partitions) == 0 || share {
		return o.TotalLag > 0 && o.TimeLagSeconds >= saturatedTimeLag
	}
	for _, p := range o.Partitions {
		if p.Lag <= 0 || p.TimeLagSeconds < saturatedTimeLag {
			return false
		}
	}
	return true
}

// learnLevel advances the smoothed inflow level with the newest inflow
// estimate (inflowNow).
func learnLevel(m Model, history []Observation) Model {
	if len(history) < 2 {
		// The lag engine's first snapshot has no rates yet: a level
		// started from its zeros would take minutes to reach the inflow,
		// and the pattern would take the ramp for a burst.
		return m
	}
	o := history[len(history)-1]
	now := sum(inflowNow(history, true))
	if len(o.Partitions) == 0 {
		now = o.ProductionRate
	}
	if m.LevelAt.IsZero() || !o.Time.After(m.LevelAt) {
		m.Level, m.LevelAt = now, o.Time
		return m
	}
	w := 1 - math.Exp2(-float64(o.Time.Sub(m.LevelAt))/float64(levelHalfLife))
	m.Level += w * (now - m.Level)
	m.LevelAt = o.Time
	return m
}

// inflowNow estimates each partition's inflow now. The lag engine's
// production rate is smoothed over several polls, so right after a burst
// starts it is still far below the new rate; the lag's growth since the
// previous observation plus the consumption rate shows the burst at once.
// The larger of the two is used, and the estimate from growth only when
// the group was stable and of one size over the span the rates are
// smoothed over (a rebalance pause also makes the lag grow, without any
// new inflow).
func inflowNow(history []Observation, growth bool) []float64 {
	o := history[len(history)-1]
	out := make([]float64, len(o.Partitions))
	for i, p := range o.Partitions {
		out[i] = p.ProductionRate
	}
	if len(history) < 2 || !growth {
		return out
	}
	prev := history[len(history)-2]
	dt := o.Time.Sub(prev.Time).Seconds()
	if dt <= 0 || len(prev.Partitions) != len(o.Partitions) {
		return out
	}
	start := o.Time.Add(-learnWindow)
	for i := len(history) - 1; i >= 0 && !history[i].Time.Before(start); i-- {
		h := history[i]
		if h.Stale || h.Missing || h.Rebalancing() || h.Members != o.Members || len(h.Partitions) != len(o.Partitions) {
			return out
		}
	}
	for i, p := range o.Partitions {
		grew := float64(p.Lag-prev.Partitions[i].Lag) / dt
		// Only growth beyond noise counts: a fifth of the inflow.
		if grew > 0.2*p.ProductionRate {
			out[i] = max(out[i], grew+p.ConsumptionRate)
		}
	}
	return out
}

func sum(vs []float64) float64 {
	t := 0.0
	for _, v := range vs {
		t += v
	}
	return t
}

// PartitionsSince is the time before which Decide reads no per-partition
// data of history but that of the one observation just before it: the
// learning span and the lag engine's rate window back from the newest
// observation, and two polls more. A caller that keeps a long history may
// drop the partitions of older observations; their totals stay in use.
func PartitionsSince(history []Observation) time.Time {
	n := len(history)
	if n == 0 {
		return time.Time{}
	}
	poll := pollInterval(history)
	return history[n-1].Time.Add(-max(learnWindow, RateWindowPolls*poll) - 2*poll)
}
