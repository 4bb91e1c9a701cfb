package sim

import (
	"cmp"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
)

// Goal bounds of the sweep: on every run lagscale should meet the SLO,
// spend at most costGoal x keda-best's replica-seconds and make at most
// eventsGoal x keda-hpa's scale events or eventsFloor, whichever is more
// (a run that needs a scale-up and its scale-down back meets it however
// few keda-hpa makes), and no SLO-meeting KEDA
// configuration should dominate it. Where no KEDA configuration meets the
// SLO, the cost and dominance goals have nothing to compare with; the run's
// goal is then fallbackAttainment and at least the grid's best attainment.
const (
	costGoal           = 1.25
	eventsGoal         = 0.5
	eventsFloor        = 2
	fallbackAttainment = 0.95
)

// SweepParams is a sweep: every scenario at every seed and capacity.
type SweepParams struct {
	// Scenarios are built-in scenario names.
	Scenarios []string
	// Family, when set, is a split of the randomized family (SplitTrain or
	// SplitTest) run at Seeds instead of Scenarios and Capacities; each
	// seed draws its workload and operating point, and Config gives only
	// Prior, ReconcileLatency and KEDALagThreshold.
	Family string
	// Seeds drive both the scenario's randomness and the capacity noise.
	Seeds []uint64
	// Capacities are replica capacities in records/s.
	Capacities []float64
	// Partitions is the partition count.
	Partitions int
	// Config holds everything else; its Seed and Capacity are replaced
	// per run.
	Config Config
	// Workers is how many runs go at once; 0 means GOMAXPROCS.
	Workers int
}

// SweepRun is one run of a sweep, without the per-second series.
type SweepRun struct {
	Scenario string  `json:"scenario"`
	Seed     uint64  `json:"seed"`
	Capacity float64 `json:"capacity"`
	// The run's operating point.
	Partitions int     `json:"partitions"`
	SLO        float64 `json:"slo_seconds"`
	Startup    int     `json:"startup_seconds"`
	Rebalance  int     `json:"rebalance_seconds"`
	Poll       int     `json:"poll_seconds"`
	// KEDABestAttainment is the grid's best attainment when KEDABest is
	// nil.
	KEDABestAttainment float64 `json:"keda_best_attainment,omitempty"`
	// Lagscale, KEDA, Oracle and OraclePartitions are those policies'
	// metrics.
	Lagscale         Metrics `json:"lagscale"`
	KEDA             Metrics `json:"keda-hpa"`
	Oracle           Metrics `json:"oracle"`
	OraclePartitions Metrics `json:"oracle-partitions"`
	// KEDABest is nil when no configuration reaches 0.99 attainment.
	KEDABest *KEDAPoint `json:"keda-best"`
	// KEDAFrontier is the grid's SLO-meeting Pareto frontier.
	KEDAFrontier []KEDAPoint `json:"keda-frontier"`
	// Goals says which goals hold on this run.
	Goals Goals `json:"goals"`
}

// Goals are the sweep's per-run goals for lagscale.
type Goals struct {
	// Attainment: SLO attainment >= 0.99.
	Attainment bool `json:"attainment"`
	// NotDominated: no point of keda-frontier has replica-seconds and
	// scale events both <= lagscale's, one of them strictly.
	NotDominated bool `json:"not_dominated"`
	// DominatedBy is the first frontier point that dominates lagscale.
	DominatedBy *KEDAPoint `json:"dominated_by,omitempty"`
	// Cost: replica-seconds <= 1.25 x keda-best's; it holds when no KEDA
	// configuration meets the SLO.
	Cost bool `json:"cost"`
	// Events: scale events <= 0.5 x keda-hpa's, or <= 2 when that is more.
	Events bool `json:"events"`
	// Fallback is set only when no KEDA configuration meets the SLO: then
	// it replaces Attainment, NotDominated and Cost, and holds when
	// lagscale's attainment is >= 0.95 and >= the grid's best.
	Fallback *bool `json:"fallback,omitempty"`
}

// All reports whether every goal holds: Fallback and Events on a run where
// no KEDA configuration meets the SLO, the other four elsewhere.
func (g Goals) All() bool {
	if g.Fallback != nil {
		return *g.Fallback && g.Events
	}
	return g.Attainment && g.NotDominated && g.Cost && g.Events
}

// CostRatio is lagscale's replica-seconds over keda-best's, NaN without
// keda-best.
func (r SweepRun) CostRatio() float64 {
	if r.KEDABest == nil {
		return math.NaN()
	}
	return float64(r.Lagscale.ReplicaSeconds) / float64(r.KEDABest.ReplicaSeconds)
}

