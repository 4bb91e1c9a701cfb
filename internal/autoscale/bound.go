package autoscale

import (
	"fmt"
	"math"
)

// bounds returns the replica range [lo, hi]. Without maxReplicas the
// partition count is the most a group can use. On partial data the count
// cannot be read whole: a scale-up is then bounded by the count last seen
// complete (complete) or, for a group never seen complete, by the
// partitions that can be read, while the cur replicas that run are kept,
// since the part of the group that cannot be seen may need them. Some
// bound always holds, and a topic that cannot be read never lifts it. Only
// without any partition count (no data at all, when Decide holds anyway)
// or for a share group, whose maxReplicas the API requires, is there no
// upper bound. minReplicas wins over everything: it is an explicit
// request.
func bounds(s Spec, o Observation, complete int, cur int32) (lo, hi int32) {
	lo, hi = s.MinReplicas, int32(math.MaxInt32)
	switch {
	case s.MaxReplicas != nil:
		hi = *s.MaxReplicas
	case s.Share || o.Missing:
	case o.Partial:
		if complete <= 0 {
			complete = o.PartitionCount
		}
		hi = max(int32(max(complete, 1)), cur)
	case o.PartitionCount > 0:
		hi = int32(o.PartitionCount)
	}
	return lo, max(hi, lo)
}

// completePartitions is the partition count last seen on complete data:
// o's when it is complete, else last.
func completePartitions(last int, o Observation) int {
	if o.Partial || o.Missing || o.Stale || o.PartitionCount <= 0 {
		return last
	}
	return o.PartitionCount
}

// capPartitions caps a recommendation at the partition count: a consumer
// group cannot use more members than partitions, except a share group or
// with allowIdleConsumers. On partial data the bound of bounds applies
// instead.
func capPartitions(rec recommendation, spec Spec, obs Observation) recommendation {
	rec.wanted = rec.raw
	if !spec.AllowIdleConsumers && !spec.Share && obs.PartitionCount > 0 && !obs.Partial && rec.raw > int32(obs.PartitionCount) {
		rec.raw = int32(obs.PartitionCount)
		rec.why += fmt.Sprintf(", capped at %d partitions", obs.PartitionCount)
	}
	if obs.Partial {
		rec.why += "; lag data partial: not scaling down"
	}
	return rec
}

// limited reports which bound keeps the group from following the lag: the
// lag asks for at least the bound (wanted), the group runs at it (cur), and
// the target is still missed.
func limited(spec Spec, o Observation, cur, wanted, hi int32) Limit {
	room, limit := hi, LimitMaxReplicas
	if !spec.AllowIdleConsumers && !spec.Share && o.PartitionCount > 0 && !o.Partial && int32(o.PartitionCount) <= room {
		room, limit = int32(o.PartitionCount), LimitPartitionCount
	}
	if wanted < room || cur < room {
		return ""
	}
	missed := o.TimeLagSeconds > spec.MaxLagSeconds
	if spec.Policy == PolicyLagThreshold {
		missed = o.TotalLag > spec.LagThreshold*int64(room)
	}
	if !missed {
		return ""
	}
	return limit
}

func clamp(v, lo, hi int32) int32 { return min(max(v, lo), hi) }

// replicaCount converts a whole number of replicas to int32, saturating: a
// backlog of billions of records over a tiny capacity must not wrap around
// to a negative count before the bounds apply.
func replicaCount(f float64) int32 {
	if f >= math.MaxInt32 {
		return math.MaxInt32
	}
	return int32(max(f, 0))
}
