package sim

import (
	"bytes"
	"reflect"
	"testing"
)

func testConfig() Config {
	return Config{Capacity: 100, Noise: 0.1, SLO: 30, Seed: 7, Rebalance: 5, Startup: 20, Poll: 5}
}

func TestConservation(t *testing.T) {
	for _, name := range Scenarios {
		t.Run(name, func(t *testing.T) {
			w, err := Scenario(name, ScenarioParams{Partitions: 24, Capacity: 100, Seed: 7, Duration: 1800})
			if err != nil {
				t.Fatal(err)
			}
			res := Run(testConfig(), w)
			for policy, s := range res.Series {
				if s.Produced == 0 {
					t.Errorf("%s: nothing produced", policy)
				}
				if s.Produced != s.Processed+s.Backlog {
					t.Errorf("%s: produced %d != processed %d + backlog %d", policy, s.Produced, s.Processed, s.Backlog)
				}
			}
		})
	}
}

func TestTraceMatchesScenario(t *testing.T) {
	for _, name := range []string{"step", "diurnal", "spikes", "hot-partition"} {
		t.Run(name, func(t *testing.T) {
			w, err := Scenario(name, ScenarioParams{Partitions: 24, Capacity: 100, Seed: 3, Duration: 2400})
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := WriteTrace(&buf, w); err != nil {
				t.Fatal(err)
			}
			tw, err := ReadTrace(&buf, "trace.csv", w.Partitions, w.Duration)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(tw.Rows, w.Rows) {
				t.Fatalf("trace rows differ from the scenario's")
			}
			a, b := Run(testConfig(), w), Run(testConfig(), tw)
			for _, p := range Policies {
				if !reflect.DeepEqual(a.Metrics[p], b.Metrics[p]) {
					t.Errorf("%s: scenario %+v, trace %+v", p, a.Metrics[p], b.Metrics[p])
				}
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	w, err := Scenario("spikes", ScenarioParams{Partitions: 24, Capacity: 100, Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.Seed = 11
	a, b := Run(cfg, w), Run(cfg, w)
	for _, p := range Policies {
		if !reflect.DeepEqual(a.Metrics[p], b.Metrics[p]) {
			t.Errorf("%s: two runs with one seed differ: %+v vs %+v", p, a.Metrics[p], b.Metrics[p])
		}
	}
	w2, _ := Scenario("spikes", ScenarioParams{Partitions: 24, Capacity: 100, Seed: 12})
	if reflect.DeepEqual(w.Rows, w2.Rows) {
		t.Error("another seed gave the same spikes")
	}
}

func TestReadTraceErrors(t *testing.T) {
	tests := []struct {
		name, in string
	}{
		{"wrong header", "second,partition,rate\n0,0,1\n"},
		{"negative rate", "seconds,partition,rate\n0,0,-1\n"},
		{"not a number", "seconds,partition,rate\n0,x,1\n"},
		{"no rows", "seconds,partition,rate\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ReadTrace(bytes.NewBufferString(tt.in), "t.csv", 0, 0); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func TestAssignIsStickyAndBalanced(t *testing.T) {
	cfg := testConfig().withDefaults()
	w := Workload{Partitions: 10, Duration: 1}
	g := newGroup(cfg, w, 3)
	before := map[int][]int{}
	for id, ps := range g.assignment {
		before[id] = append([]int(nil), ps...)
	}
	g.scaleTo(4, 0)
	g.join(100)
	g.assign()
	moved := 0
	for id, ps := range g.assignment {
		if len(ps) < 2 || len(ps) > 3 {
			t.Errorf("member %d owns %d partitions, want 2 or 3", id, len(ps))
		}
		for _, p := range ps {
			if old, ok := before[id]; !ok || !contains(old, p) {
				moved++
			}
		}
	}
	if moved > 3 {
		t.Errorf("%d partitions moved when a fourth member joined, want at most 3 (sticky)", moved)
	}
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// BenchmarkScenarios runs every built-in scenario and reports lagscale's
// metrics against the baselines, for make bench-autoscale.
func BenchmarkScenarios(b *testing.B) {
	for _, name := range Scenarios {
		b.Run(name, func(b *testing.B) {
			w, err := Scenario(name, ScenarioParams{Partitions: 24, Capacity: 100, Seed: 1})
			if err != nil {
				b.Fatal(err)
			}
			var res Result
			for b.Loop() {
				res = Run(Config{Capacity: 100, Noise: 0.1, SLO: 30, Seed: 1, Rebalance: 5, Startup: 20, Poll: 5}, w)
			}
			l := res.Metrics[PolicyLagscale]
			b.ReportMetric(l.SLOAttainment, "attainment")
			b.ReportMetric(float64(l.ReplicaSeconds)/float64(res.Metrics[PolicyOracle].ReplicaSeconds), "cost/oracle")
			b.ReportMetric(float64(l.ScaleEvents), "scale-events")
		})
	}
}
