package sim

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/lagscale/lagscale/api/v1alpha1"
)

func TestWithConsumerPrecedence(t *testing.T) {
	manifest := func(scaling string) string {
		return "apiVersion: lagscale.dev/v1alpha1\nkind: EventConsumer\nmetadata:\n  name: c\nspec:\n  topics: [t]\n  consumerGroup: g\n" +
			"  kafka:\n    bootstrapServers: [k:9092]\n" + scaling
	}
	flags := Config{Capacity: 200, SLO: 30, Poll: 7, Share: true, ShareMaxReplicas: 9, Prior: 0.5}
	tests := []struct {
		name     string
		yaml     string
		sloSet   bool
		wantSLO  float64
		wantPoll int
		share    bool
		shareMax int
		// wantTPR is the throughputPerReplica lagscale runs with.
		wantTPR float64
	}{
		{"empty scaling: API defaults, flags for the rest, prior applies", manifest(""), false,
			float64(v1alpha1.DefaultMaxLagSeconds), 7, true, 9, 100},
		{"manifest fields win over flags", manifest("  groupType: Classic\n  scaling:\n    maxLagSeconds: 120\n    pollIntervalSeconds: 20\n    maxReplicas: 4\n    throughputPerReplica: 300\n"), false,
			120, 20, false, 4, 300},
		{"--slo wins over maxLagSeconds for scoring", manifest("  scaling:\n    maxLagSeconds: 120\n"), true,
			30, 7, true, 9, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ec, err := ParseConsumer([]byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			cfg := WithConsumer(flags, ec, Flags{SLO: tt.sloSet})
			if cfg.SLO != tt.wantSLO || cfg.Poll != tt.wantPoll || cfg.Share != tt.share || cfg.ShareMaxReplicas != tt.shareMax || cfg.Capacity != 200 {
				t.Errorf("SLO %g poll %d share %v max %d capacity %g; want %g %d %v %d 200",
					cfg.SLO, cfg.Poll, cfg.Share, cfg.ShareMaxReplicas, cfg.Capacity, tt.wantSLO, tt.wantPoll, tt.share, tt.shareMax)
			}
			spec := LagscaleSpec(cfg)
			if spec.ThroughputPerReplica != tt.wantTPR {
				t.Errorf("throughputPerReplica %g, want %g", spec.ThroughputPerReplica, tt.wantTPR)
			}
			if want := float64(*cfg.Scaling.MaxLagSeconds); spec.MaxLagSeconds != want {
				t.Errorf("lagscale's maxLagSeconds %g, want the manifest's %g", spec.MaxLagSeconds, want)
			}
			if spec.ScaleDownStabilization != time.Duration(v1alpha1.DefaultScaleDownStabilizationSeconds)*time.Second {
				t.Errorf("stabilization %s, want the API default", spec.ScaleDownStabilization)
			}
		})
	}
	if _, err := ParseConsumer([]byte(manifest("  scaling:\n    maxLagSecond: 5\n"))); err == nil {
		t.Error("a misspelt field was accepted")
	}
	if _, err := ParseConsumer([]byte("kind: KafkaCluster\n")); err == nil {
		t.Error("a KafkaCluster was accepted as an EventConsumer")
	}
}

// TestBuiltInConsumerLearnsCapacity: without --consumer and --prior,
// lagscale is not told the capacity.
func TestBuiltInConsumerLearnsCapacity(t *testing.T) {
	if got := LagscaleSpec(testConfig()).ThroughputPerReplica; got != 0 {
		t.Errorf("built-in consumer has throughputPerReplica %g, want none", got)
	}
	cfg := testConfig()
	cfg.Prior = 2
	if got := LagscaleSpec(cfg).ThroughputPerReplica; got != 200 {
		t.Errorf("--prior 2 gives %g, want 200", got)
	}
}

// TestOperatorCadence: the scaler is looked at only when the operator
// would reconcile, a latency after the cause.
func TestOperatorCadence(t *testing.T) {
	t.Run("no inflow: one snapshot delivered, then only requeues", func(t *testing.T) {
		cfg := testConfig()
		cfg.ReconcileLatency = 3
		w := Workload{Name: "idle", Partitions: 4, Duration: 600}
		rec := Record(cfg, w, epoch)
		delivered := 0
		for _, p := range rec.Polls {
			if p.Delivered {
				delivered++
			}
		}
		if len(rec.Polls) != 120 || delivered != 1 {
			t.Fatalf("%d polls, %d delivered; want 120 polls, 1 delivered", len(rec.Polls), delivered)
		}
		// The first snapshot a latency later; then nothing but the
		// requeues decideReplicas asks for (it holds at minReplicas), a
		// poll interval and the latency apart: no look per identical poll.
		if len(rec.Looks) == 0 || rec.Looks[0] != 3 {
			t.Fatalf("looks at %v, want the first at 3 s", rec.Looks)
		}
		for i := 1; i < len(rec.Looks); i++ {
			if d := rec.Looks[i] - rec.Looks[i-1]; d != cfg.Poll+3 {
				t.Fatalf("looks at %v: %d s apart, want the requeue's %d", rec.Looks, d, cfg.Poll+3)
			}
		}
	})
	t.Run("every look has a cause a latency before", func(t *testing.T) {
		w, err := Scenario("spikes", ScenarioParams{Partitions: 12, Capacity: 100, Seed: 2, Duration: 1800})
		if err != nil {
			t.Fatal(err)
		}
		const L = 2
		cfg := testConfig()
		cfg.ReconcileLatency = L
		rec := Record(cfg, w, epoch)
		if len(rec.Events) < 2 {
			t.Fatalf("only %d scale events: the run exercises too little", len(rec.Events))
		}
		causes := map[int]bool{}
		for _, p := range rec.Polls {
			if p.Delivered {
				causes[p.Second+L] = true
			}
		}
		for _, r := range rec.Ready[1:] {
			causes[r.Second+L] = true
		}
		for _, e := range rec.Events {
			causes[e.Second+L] = true
		}
		for i, s := range rec.Looks {
			// A requeue comes a poll interval and the latency after an
			// earlier look.
			requeue := slices.ContainsFunc(rec.Looks[:i], func(p int) bool { return p+cfg.Poll+L == s })
			if !causes[s] && !requeue {
				t.Errorf("a look at %d s with no cause", s)
			}
		}
		for _, e := range rec.Events {
			if !slices.Contains(rec.Looks, e.Second) {
				t.Errorf("scale event at %d s without a look", e.Second)
			}
			if e.Reason == "" {
				t.Errorf("scale event at %d s without a reason", e.Second)
			}
		}
	})
}

