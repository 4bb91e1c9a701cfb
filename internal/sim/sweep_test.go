package sim

import (
	"math"
	"testing"
)

func TestSweepGoals(t *testing.T) {
	pt := func(rs int64, ev int) KEDAPoint {
		return KEDAPoint{Metrics: Metrics{SLOAttainment: 1, ReplicaSeconds: rs, ScaleEvents: ev}}
	}
	result := func(att float64, rs int64, ev int, best *KEDAPoint, front []KEDAPoint) Result {
		return Result{Workload: Workload{Name: "s"}, Metrics: map[string]*Metrics{
			PolicyLagscale:         {SLOAttainment: att, ReplicaSeconds: rs, ScaleEvents: ev},
			PolicyKEDA:             {ReplicaSeconds: 900, ScaleEvents: 20},
			PolicyOracle:           {ReplicaSeconds: 500},
			PolicyOraclePartitions: {ReplicaSeconds: 600},
		}, KEDABest: best, KEDAFrontier: front}
	}
	best := pt(1000, 30)
	front := []KEDAPoint{best, pt(1100, 12)}
	fewHPA := func(r Result, ev int) Result {
		r.Metrics[PolicyKEDA].ScaleEvents = ev
		return r
	}
	tests := []struct {
		name string
		r    Result
		want Goals
	}{
		{"all hold", result(0.995, 1200, 10, &best, front), Goals{Attainment: true, NotDominated: true, Cost: true, Events: true}},
		{"attainment below 0.99", result(0.989, 1200, 10, &best, front), Goals{NotDominated: true, Cost: true, Events: true}},
		{"dominated", result(1, 1200, 12, &best, front), Goals{Attainment: true, DominatedBy: &front[1], Cost: true}},
		{"equal is not dominated", result(1, 1100, 12, &best, front), Goals{Attainment: true, NotDominated: true, Cost: true}},
		{"cost above 1.25 x keda-best", result(1, 1251, 10, &best, front), Goals{Attainment: true, NotDominated: true, Events: true}},
		{"events above half keda-hpa's", result(1, 1200, 11, &best, front), Goals{Attainment: true, NotDominated: true, Cost: true}},
		{"two events where keda-hpa makes none", fewHPA(result(1, 1200, 2, &best, front), 0), Goals{Attainment: true, NotDominated: true, Cost: true, Events: true}},
		{"three events where keda-hpa makes four", fewHPA(result(1, 1200, 3, &best, front), 4), Goals{Attainment: true, NotDominated: true, Cost: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := summarize(tt.r).Goals
			if got.Attainment != tt.want.Attainment || got.NotDominated != tt.want.NotDominated || got.Cost != tt.want.Cost || got.Events != tt.want.Events ||
				(got.DominatedBy == nil) != (tt.want.DominatedBy == nil) || got.Fallback != nil {
				t.Errorf("goals %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestSweepFallbackGoal: where no KEDA configuration meets the SLO, cost
// and dominance have nothing to compare with, so the run is judged on
// attainment >= 0.95 and >= the grid's best, not passed.
func TestSweepFallbackGoal(t *testing.T) {
	result := func(att, gridBest float64) Result {
		return Result{Workload: Workload{Name: "s"}, Metrics: map[string]*Metrics{
			PolicyLagscale:         {SLOAttainment: att, ReplicaSeconds: 5000, ScaleEvents: 5},
			PolicyKEDA:             {ReplicaSeconds: 900, ScaleEvents: 20},
			PolicyOracle:           {ReplicaSeconds: 500},
			PolicyOraclePartitions: {ReplicaSeconds: 600},
		}, KEDABestAttainment: gridBest}
	}
	tests := []struct {
		name     string
		att, kb  float64
		fallback bool
	}{
		{"above 0.95 and the grid's best", 0.96, 0.90, true},
		{"below the grid's best", 0.97, 0.98, false},
		{"above the grid's best but below 0.95", 0.94, 0.50, false},
		{"equal to the grid's best", 0.96, 0.96, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := summarize(result(tt.att, tt.kb)).Goals
			if g.Fallback == nil {
				t.Fatal("no fallback goal on a run without keda-best")
			}
			if *g.Fallback != tt.fallback || g.All() != tt.fallback {
				t.Errorf("fallback %v, all %v; want %v", *g.Fallback, g.All(), tt.fallback)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	var runs []SweepRun
	for i, rs := range []int64{1000, 1200, 1100, 3000} {
		b := KEDAPoint{Metrics: Metrics{ReplicaSeconds: 1000}}
		runs = append(runs, summarize(Result{Workload: Workload{Name: "s"}, Metrics: map[string]*Metrics{
			PolicyLagscale:         {SLOAttainment: 1 - float64(i)/100, ReplicaSeconds: rs, ScaleEvents: 5},
			PolicyKEDA:             {ScaleEvents: 20},
			PolicyOracle:           {ReplicaSeconds: 500},
			PolicyOraclePartitions: {ReplicaSeconds: 1000},
		}, KEDABest: &b}))
	}
	s := Summarize(runs)
	if len(s) != 1 || s[0].Runs != 4 {
		t.Fatalf("summaries %+v", s)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if got := s[0].Cost; !near(got.Median, 1.15) || !near(got.Worst, 3) {
		t.Errorf("cost %+v, want median 1.15 worst 3", got)
	}
	if got := s[0].Attainment; !near(got.Median, 0.985) || !near(got.Worst, 0.97) {
		t.Errorf("attainment %+v, want median 0.985 worst 0.97", got)
	}
	if got := s[0].Oracle; !near(got.Median, 2.3) || !near(got.Worst, 6) {
		t.Errorf("cost/oracle %+v, want median 2.3 worst 6", got)
	}
	if h := s[0].Held; h.Attainment != 2 || h.Cost != 3 || h.Events != 4 || h.All != 2 {
		t.Errorf("held %+v, want attainment 2, cost 3, events 4, all 2", h)
	}
}

func TestCompareShare(t *testing.T) {
	run := func(scenario string, seed uint64, att, p99 float64, rs int64) SweepRun {
		return SweepRun{Scenario: scenario, Seed: seed, Capacity: 100, Lagscale: Metrics{SLOAttainment: att, P99LagSeconds: p99, ReplicaSeconds: rs}}
	}
	classic := []SweepRun{run("hot", 1, 1, 17, 1000), run("hot", 2, 0.99, 20, 1200), run("step", 1, 1, 10, 500)}
	// In another order: runs pair by scenario, seed and capacity.
	share := []SweepRun{run("step", 1, 1, 9, 500), run("hot", 2, 1, 6, 600), run("hot", 1, 1, 5, 400)}
	got, err := CompareShare(classic, share)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Scenario != "hot" || got[0].Runs != 2 || got[1].Scenario != "step" {
		t.Fatalf("comparisons %+v, want hot (2 runs) then step", got)
	}
	h := got[0]
	if h.ClassicAttainment != (Spread{0.995, 0.99}) || h.ShareAttainment != (Spread{1, 1}) {
		t.Errorf("attainment classic %+v share %+v", h.ClassicAttainment, h.ShareAttainment)
	}
	if h.ClassicP99 != (Spread{18.5, 20}) || h.ShareP99 != (Spread{5.5, 6}) {
		t.Errorf("p99 classic %+v share %+v", h.ClassicP99, h.ShareP99)
	}
	if h.Cost != (Spread{0.45, 0.5}) || h.ShareReplicaSeconds != (Spread{500, 600}) {
		t.Errorf("cost %+v, share replica-s %+v; want share/classic per run 0.4 and 0.5", h.Cost, h.ShareReplicaSeconds)
	}
	if _, err := CompareShare(classic, share[:2]); err == nil {
		t.Error("no error for a classic run without its share run")
	}
	share[2].Seed = 3
	if _, err := CompareShare(classic, share); err == nil {
		t.Error("no error for runs that do not pair")
	}
}
