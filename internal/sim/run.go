package sim

import (
	"math"
)

// tunedDivisors are the fractions of capacity x SLO that keda-hpa-tuned
// tries as lagThreshold, from the default down to 1/32.
var tunedDivisors = []int64{1, 2, 4, 8, 16, 32}

// Result holds every policy's metrics for one workload.
type Result struct {
	// Workload is the input.
	Workload Workload
	// Config is the configuration after defaults.
	Config Config
	// Metrics maps a policy name to its metrics; keda-hpa-tuned maps to
	// nil when no lagThreshold reaches 0.99 attainment.
	Metrics map[string]*Metrics
	// Series maps a simulated policy name to its per-second trace (the
	// oracle has none).
	Series map[string]Series
}

// Run simulates every policy on w.
func Run(cfg Config, w Workload) Result {
	cfg = cfg.withDefaults()
	rates := w.rates()
	initial := cfg.InitialReplicas
	if initial <= 0 && w.Duration > 0 {
		in := 0.0
		for _, r := range rates[0] {
			in += r
		}
		initial = max(1, ceilReplicas(in, cfg.Capacity*w.capacityFactor(0)))
	}
	res := Result{Workload: w, Config: cfg, Metrics: map[string]*Metrics{}, Series: map[string]Series{}}

	m, s := run(cfg, w, rates, newLagscale(cfg), initial)
	res.Metrics[PolicyLagscale], res.Series[PolicyLagscale] = &m, s

	base := cfg.KEDALagThreshold
	if base <= 0 {
		base = max(1, int64(math.Round(cfg.Capacity*cfg.SLO)))
	}
	keda := func(threshold int64) (Metrics, Series) {
		m, s := run(cfg, w, rates, &kedaPolicy{threshold: threshold, maxR: w.Partitions}, initial)
		m.LagThreshold = threshold
		return m, s
	}
	km, ks := keda(base)
	res.Metrics[PolicyKEDA], res.Series[PolicyKEDA] = &km, ks

	// The tuned baseline searches from the capacity x SLO threshold, not
	// from --keda-lag-threshold: it is what a user tuning for the SLO
	// would end up with.
	tunedBase := max(1, int64(math.Round(cfg.Capacity*cfg.SLO)))
	var best *Metrics
	var bestSeries Series
	for _, d := range tunedDivisors {
		th := max(1, tunedBase/d)
		m, s := keda(th)
		if m.SLOAttainment >= 0.99 && (best == nil || m.ReplicaSeconds < best.ReplicaSeconds) {
			best, bestSeries = &m, s
		}
	}
	res.Metrics[PolicyKEDATuned] = best
	if best != nil {
		res.Series[PolicyKEDATuned] = bestSeries
	}

	om := oracle(cfg, w, rates)
	res.Metrics[PolicyOracle] = &om
	return res
}