// EventsRatio is lagscale's scale events over keda-hpa's.
func (r SweepRun) EventsRatio() float64 {
	return float64(r.Lagscale.ScaleEvents) / float64(max(r.KEDA.ScaleEvents, 1))
}

// OracleRatio is lagscale's replica-seconds over the oracle's; with
// partitions, over oracle-partitions'.
func (r SweepRun) OracleRatio(partitions bool) float64 {
	o := r.Oracle
	if partitions {
		o = r.OraclePartitions
	}
	return float64(r.Lagscale.ReplicaSeconds) / float64(o.ReplicaSeconds)
}

// Sweep runs every scenario at every seed and capacity, Workers at a time,
// and returns the runs in scenario, capacity, seed order.
func Sweep(p SweepParams) ([]SweepRun, error) {
	type job struct {
		i    int
		w    Workload
		cfg  Config
		cost int
		seed uint64
	}
	var jobs []job
	if p.Family != "" {
		for _, seed := range p.Seeds {
			w, cfg, err := FamilyRun(p.Family, seed)
			if err != nil {
				return nil, err
			}
			cfg.Prior, cfg.ReconcileLatency, cfg.KEDALagThreshold = p.Config.Prior, p.Config.ReconcileLatency, p.Config.KEDALagThreshold
			cfg.Without = p.Config.Without
			// The cost of a run grows with its partitions and length.
			jobs = append(jobs, job{i: len(jobs), w: w, cfg: cfg, cost: w.Duration * (w.Partitions + 8), seed: seed})
		}
	}
	for _, name := range p.Scenarios {
		for _, c := range p.Capacities {
			for _, seed := range p.Seeds {
				w, err := Scenario(name, ScenarioParams{Partitions: p.Partitions, Capacity: c, Seed: seed})
				if err != nil {
					return nil, err
				}
				cfg := p.Config
				cfg.Capacity, cfg.Seed = c, seed
				jobs = append(jobs, job{i: len(jobs), w: w, cfg: cfg, cost: w.Duration, seed: seed})
			}
		}
	}
	out := make([]SweepRun, len(jobs))
	// Longest first, so that a long run does not start last and keep one
	// worker busy after the others are done.
	order := slices.Clone(jobs)
	slices.SortStableFunc(order, func(a, b job) int { return cmp.Compare(b.cost, a.cost) })
	workers := p.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	ch := make(chan job)
	var wg sync.WaitGroup
	for range min(workers, max(len(jobs), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range ch {
				out[j.i] = summarize(Run(j.cfg, j.w))
				out[j.i].Seed = j.seed
			}
		}()
	}
	for _, j := range order {
		ch <- j
	}
	close(ch)
	wg.Wait()
	return out, nil
}

// summarize keeps what a sweep reports of one result and checks the goals.
func summarize(r Result) SweepRun {
	s := SweepRun{
		Scenario: r.Workload.Name, Seed: r.Config.Seed, Capacity: r.Config.Capacity,
		Lagscale: *r.Metrics[PolicyLagscale], KEDA: *r.Metrics[PolicyKEDA],
		Oracle: *r.Metrics[PolicyOracle], OraclePartitions: *r.Metrics[PolicyOraclePartitions],
		KEDABest: r.KEDABest, KEDAFrontier: r.KEDAFrontier,
		Partitions: r.Workload.Partitions, SLO: r.Config.SLO, Startup: r.Config.Startup, Rebalance: r.Config.Rebalance, Poll: r.Config.Poll,
		KEDABestAttainment: r.KEDABestAttainment,
	}
	l := s.Lagscale
	s.Goals.Attainment = l.SLOAttainment >= attainmentTarget
	s.Goals.NotDominated = true
	for i := range s.KEDAFrontier {
		if p := s.KEDAFrontier[i]; p.Dominates(l) {
			s.Goals.NotDominated, s.Goals.DominatedBy = false, &p
			break
		}
	}
	s.Goals.Cost = s.KEDABest == nil || float64(l.ReplicaSeconds) <= costGoal*float64(s.KEDABest.ReplicaSeconds)
	s.Goals.Events = float64(l.ScaleEvents) <= max(eventsFloor, eventsGoal*float64(s.KEDA.ScaleEvents))
	if s.KEDABest == nil {
		fb := l.SLOAttainment >= fallbackAttainment && l.SLOAttainment >= r.KEDABestAttainment
		s.Goals.Fallback = &fb
	}
	return s
}

