package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// The family's two splits. Constants are tuned on train only; test is
// reported with them frozen.
const (
	// SplitTrain is the split constants may be tuned on.
	SplitTrain = "train"
	// SplitTest is the split results are reported on.
	SplitTest = "test"
)

// FamilyShapes are the workload shapes the family draws from, in report
// order.
var FamilyShapes = []string{"periodic-batches", "poisson-bursts", "slow-ramp", "zipf-skew", "diurnal-flash", "storm-after-silence", "small-group"}

// Ranges of the family's operating points.
const (
	familyDuration = 3600
	// feasibleShare is the most of one replica any partition may need: a
	// partition is consumed by one member, so a partition needing more
	// is a run no autoscaler can serve, and the family draws none.
	feasibleShare = 0.9
)

// FamilyRun draws the workload and operating point of one seed of a split.
// The splits draw from disjoint seed spaces: seed n of train and seed n of
// test are different runs, and no seed of one is a seed of the other.
func FamilyRun(split string, seed uint64) (Workload, Config, error) {
	var bit uint64
	switch split {
	case SplitTrain:
	case SplitTest:
		bit = 1
	default:
		return Workload{}, Config{}, fmt.Errorf("unknown split %q (want %s or %s)", split, SplitTrain, SplitTest)
	}
	rng := rand.New(rand.NewPCG(2*seed+bit, 0x6c616773))
	logU := func(lo, hi float64) float64 {
		return math.Exp(math.Log(lo) + rng.Float64()*(math.Log(hi)-math.Log(lo)))
	}
	intIn := func(lo, hi int) int { return lo + rng.IntN(hi-lo+1) }

	shape := FamilyShapes[rng.IntN(len(FamilyShapes))]
	cfg := Config{
		Startup:   intIn(5, 180),
		Rebalance: intIn(1, 30),
		Poll:      intIn(5, 30),
		SLO:       math.Round(logU(10, 300)),
		Capacity:  math.Round(logU(10, 2000)),
		Noise:     rng.Float64() * 0.2,
		Seed:      2*seed + bit,
	}
	P := int(math.Round(logU(3, 128)))
	if shape == "small-group" {
		P = intIn(3, 8)
	}
	D := familyDuration
	C := cfg.Capacity
	// total[s] is the topic's records/s at second s, in replicas' worth.
	total := make([]float64, D)
	weights := make([]float64, P)
	for i := range weights {
		weights[i] = 1
	}
	// pareto draws a heavy-tailed value >= lo with tail index alpha.
	pareto := func(lo, alpha float64) float64 { return lo / math.Pow(1-rng.Float64(), 1/alpha) }
	fill := func(from, to int, v float64) {
		for s := max(from, 0); s < min(to, D); s++ {
			total[s] = v
		}
	}
	add := func(from, to int, v float64) {
		for s := max(from, 0); s < min(to, D); s++ {
			total[s] += v
		}
	}
	peak := logU(2, 24) // replicas' worth at the shape's height
	switch shape {
	case "periodic-batches":
		base := rng.Float64() * 0.3 * peak
		fill(0, D, base)
		period, length := intIn(300, 1200), intIn(30, 240)
		for s := rng.IntN(period); s < D; s += period {
			add(s, s+length, peak)
		}
	case "poisson-bursts", "small-group":
		base := (0.1 + 0.3*rng.Float64()) * peak
		fill(0, D, base)
		gap := logU(120, 600)
		for s := int(rng.ExpFloat64() * gap); s < D; s += 1 + int(rng.ExpFloat64()*gap) {
			size := min(pareto(0.5, 1.5), 8) * peak / 2
			length := int(min(pareto(15, 1.2), 900))
			add(s, s+length, size)
		}
	case "slow-ramp":
		lo := (0.05 + 0.2*rng.Float64()) * peak
		up := intIn(900, 2400)
		hold := intIn(0, 600)
		for s := range D {
			v := peak
			switch {
			case s < up:
				v = lo + (peak-lo)*float64(s/10*10)/float64(up)
			case s >= up+hold:
				v = max(lo, peak-(peak-lo)*float64((s-up-hold)/10*10)/float64(up))
			}
			total[s] = v
		}
	case "zipf-skew":
		exp := 0.6 + 0.9*rng.Float64()
		for i := range weights {
			weights[i] = 1 / math.Pow(float64(i+1), exp)
		}
		rng.Shuffle(len(weights), func(i, j int) { weights[i], weights[j] = weights[j], weights[i] })
		base := (0.3 + 0.4*rng.Float64()) * peak
		fill(0, D, base)
		from := intIn(300, D/2)
		fill(from, from+intIn(300, 1500), peak)
	case "diurnal-flash":
		lo := (0.05 + 0.3*rng.Float64()) * peak
		for s := range D {
			phase := 2 * math.Pi * float64(s/60*60) / float64(D)
			total[s] = lo + (peak-lo)*(1-math.Cos(phase))/2
		}
		for range intIn(1, 3) {
			s := rng.IntN(D)
			add(s, s+intIn(60, 300), logU(1, 3)*peak)
		}
	case "storm-after-silence":
		quiet := (0.1 + 0.2*rng.Float64()) * peak
		fill(0, D, quiet)
		silence := intIn(600, 1800)
		fill(silence/3, silence, 0)
		storm := intIn(120, 900)
		fill(silence, silence+storm, logU(1, 3)*peak)
	}
	// Feasible: scale the whole run down until the hottest partition at
	// its busiest needs at most feasibleShare of a replica.
	sumW := 0.0
	for _, wt := range weights {
		sumW += wt
	}
	hottest := slices.Max(weights) / sumW
	scale := C
	if top := slices.Max(total) * C * hottest; top > feasibleShare*C {
		scale *= feasibleShare * C / top
	}
	w := Workload{Name: shape, Partitions: P, Duration: D}
	prev := -1.0
	for s, v := range total {
		if v == prev {
			continue
		}
		prev = v
		for i := range P {
			w.Rows = append(w.Rows, TraceRow{Second: s, Partition: i, Rate: v * scale * weights[i] / sumW})
		}
	}
	return w, cfg, nil
}

// maxPartitionNeed is the most of one replica's capacity any partition of
// w ever receives, for the feasibility test.
func maxPartitionNeed(w Workload, capacity float64) float64 {
	m := 0.0
	for _, r := range w.Rows {
		m = max(m, r.Rate/capacity)
	}
	return m
}
