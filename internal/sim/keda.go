package sim

import (
	"cmp"
	"math"
	"slices"
)

// Defaults of KEDA and the Kubernetes HPA that the keda-hpa baseline runs
// with, and that the grid of keda-best varies.
const (
	// kedaPollingInterval is KEDA's default pollingInterval, in seconds:
	// how often the operator runs the scaler for activation and, with
	// useCachedMetrics, for the value the metrics adapter serves.
	kedaPollingInterval = 30
	// kedaCooldownPeriod is KEDA's default cooldownPeriod, in seconds: how
	// long a ScaledObject stays inactive before it scales to zero.
	kedaCooldownPeriod = 300
	// hpaSyncSeconds is kube-controller-manager's
	// --horizontal-pod-autoscaler-sync-period.
	hpaSyncSeconds = 15
	// hpaTolerance is the HPA's default tolerance: ratios within 10% of 1
	// change nothing.
	hpaTolerance = 0.1
	// hpaDownWindow is the HPA's default scale-down stabilization window,
	// in seconds.
	hpaDownWindow = 300
	// hpaUpPods and hpaUpPercent are the HPA's default scale-up policies,
	// both per 15 s, the larger of the two applying (selectPolicy Max).
	hpaUpPods    = 4
	hpaUpPercent = 100
)

// KEDAConfig is one configuration of KEDA's Kafka scaler behind a
// Kubernetes HPA: the knobs a user tuning a ScaledObject for a lag
// objective would turn.
type KEDAConfig struct {
	// LagThreshold is the scaler's lagThreshold: the HPA's AverageValue
	// target, records of lag per replica.
	LagThreshold int64 `json:"lag_threshold"`
	// ActivationLagThreshold is the scaler's activationLagThreshold: at
	// zero replicas, KEDA wakes the Deployment when the lag exceeds it.
	ActivationLagThreshold int64 `json:"activation_lag_threshold"`
	// MetricCacheSeconds is 0 when the metrics adapter runs the scaler
	// afresh at every HPA sync (KEDA's default); otherwise the ScaledObject
	// sets useCachedMetrics and this pollingInterval, and the HPA reads a
	// value up to that old.
	MetricCacheSeconds int `json:"metric_cache_seconds"`
	// ScaleDownStabilizationSeconds is the HPA behavior's
	// scaleDown.stabilizationWindowSeconds.
	ScaleDownStabilizationSeconds int `json:"scale_down_stabilization_seconds"`
	// Tolerance is the HPA's tolerance, per HPA since Kubernetes 1.33
	// (KEP-4951), the same for both directions here.
	Tolerance float64 `json:"tolerance"`
	// MinReplicas is the ScaledObject's minReplicaCount; 0 lets KEDA scale
	// to zero after cooldownPeriod without activation.
	MinReplicas int `json:"min_replicas"`
	// MaxReplicas is maxReplicaCount, the HPA's maxReplicas.
	MaxReplicas int `json:"max_replicas"`
	// ScaleUpPods and ScaleUpPercent are the HPA behavior's
	// scaleUp.policies: at most this many pods, or this percent of the
	// current replicas, more per 15 s, the larger applying (selectPolicy
	// Max). The HPA's defaults are 4 pods and 100%; zero means the default.
	ScaleUpPods    int `json:"scale_up_pods"`
	ScaleUpPercent int `json:"scale_up_percent"`
}

// DefaultKEDA is a ScaledObject that sets only lagThreshold, minimum and
// maximum replicas, every other field at KEDA's and the HPA's defaults.
func DefaultKEDA(lagThreshold int64, minReplicas, maxReplicas int) KEDAConfig {
	return KEDAConfig{
		LagThreshold:                  max(1, lagThreshold),
		ScaleDownStabilizationSeconds: hpaDownWindow,
		Tolerance:                     hpaTolerance,
		MinReplicas:                   minReplicas,
		MaxReplicas:                   maxReplicas,
		ScaleUpPods:                   hpaUpPods,
		ScaleUpPercent:                hpaUpPercent,
	}
}

// Grid values of keda-best: the lagThreshold as a fraction of capacity x
// SLO (the records one replica drains in the SLO), the metric's age, the
// scale-down stabilization window, the tolerance and the scale-up
// policies (pods and percent per 15 s), the first knob a KEDA user turns
// for bursts.
var (
	gridUpPods       = []int{hpaUpPods, 100}
	gridUpPercents   = []int{hpaUpPercent, 900}
	gridThresholds   = [][2]int64{{1, 1}, {3, 4}, {1, 2}, {3, 8}, {1, 4}, {1, 8}, {1, 16}, {1, 32}}
	gridMetricCache  = []int{0, kedaPollingInterval}
	gridDownWindows  = []int{0, 60, 120, 300}
	gridTolerances   = []float64{0.1, 0.05, 0}
	attainmentTarget = 0.99
)

// KEDAGrid returns every configuration keda-best searches for a replica
// capacity (records/s) and an SLO (seconds), in a fixed order.
func KEDAGrid(capacity, slo float64, minReplicas, maxReplicas int) []KEDAConfig {
	base := capacity * slo
	var out []KEDAConfig
	for _, f := range gridThresholds {
		th := max(1, int64(math.Round(base*float64(f[0])/float64(f[1]))))
		for _, cache := range gridMetricCache {
			for _, win := range gridDownWindows {
				for _, tol := range gridTolerances {
					for _, pods := range gridUpPods {
						for _, pct := range gridUpPercents {
							c := DefaultKEDA(th, minReplicas, maxReplicas)
							c.MetricCacheSeconds, c.ScaleDownStabilizationSeconds, c.Tolerance = cache, win, tol
							c.ScaleUpPods, c.ScaleUpPercent = pods, pct
							out = append(out, c)
						}
					}
				}
			}
		}
	}
	return out
}

