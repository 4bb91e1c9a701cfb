package autoscale

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// timeLag is the TimeLag policy's raw recommendation.
//
// Each partition must be consumed at its inflow, planned at
// targetUtilization of a replica, plus, once the time lag has reached
// backlogFraction of the target, enough to drain its backlog before the
// oldest record reaches the target. Cooperative assignors balance partition
// counts, not load, so with P partitions over r consumers some consumer may
// own the ceil(P/r) most demanding partitions. The answer is the smallest r
// for which that consumer keeps up; because the bound only changes where
// ceil(P/r) does, the answer is always such a point, the fewest replicas
// that give each consumer at most k partitions. The total demand is covered
// too, since the k hottest partitions carry at least k/P of it.
func timeLag(spec Spec, history []Observation, cur int32, capacity float64, delay time.Duration) (int32, string) {
	o := history[len(history)-1]
	target := spec.MaxLagSeconds
	inflow := recentInflow(history)
	total := 0.0
	for _, r := range inflow {
		total += r
	}
	if len(inflow) == 0 {
		total = o.ProductionRate
	}
	measured := fmt.Sprintf("time lag %s %s %s target; inflow %s/s", secs(o.TimeLagSeconds), relation(o.TimeLagSeconds, target), secs(target), num(total))

	// A consumer at zero wakes only on lag above activationLag, like
	// KEDA's activation; a running one is recommended zero only when there
	// is nothing to do at all (Decide still waits out the window).
	if cur == 0 && o.TotalLag <= spec.ActivationLag {
		return 0, fmt.Sprintf("%s, lag %d <= activation %d -> 0 replicas", measured, o.TotalLag, spec.ActivationLag)
	}
	if o.TotalLag == 0 && total <= 0 {
		return 0, measured + ", no lag -> 0 replicas"
	}
	if capacity <= 0 {
		// Nothing measured and no hint: grow geometrically while the
		// target is missed, otherwise keep what runs. Learning picks up
		// the capacity as soon as the group is saturated.
		switch {
		case cur == 0:
			return 1, measured + ", capacity unknown -> 1 replica"
		case o.TimeLagSeconds > target:
			return cur * 2, fmt.Sprintf("%s, capacity unknown -> %s", measured, replicas(cur*2))
		default:
			return cur, fmt.Sprintf("%s, capacity unknown -> %s", measured, replicas(cur))
		}
	}

	// The backlog counts once the time lag says it is more than the
	// records in flight and the pause of a rebalance; below that the
	// replicas sized for the inflow drain it on their own and reacting
	// would only add a rebalance. Under the target it is to be drained
	// within the target: consuming the inflow plus backlog/drain makes the
	// oldest record's age fall by about age/drain per second, so the time
	// lag already turns down and draining faster would only buy replicas
	// (and a further rebalance while the first ones join). Past the target
	// the time lag must come back fast: the backlog then goes in a quarter
	// of the target.
	// While the inflow alone needs more replicas than run, the backlog
	// grows until pods added now consume, a scale-up delay from now: the
	// group is sized for the backlog and time lag it will have then.
	// Sized for those of now, it would need a second scale-up once the
	// first pods joined, with a second rebalance.
	projected := o.TimeLagSeconds
	if f, ok := forecast(o, inflow, cur, delay); ok && size(o, inflow, 0, capacity, targetUtilization, spec.Share).n > cur {
		o = f
		projected = max(backlogFraction*target, f.TimeLagSeconds)
		measured += fmt.Sprintf(", backlog growing for a %s scale-up delay", secs(delay.Seconds()))
	}
	drain := 0.0
	switch {
	case o.TimeLagSeconds >= target:
		drain = target / 4
	case o.Members > 0 && int32(o.Members) < cur:
		// Pods of the last scale-up have not joined yet. Once they do,
		// the group consumes more than the inflow, and the oldest
		// record's age falls from then on whatever the backlog: sizing
		// for the backlog that built up while they start would only add
		// pods that join later, each with its own rebalance.
	case projected >= backlogFraction*target:
		drain = target
	}
	if drain > 0 {
		measured += fmt.Sprintf(", backlog %d to drain in %s", o.TotalLag, secs(drain))
	}
	s := size(o, inflow, drain, capacity, targetUtilization, spec.Share)
	return s.n, measured + s.reason
}

// forecast returns o as it will be after delay if the group keeps
// consuming each partition at its present rate: every partition's lag
// grown by what its inflow exceeds that rate by, and the time lag grown by
// the share of the inflow not consumed. ok is false when nothing grows or
// the group is not all in (pods of the last scale-up still joining, whose
// consumption is coming).
func forecast(o Observation, inflow []float64, cur int32, delay time.Duration) (Observation, bool) {
	if delay <= 0 || cur <= 0 || o.Members <= 0 || int32(o.Members) < cur || len(o.Partitions) != len(inflow) {
		return o, false
	}
	f := o
	f.Partitions = slices.Clone(o.Partitions)
	f.TotalLag = 0
	d := delay.Seconds()
	grows, total := 0.0, 0.0
	for i := range f.Partitions {
		p := &f.Partitions[i]
		g := max(0, inflow[i]-p.ConsumptionRate)
		grows += g
		total += inflow[i]
		p.Lag += int64(math.Round(g * d))
		f.TotalLag += p.Lag
	}
	if grows <= 0 {
		return o, false
	}
	f.TimeLagSeconds += d * grows / total
	return f, true
}

