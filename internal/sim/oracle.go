package sim

import (
	"slices"
)

// oracle knows every second's inflow and capacity and runs exactly the
// replicas that second needs, paying no start-up and no rebalance: a lower
// bound on replica-seconds. With partitions set, it is limited to what a
// consumer group can do: partitions are whole, so the fewest replicas r for
// which the consumer owning the ceil(P/r) hottest partitions keeps up with
// their inflow. Without it, ceil(inflow / capacity), as if records could be
// spread over replicas at will.
func oracle(cfg Config, w Workload, rates [][]float64, partitions bool) Metrics {
	var m Metrics
	prev := -1
	sorted := make([]float64, w.Partitions)
	for s := range w.Duration {
		c := cfg.Capacity * w.capacityFactor(s)
		var n int
		if partitions {
			n = partitionReplicas(rates[s], c, sorted)
		} else {
			in := 0.0
			for _, r := range rates[s] {
				in += r
			}
			n = ceilReplicas(in, c)
		}
		m.ReplicaSeconds += int64(n)
		if prev >= 0 && n != prev {
			m.ScaleEvents++
		}
		prev = n
	}
	m.SLOAttainment = 1
	return m
}

// partitionReplicas is the fewest replicas for which every consumer keeps
// up whatever ceil(P/r) partitions it owns: the largest k such that the k
// hottest partitions fit in one replica's capacity, and ceil(P/k) replicas.
// When even the hottest alone does not fit, every partition gets its own
// replica. buf is working space of len(rates).
func partitionReplicas(rates []float64, capacity float64, buf []float64) int {
	P := len(rates)
	if P == 0 {
		return 0
	}
	copy(buf, rates)
	slices.Sort(buf)
	slices.Reverse(buf)
	k, sum := 0, 0.0
	for k < P && sum+buf[k] <= capacity*(1+1e-9) {
		sum += buf[k]
		k++
	}
	if k == 0 {
		return P
	}
	return (P + k - 1) / k
}