// kedaPolicy is KEDA's Kafka scaler behind a Kubernetes HPA.
//
// The scaler's metric is the group's total lag, capped at lagThreshold per
// partition (KEDA does not scale beyond the partition count unless
// allowIdleConsumers is set). Every 15 s the HPA reads it, afresh or from
// KEDA's cache, and with the AverageValue target lagThreshold computes
// ceil(lag / lagThreshold) unless lag / (lagThreshold x replicas) is within
// the tolerance of 1. It stabilizes scale-down to the highest
// recommendation within the window, limits scale-up to the larger of the
// scale-up policies (4 pods and 100% per 15 s by default), and clamps to [minReplicas, maxReplicas]. At zero
// replicas the HPA does nothing; KEDA itself wakes the Deployment when the
// lag exceeds activationLagThreshold and, with minReplicaCount 0, puts it
// to sleep after cooldownPeriod without activation.
type kedaPolicy struct {
	c          KEDAConfig
	cached     int64
	haveCache  bool
	lastActive int
	recs       []point // HPA recommendations, v = replicas, t = second
}

func newKEDA(c KEDAConfig) *kedaPolicy { return &kedaPolicy{c: c} }

// metric is what the scaler reports at the end of second s.
func (k *kedaPolicy) metric(g *group) int64 {
	var lag int64
	for i := range g.parts {
		lag += g.parts[i].end - g.parts[i].committed
	}
	// KEDA caps the total at partitions x lagThreshold once the quotient
	// exceeds the partition count.
	if P := int64(len(g.parts)); lag/k.c.LagThreshold > P {
		lag = P * k.c.LagThreshold
	}
	return lag
}

func (k *kedaPolicy) step(g *group, s int) int {
	cur := len(g.pods)
	poll := kedaPollingInterval
	if k.c.MetricCacheSeconds > 0 {
		poll = k.c.MetricCacheSeconds
	}
	if s%poll == 0 {
		// KEDA's own loop: activation, and the cached value.
		m := k.metric(g)
		k.cached, k.haveCache = m, true
		active := m > k.c.ActivationLagThreshold
		if active {
			k.lastActive = s
		}
		switch {
		case cur == 0 && active:
			return max(1, k.c.MinReplicas)
		case cur > 0 && k.c.MinReplicas == 0 && !active && s-k.lastActive >= kedaCooldownPeriod:
			return 0
		}
	}
	if s%hpaSyncSeconds != 0 || cur == 0 {
		return cur
	}
	m := k.cached
	if k.c.MetricCacheSeconds == 0 {
		m = k.metric(g)
	} else if !k.haveCache {
		return cur
	}
	th := float64(k.c.LagThreshold)
	rec := cur
	if ratio := float64(m) / (th * float64(cur)); ratio > 1+k.c.Tolerance || ratio < 1-k.c.Tolerance {
		rec = int(math.Ceil(float64(m) / th))
	}

	// Stabilization: the scale-up window is 0, so up is rec itself; down
	// is the highest recommendation made strictly within the window.
	cutoff := s - k.c.ScaleDownStabilizationSeconds
	down := rec
	for _, r := range k.recs {
		if r.t > cutoff {
			down = max(down, int(r.v))
		}
	}
	want := max(cur, rec)
	want = min(want, down)
	k.recs = slices.DeleteFunc(k.recs, func(r point) bool { return r.t <= cutoff })
	k.recs = append(k.recs, point{s, int64(rec)})

	// Rate limits. The policies' period equals the sync period, so the
	// previous sync's change is outside it and the period starts at cur.
	if want > cur {
		// Zero is a policy the ScaledObject leaves out: the HPA's default.
		pods, pct := cmp.Or(k.c.ScaleUpPods, hpaUpPods), cmp.Or(k.c.ScaleUpPercent, hpaUpPercent)
		up := max(cur+pods, int(math.Ceil(float64(cur)*(1+float64(pct)/100.0))))
		want = min(want, up)
	}
	// The default scale-down policy, 100% per 15 s, limits nothing.
	lo := max(1, k.c.MinReplicas)
	return min(max(want, lo), max(k.c.MaxReplicas, lo))
}

// frontier returns the Pareto frontier of points over replica-seconds and
// scale events: the points no other point matches or beats on both with
// one strictly better. Of equal points the first is kept.
func frontier(points []KEDAPoint) []KEDAPoint {
	sorted := slices.Clone(points)
	slices.SortStableFunc(sorted, func(a, b KEDAPoint) int {
		return cmp.Or(cmp.Compare(a.ReplicaSeconds, b.ReplicaSeconds), cmp.Compare(a.ScaleEvents, b.ScaleEvents))
	})
	var out []KEDAPoint
	for _, p := range sorted {
		if len(out) == 0 || p.ScaleEvents < out[len(out)-1].ScaleEvents {
			out = append(out, p)
		}
	}
	return out
}

// KEDAPoint is one KEDA configuration and what it achieved.
type KEDAPoint struct {
	Metrics
	// Parameters is the configuration.
	Parameters KEDAConfig `json:"parameters"`
}

// Dominates reports whether p is at least as good as m on replica-seconds
// and scale events and strictly better on one.
func (p KEDAPoint) Dominates(m Metrics) bool {
	return p.ReplicaSeconds <= m.ReplicaSeconds && p.ScaleEvents <= m.ScaleEvents &&
		(p.ReplicaSeconds < m.ReplicaSeconds || p.ScaleEvents < m.ScaleEvents)
}