// hotUtilization is the share of a replica that the consumer owning the
// ceil(P/r) hottest partitions may plan to use. targetUtilization's
// headroom is for the group as a whole (capacity noise, inflow between
// polls) and still bounds the total; applied to that one consumer too, it
// made a partition carrying 0.8 of a replica decide alone: in the
// simulator's hot-partition scenario it asked for one replica per
// partition (24) where 8 keep up.
const hotUtilization = 0.95

// sizing is one answer of size.
type sizing struct {
	n      int32
	reason string
}

// size returns the fewest replicas for which the consumer that owns the
// ceil(P/r) most demanding partitions keeps up at hotUtilization and the
// group as a whole at utilization util. In a share group no member owns a
// partition: every member takes records of every partition, so the total
// demand over the capacity is the answer, however it is spread over the
// partitions.
func size(o Observation, inflow []float64, drain, capacity, util float64, share bool) sizing {
	demand := partitionDemand(o, inflow, drain, util)
	P := len(demand)
	if share && P > 0 {
		total := 0.0
		for _, d := range demand {
			total += d
		}
		n := replicaCount(max(1, math.Ceil(total/capacity)))
		return sizing{n, fmt.Sprintf(", capacity %s/s per member at %.0f%% utilization, shared over %d partitions -> %s", num(capacity), util*100, P, replicas(n))}
	}
	if P == 0 {
		need := o.ProductionRate / util
		if drain > 0 {
			need += float64(o.TotalLag) / drain
		}
		n := replicaCount(max(1, math.Ceil(need/capacity)))
		return sizing{n, fmt.Sprintf(", capacity %s/s per replica -> %s", num(capacity), replicas(n))}
	}
	sorted := slices.Clone(demand)
	slices.SortFunc(sorted, func(a, b float64) int { return cmp.Compare(b, a) }) // highest first
	// prefix[k] is the demand of the k hottest partitions.
	prefix := make([]float64, P+1)
	for i, d := range sorted {
		prefix[i+1] = prefix[i] + d
	}
	k := 0
	for k < P && prefix[k+1]*util/hotUtilization <= capacity {
		k++
	}
	if k == 0 {
		// One partition needs more than a replica can give: only a faster
		// handler or more partitions help, so give every partition its own
		// consumer.
		n := int32(P)
		return sizing{n, fmt.Sprintf(", capacity %s/s per replica; hottest partition needs %s/s, more than one replica gives -> %s (one per partition)",
			num(capacity), num(sorted[0]), replicas(n))}
	}
	n := int32((P + k - 1) / k)
	n = max(n, replicaCount(math.Ceil(prefix[P]/capacity-1e-9)))
	reason := fmt.Sprintf(", capacity %s/s per replica at %.0f%% utilization -> %s", num(capacity), util*100, replicas(n))
	if avg := replicaCount(math.Ceil(prefix[P] / capacity)); n > avg && k < P {
		// Say so when skew, not volume, sets the count.
		reason = fmt.Sprintf(", capacity %s/s per replica; hottest %d of %d partitions need %s/s at %.0f%% utilization -> at most %d partitions each -> %s",
			num(capacity), k+1, P, num(prefix[k+1]*util/hotUtilization), hotUtilization*100, k, replicas(n))
	}
	return sizing{n, reason}
}