// ScenarioSummary is a sweep's medians and worst cases for one scenario.
type ScenarioSummary struct {
	Scenario string `json:"scenario"`
	Runs     int    `json:"runs"`
	// Attainment is lagscale's SLO attainment; its worst is the lowest.
	Attainment Spread `json:"attainment"`
	// Cost is lagscale's replica-seconds over keda-best's, over the runs
	// that have a keda-best; its worst is the highest.
	Cost Spread `json:"cost_vs_keda_best"`
	// Events is lagscale's scale events over keda-hpa's; worst highest.
	Events Spread `json:"events_vs_keda_hpa"`
	// Oracle and OraclePartitions are lagscale's replica-seconds over the
	// two oracles'; worst highest.
	Oracle           Spread `json:"cost_vs_oracle"`
	OraclePartitions Spread `json:"cost_vs_oracle_partitions"`
	// KEDABestOracle is keda-best's replica-seconds over
	// oracle-partitions', for scale.
	KEDABestOracle Spread `json:"keda_best_vs_oracle_partitions"`
	// NoKEDABest counts runs where no KEDA configuration met the SLO.
	NoKEDABest int `json:"no_keda_best"`
	// Held counts the runs on which each goal holds, and all of them.
	// Attainment, NotDominated and Cost count only runs with a keda-best,
	// Fallback only runs without one (NoKEDABest).
	Held struct {
		Attainment, NotDominated, Cost, Fallback, Events, All int
	} `json:"held"`
}

// Spread is a median and a worst case.
type Spread struct {
	Median float64 `json:"median"`
	Worst  float64 `json:"worst"`
}

// spread of vs; worst is the highest unless low is set. NaNs are left out.
func spread(vs []float64, low bool) Spread {
	vs = slices.DeleteFunc(slices.Clone(vs), math.IsNaN)
	if len(vs) == 0 {
		return Spread{math.NaN(), math.NaN()}
	}
	slices.Sort(vs)
	n := len(vs)
	med := vs[n/2]
	if n%2 == 0 {
		med = (vs[n/2-1] + vs[n/2]) / 2
	}
	w := vs[n-1]
	if low {
		w = vs[0]
	}
	return Spread{med, w}
}