// TestEventsListEveryChange: the events chain from the initial replicas,
// one per change.
func TestEventsListEveryChange(t *testing.T) {
	w, err := Scenario("step", ScenarioParams{Partitions: 24, Capacity: 100, Duration: 2400})
	if err != nil {
		t.Fatal(err)
	}
	res := Run(testConfig(), w)
	for _, p := range []string{PolicyLagscale, PolicyKEDA} {
		m, s := res.Metrics[p], res.Series[p]
		if len(m.Events) != m.ScaleEvents || m.ScaleEvents == 0 {
			t.Fatalf("%s: %d events listed, %d counted", p, len(m.Events), m.ScaleEvents)
		}
		for _, e := range m.Events {
			if s.Replicas[e.Second] != e.From || (e.Second+1 < len(s.Replicas) && s.Replicas[e.Second+1] != e.To) {
				t.Errorf("%s: event %+v, replicas %d then %d", p, e, s.Replicas[e.Second], s.Replicas[e.Second+1])
			}
		}
	}
}

// TestGridCutOffKeepsBestAndFrontier: stopping a KEDA run once an
// SLO-meeting configuration matches it changes neither keda-best nor the
// frontier.
func TestGridCutOffKeepsBestAndFrontier(t *testing.T) {
	w, err := Scenario("spikes", ScenarioParams{Partitions: 12, Capacity: 100, Seed: 4, Duration: 1800})
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig().withDefaults()
	res := Run(cfg, w)
	rates := w.rates()
	var meeting []KEDAPoint
	for _, c := range KEDAGrid(cfg.Capacity, cfg.SLO, 1, w.Partitions) {
		m, _, _ := run(cfg, w, rates, newKEDA(c), initialReplicas(cfg, w, rates), -1)
		if m.SLOAttainment >= attainmentTarget {
			meeting = append(meeting, KEDAPoint{Metrics: m, Parameters: c})
		}
	}
	want := frontier(meeting)
	if len(want) < 2 {
		t.Fatalf("a frontier of %d points tests too little", len(want))
	}
	if !reflect.DeepEqual(res.KEDAFrontier, want) {
		t.Errorf("frontier with the cut-off %+v\nwithout %+v", res.KEDAFrontier, want)
	}
	if !reflect.DeepEqual(*res.KEDABest, want[0]) {
		t.Errorf("keda-best %+v, want %+v", *res.KEDABest, want[0])
	}
}

func TestFamily(t *testing.T) {
	shapes := map[string]bool{}
	for seed := uint64(1); seed <= 60; seed++ {
		for _, split := range []string{SplitTrain, SplitTest} {
			w, cfg, err := FamilyRun(split, seed)
			if err != nil {
				t.Fatal(err)
			}
			shapes[w.Name] = true
			if need := maxPartitionNeed(w, cfg.Capacity); need > feasibleShare+1e-9 {
				t.Errorf("%s seed %d: a partition needs %.3f of a replica", split, seed, need)
			}
			if cfg.Startup < 5 || cfg.Startup > 180 || cfg.Rebalance < 1 || cfg.Rebalance > 30 || cfg.Poll < 5 || cfg.Poll > 30 ||
				cfg.SLO < 10 || cfg.SLO > 300 || w.Partitions < 3 || w.Partitions > 128 {
				t.Errorf("%s seed %d: operating point out of range: %+v, %d partitions", split, seed, cfg, w.Partitions)
			}
		}
		a, ca, _ := FamilyRun(SplitTrain, seed)
		b, cb, _ := FamilyRun(SplitTest, seed)
		if reflect.DeepEqual(ca, cb) || reflect.DeepEqual(a.Rows, b.Rows) {
			t.Errorf("seed %d is the same run in train and test", seed)
		}
	}
	for _, s := range FamilyShapes {
		if !shapes[s] {
			t.Errorf("no seed drew shape %s", s)
		}
	}
	if _, _, err := FamilyRun("validation", 1); err == nil {
		t.Error("an unknown split was accepted")
	}
}
