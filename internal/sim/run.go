package sim

import (
	"math"
)

// Result holds every policy's metrics for one workload.
type Result struct {
	// Workload is the input.
	Workload Workload
	// Config is the configuration after defaults.
	Config Config
	// Metrics maps a policy name (Policies) to its metrics; keda-best maps
	// to nil when no configuration of the grid reaches 0.99 attainment.
	Metrics map[string]*Metrics
	// KEDA is keda-hpa's configuration.
	KEDA KEDAConfig
	// KEDABest is keda-best with its configuration, nil when none.
	KEDABest *KEDAPoint
	// KEDAFrontier is the Pareto frontier, over replica-seconds and scale
	// events, of the grid's configurations that reach 0.99 attainment,
	// cheapest first.
	KEDAFrontier []KEDAPoint
	// KEDAConfigs is how many configurations the grid searched.
	KEDAConfigs int
	// KEDABestAttainment is the highest SLO attainment of any grid
	// configuration when none reaches 0.99 (KEDABest is nil), else 0.
	KEDABestAttainment float64
	// Series maps a simulated policy name to its per-second trace (the
	// oracles have none).
	Series map[string]Series
}

// Run simulates every policy on w.
func Run(cfg Config, w Workload) Result {
	cfg = cfg.withDefaults()
	rates := w.rates()
	initial := initialReplicas(cfg, w, rates)
	res := Result{Workload: w, Config: cfg, Metrics: map[string]*Metrics{}, Series: map[string]Series{}}

	m, s, _ := run(cfg, w, rates, newLagscale(cfg), initial, -1)
	res.Metrics[PolicyLagscale], res.Series[PolicyLagscale] = &m, s

	// KEDA runs with lagscale's minReplicas (1) and the partition count as
	// maxReplicaCount, the most a group can use.
	base := cfg.KEDALagThreshold
	if base <= 0 {
		base = max(1, int64(math.Round(cfg.Capacity*cfg.SLO)))
	}
	res.KEDA = DefaultKEDA(base, 1, w.Partitions)
	km, ks, _ := run(cfg, w, rates, newKEDA(res.KEDA), initial, -1)
	res.Metrics[PolicyKEDA], res.Series[PolicyKEDA] = &km, ks

	// The grid searches from capacity x SLO, not from
	// --keda-lag-threshold: it is what a user tuning for the SLO would
	// try. A configuration that has missed the SLO on more than 1% of the
	// run can no longer reach 0.99, and is neither keda-best nor on the
	// frontier, so its run stops there.
	grid := KEDAGrid(cfg.Capacity, cfg.SLO, 1, w.Partitions)
	res.KEDAConfigs = len(grid)
	budget := int(math.Floor((1 - attainmentTarget) * float64(w.Duration) * (1 + 1e-12)))
	var meeting []KEDAPoint
	var bestSeries Series
	for _, c := range grid {
		// A run that an SLO-meeting configuration already matches or beats
		// on replica-seconds and scale events (both only grow) can be
		// neither keda-best nor on the frontier: it stops there, which
		// keeps a grid of 768 configurations affordable without changing
		// either result.
		front := res.KEDAFrontier
		stop := func(m *Metrics) bool {
			for i := range front {
				if front[i].ReplicaSeconds <= m.ReplicaSeconds && front[i].ScaleEvents <= m.ScaleEvents {
					return true
				}
			}
			return false
		}
		m, s, done := runUntil(cfg, w, rates, newKEDA(c), initial, budget, stop)
		if !done || m.SLOAttainment < attainmentTarget {
			continue
		}
		p := KEDAPoint{Metrics: m, Parameters: c}
		meeting = append(meeting, p)
		res.KEDAFrontier = frontier(meeting)
		if b := res.KEDABest; b == nil || m.ReplicaSeconds < b.ReplicaSeconds || m.ReplicaSeconds == b.ReplicaSeconds && m.ScaleEvents < b.ScaleEvents {
			res.KEDABest, bestSeries = &p, s
		}
	}
	if res.KEDABest != nil {
		bm := res.KEDABest.Metrics
		res.Metrics[PolicyKEDABest], res.Series[PolicyKEDABest] = &bm, bestSeries
	} else {
		res.Metrics[PolicyKEDABest] = nil
		res.KEDABestAttainment = bestAttainment(cfg, w, rates, grid, initial)
	}

	om := oracle(cfg, w, rates, false)
	res.Metrics[PolicyOracle] = &om
	op := oracle(cfg, w, rates, true)
	res.Metrics[PolicyOraclePartitions] = &op
	return res
}

// bestAttainment is the highest SLO attainment of any configuration of
// grid. Each run stops once it has missed the SLO as often as the best so
// far, which cannot beat it.
func bestAttainment(cfg Config, w Workload, rates [][]float64, grid []KEDAConfig, initial int) float64 {
	best := 0.0
	budget := w.Duration
	for _, c := range grid {
		m, _, done := run(cfg, w, rates, newKEDA(c), initial, budget-1)
		if !done {
			continue
		}
		if m.SLOAttainment > best {
			best = m.SLOAttainment
			budget = int(math.Round((1 - best) * float64(w.Duration)))
		}
	}
	return best
}

// initialReplicas is cfg.InitialReplicas, or what the oracle needs at
// second 0.
func initialReplicas(cfg Config, w Workload, rates [][]float64) int {
	initial := cfg.InitialReplicas
	if initial <= 0 && w.Duration > 0 {
		in := 0.0
		for _, r := range rates[0] {
			in += r
		}
		initial = max(1, ceilReplicas(in, cfg.Capacity*w.capacityFactor(0)))
	}
	return initial
}

// JSON is the result as `lagscale sim --format json` writes it: each
// policy's metrics by name, keda-hpa and keda-best with their parameters,
// and keda-frontier as a list of points.
func (r Result) JSON() map[string]any {
	out := map[string]any{}
	for _, p := range Policies {
		switch p {
		case PolicyKEDA:
			out[p] = KEDAPoint{Metrics: *r.Metrics[p], Parameters: r.KEDA}
		case PolicyKEDABest:
			out[p] = r.KEDABest
		default:
			out[p] = r.Metrics[p]
		}
	}
	f := r.KEDAFrontier
	if f == nil {
		f = []KEDAPoint{}
	}
	out[PolicyKEDAFrontier] = f
	out["keda_configurations"] = r.KEDAConfigs
	if r.KEDABest == nil {
		out["keda_best_attainment"] = r.KEDABestAttainment
	}
	out["slo_seconds"] = r.Config.SLO
	out["reconcile_latency_seconds"] = r.Config.ReconcileLatency
	return out
}