// recentInflow estimates each partition's inflow now. The lag engine's
// production rate is smoothed over several polls, so right after a burst
// starts it is still far below the new rate; the lag's growth since the
// previous observation plus the consumption rate shows the burst at once.
// The larger of the two is used, and the estimate from growth only when
// both observations are of a stable group of the same size (a rebalance
// pause also makes the lag grow, without any new inflow).
func recentInflow(history []Observation) []float64 {
	o := history[len(history)-1]
	out := make([]float64, len(o.Partitions))
	for i, p := range o.Partitions {
		out[i] = p.ProductionRate
	}
	if len(history) < 2 {
		return out
	}
	prev := history[len(history)-2]
	dt := o.Time.Sub(prev.Time).Seconds()
	if dt <= 0 || len(prev.Partitions) != len(o.Partitions) {
		return out
	}
	// The smoothed consumption rate stands for the last interval's only
	// when nothing changed over the span it is smoothed over: right after
	// a rebalance it still carries the fast drain of the pause's backlog.
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

// partitionDemand is each partition's required consumption rate: inflow
// over the target utilization plus, when drain > 0, its backlog over the
// drain time. Without per-partition data the group's numbers are spread
// evenly over the partition count.
func partitionDemand(o Observation, inflow []float64, drain, util float64) []float64 {
	backlog := func(l int64) float64 {
		if drain <= 0 {
			return 0
		}
		return float64(l) / drain
	}
	if len(o.Partitions) > 0 {
		d := make([]float64, len(o.Partitions))
		for i, p := range o.Partitions {
			d[i] = inflow[i]/util + backlog(p.Lag)
		}
		return d
	}
	if o.PartitionCount <= 0 {
		return nil
	}
	each := (o.ProductionRate/util + backlog(o.TotalLag)) / float64(o.PartitionCount)
	d := make([]float64, o.PartitionCount)
	for i := range d {
		d[i] = each
	}
	return d
}

// learnCapacity returns the per-replica capacity estimate after looking at
// the history.
//
// A consumer that keeps up consumes exactly its inflow, whatever its
// capacity: a starved consumer is not a slow one. Only a saturated group,
// one whose every partition has a real backlog, consumes at its capacity,
// so only then is the consumption rate divided by the members that own
// partitions a capacity sample, and only when that state has lasted
// learnWindow with constant membership and no rebalance (the lag engine's
// rates are smoothed over several polls, and a pause inside that span
// would read as slowness). When the group is not saturated the rate is a
// lower bound: it may raise the estimate, never lower it.
//
// In a share group (share) every member works on every partition, so the
// rate is divided by all members, and the group is saturated when it has a
// real backlog in total.
func learnCapacity(history []Observation, learned, prior float64, share bool) float64 {
	est := learned
	if est <= 0 {
		est = prior
	}
	o := history[len(history)-1]
	if o.Members <= 0 || o.ConsumptionRate <= 0 || o.Stale || o.Missing {
		return est
	}
	owners := o.Members
	if o.PartitionCount > 0 && !share {
		owners = min(owners, o.PartitionCount)
	}
	sample := o.ConsumptionRate / float64(owners)
	if !steadyAndSaturated(history, o.Time.Add(-learnWindow), o.Members, share) {
		if prior > est && est > 0 && len(history) > 1 {
			dt := o.Time.Sub(history[len(history)-2].Time)
			est += (prior - est) * min(1, float64(dt)/float64(capacityMemory))
		}
		switch {
		case est <= 0:
			// Observed throughput proves at least this much capacity, a
			// safe (high) replica count until saturation tells more.
			return sample
		case sample > est:
			return est + learnWeight*(sample-est)
		}
		return est
	}
	if est <= 0 {
		return sample
	}
	if sample < est {
		return est + learnDownWeight*(sample-est)
	}
	return est + learnWeight*(sample-est)
}

// steadyAndSaturated reports whether every observation since start (and
// one at or before it, so the span is covered) shows a stable group of
// the given size with a backlog on every partition.
func steadyAndSaturated(history []Observation, start time.Time, members int, share bool) bool {
	covered := false
	for i := len(history) - 1; i >= 0; i-- {
		o := history[i]
		if o.Stale || o.Missing || o.Rebalancing() || o.Members != members || !saturated(o, share) {
			return false
		}
		if !o.Time.After(start) {
			covered = true
			break
		}
	}
	return covered
}

// saturated reports whether every partition has a real backlog; for a
// share group (share), whether the group has one.
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

// relation is how a reason writes a measured value against its target.
func relation(a, b float64) string {
	if a > b {
		return ">"
	}
	return "<="
}

// secs formats seconds for a reason: whole seconds above 10 s, one decimal
// below.
func secs(s float64) string {
	if s >= 10 {
		return strconv.FormatFloat(math.Round(s), 'f', 0, 64) + "s"
	}
	return strconv.FormatFloat(s, 'f', 1, 64) + "s"
}

// num formats a rate without noise digits.
func num(v float64) string {
	if v >= 100 {
		return strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

// rising reports whether the lag began to grow beyond noise within the
// last poll interval: the newest observation shows growth that the one
// before it did not. The growth then spans part of the interval only, so
// the inflow it shows is a fraction of the new rate, which the next poll
// measures whole.
func rising(history []Observation) bool {
	n := len(history)
	return n >= 3 && growing(history) && !growing(history[:n-1])
}

// growing reports whether recentInflow sees any partition of the newest
// observation grow faster than its smoothed production rate says.
func growing(history []Observation) bool {
	in := recentInflow(history)
	for i, p := range history[len(history)-1].Partitions {
		if in[i] > p.ProductionRate {
			return true
		}
	}
	return false
}

// replicaCount converts a whole number of replicas to int32, saturating: a
// backlog of billions of records over a tiny capacity must not wrap around
// to a negative count before the bounds apply.
func replicaCount(f float64) int32 {
	if f >= math.MaxInt32 {
		return math.MaxInt32
	}
	return int32(max(f, 0))
}