// Summarize groups runs by scenario, in the order scenarios first appear.
func Summarize(runs []SweepRun) []ScenarioSummary {
	var out []ScenarioSummary
	index := map[string]int{}
	by := map[string][]SweepRun{}
	for _, r := range runs {
		if _, ok := index[r.Scenario]; !ok {
			index[r.Scenario] = len(out)
			out = append(out, ScenarioSummary{Scenario: r.Scenario})
		}
		by[r.Scenario] = append(by[r.Scenario], r)
	}
	for i := range out {
		rs := by[out[i].Scenario]
		s := &out[i]
		s.Runs = len(rs)
		var att, cost, ev, or, orp, kb []float64
		for _, r := range rs {
			att = append(att, r.Lagscale.SLOAttainment)
			cost = append(cost, r.CostRatio())
			ev = append(ev, r.EventsRatio())
			or = append(or, r.OracleRatio(false))
			orp = append(orp, r.OracleRatio(true))
			if r.KEDABest == nil {
				s.NoKEDABest++
				kb = append(kb, math.NaN())
			} else {
				kb = append(kb, float64(r.KEDABest.ReplicaSeconds)/float64(r.OraclePartitions.ReplicaSeconds))
			}
			g := r.Goals
			if g.Fallback != nil {
				s.Held.Fallback += b2i(*g.Fallback)
			} else {
				s.Held.Attainment += b2i(g.Attainment)
				s.Held.NotDominated += b2i(g.NotDominated)
				s.Held.Cost += b2i(g.Cost)
			}
			s.Held.Events += b2i(g.Events)
			s.Held.All += b2i(g.All())
		}
		s.Attainment = spread(att, true)
		s.Cost = spread(cost, false)
		s.Events = spread(ev, false)
		s.Oracle = spread(or, false)
		s.OraclePartitions = spread(orp, false)
		s.KEDABestOracle = spread(kb, false)
	}
	return out
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Failures describes every run on which a goal does not hold, one line
// each.
func Failures(runs []SweepRun) []string {
	var out []string
	for _, r := range runs {
		g := r.Goals
		if g.All() {
			continue
		}
		l := r.Lagscale
		line := fmt.Sprintf("%s seed %d capacity %g (%d partitions, SLO %gs, startup %ds, rebalance %ds, poll %ds): lagscale attainment %.4f, %d replica-s, %d events", r.Scenario, r.Seed, r.Capacity, r.Partitions, r.SLO, r.Startup, r.Rebalance, r.Poll, l.SLOAttainment, l.ReplicaSeconds, l.ScaleEvents)
		if g.Fallback != nil {
			if !*g.Fallback {
				line += fmt.Sprintf("; no KEDA configuration meets the SLO and lagscale's attainment is below 0.95 or the grid's best %.4f", r.KEDABestAttainment)
			}
		} else if !g.Attainment {
			line += "; attainment < 0.99"
		}
		if g.Fallback == nil && !g.NotDominated {
			d := g.DominatedBy
			line += fmt.Sprintf("; dominated by KEDA (%d replica-s, %d events, lagThreshold %d, metric cache %ds, down window %ds, tolerance %g, up %d pods/%d%%)",
				d.ReplicaSeconds, d.ScaleEvents, d.Parameters.LagThreshold, d.Parameters.MetricCacheSeconds, d.Parameters.ScaleDownStabilizationSeconds, d.Parameters.Tolerance, d.Parameters.ScaleUpPods, d.Parameters.ScaleUpPercent)
		}
		if g.Fallback == nil && !g.Cost {
			line += fmt.Sprintf("; replica-s %.3f x keda-best's %d", r.CostRatio(), r.KEDABest.ReplicaSeconds)
		}
		if !g.Events {
			line += fmt.Sprintf("; events %.2f x keda-hpa's %d", r.EventsRatio(), r.KEDA.ScaleEvents)
		}
		out = append(out, line)
	}
	return out
}

// ShareComparison is one scenario of a sweep run twice, lagscale scaling a
// classic consumer group and a share group (Config.Share) on the same
// loads: what a share group buys.
type ShareComparison struct {
	Scenario string `json:"scenario"`
	Runs     int    `json:"runs"`
	// Attainment is lagscale's SLO attainment; worst lowest.
	ClassicAttainment Spread `json:"classic_attainment"`
	ShareAttainment   Spread `json:"share_attainment"`
	// P99 is lagscale's p99 time lag in seconds; worst highest.
	ClassicP99 Spread `json:"classic_p99_lag_seconds"`
	ShareP99   Spread `json:"share_p99_lag_seconds"`
	// ReplicaSeconds are lagscale's; worst highest.
	ClassicReplicaSeconds Spread `json:"classic_replica_seconds"`
	ShareReplicaSeconds   Spread `json:"share_replica_seconds"`
	// Cost is share's replica-seconds over classic's on the same run;
	// worst highest.
	Cost Spread `json:"share_vs_classic_replica_seconds"`
}

// CompareShare pairs the runs of a classic and a share sweep by scenario,
// seed and capacity and summarizes each scenario, in the order scenarios
// first appear in classic. A run of one without its pair in the other is
// an error: the two sweeps must cover the same runs.
func CompareShare(classic, share []SweepRun) ([]ShareComparison, error) {
	type key struct {
		scenario string
		seed     uint64
		capacity float64
	}
	byKey := map[key]SweepRun{}
	for _, r := range share {
		byKey[key{r.Scenario, r.Seed, r.Capacity}] = r
	}
	if len(share) != len(classic) {
		return nil, fmt.Errorf("share sweep has %d runs, classic %d", len(share), len(classic))
	}
	type values struct{ ca, sa, cp, sp, cr, sr, cost []float64 }
	var out []ShareComparison
	index := map[string]int{}
	var vs []*values
	for _, c := range classic {
		s, ok := byKey[key{c.Scenario, c.Seed, c.Capacity}]
		if !ok {
			return nil, fmt.Errorf("%s seed %d capacity %g has no share run", c.Scenario, c.Seed, c.Capacity)
		}
		i, seen := index[c.Scenario]
		if !seen {
			i = len(out)
			index[c.Scenario] = i
			out = append(out, ShareComparison{Scenario: c.Scenario})
			vs = append(vs, &values{})
		}
		out[i].Runs++
		v := vs[i]
		cl, sh := c.Lagscale, s.Lagscale
		v.ca, v.sa = append(v.ca, cl.SLOAttainment), append(v.sa, sh.SLOAttainment)
		v.cp, v.sp = append(v.cp, cl.P99LagSeconds), append(v.sp, sh.P99LagSeconds)
		v.cr, v.sr = append(v.cr, float64(cl.ReplicaSeconds)), append(v.sr, float64(sh.ReplicaSeconds))
		v.cost = append(v.cost, float64(sh.ReplicaSeconds)/float64(max(cl.ReplicaSeconds, 1)))
	}
	for i := range out {
		v := vs[i]
		out[i].ClassicAttainment, out[i].ShareAttainment = spread(v.ca, true), spread(v.sa, true)
		out[i].ClassicP99, out[i].ShareP99 = spread(v.cp, false), spread(v.sp, false)
		out[i].ClassicReplicaSeconds, out[i].ShareReplicaSeconds = spread(v.cr, false), spread(v.sr, false)
		out[i].Cost = spread(v.cost, false)
	}
	return out, nil
}
