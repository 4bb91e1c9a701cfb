package sim

import (
	"reflect"
	"testing"
)

// kedaGroup is a group of cur replicas over P partitions whose total lag
// is lag, spread over the partitions.
func kedaGroup(P, cur int, lag int64) *group {
	g := newGroup(testConfig().withDefaults(), Workload{Partitions: P, Duration: 1}, cur)
	setLag(g, lag)
	return g
}

func setLag(g *group, lag int64) {
	P := int64(len(g.parts))
	for i := range g.parts {
		n := lag / P
		if int64(i) < lag%P {
			n++
		}
		g.parts[i].end = g.parts[i].committed + n
	}
}

// syncHPA drives k at second s on g and applies its answer.
func syncHPA(k *kedaPolicy, g *group, s int) int {
	n := k.step(g, s)
	g.scaleTo(n, s)
	return n
}

func TestKEDAHPA(t *testing.T) {
	tests := []struct {
		name string
		c    KEDAConfig
		cur  int
		lags []int64 // lag at seconds 0, 15, 30, ...
		want []int   // replicas after each sync
	}{
		{"ceil(lag / lagThreshold)", DefaultKEDA(100, 1, 24), 4, []int64{750}, []int{8}},
		{"within the tolerance nothing changes", DefaultKEDA(100, 1, 24), 4, []int64{440, 360}, []int{4, 4}},
		{"zero tolerance follows every change", KEDAConfig{LagThreshold: 100, MinReplicas: 1, MaxReplicas: 24}, 4, []int64{440, 360}, []int{5, 4}},
		{"scale-up at most max(4 pods, 100%) per sync", DefaultKEDA(100, 1, 24), 1, []int64{5000, 5000, 5000}, []int{5, 10, 20}},
		{"scale-up policy of 100 pods per sync", KEDAConfig{LagThreshold: 100, Tolerance: 0.1, MinReplicas: 1, MaxReplicas: 24, ScaleUpPods: 100, ScaleUpPercent: 100}, 1, []int64{5000}, []int{24}},
		{"scale-up policy of 900% per sync", KEDAConfig{LagThreshold: 100, Tolerance: 0.1, MinReplicas: 1, MaxReplicas: 24, ScaleUpPods: 4, ScaleUpPercent: 900}, 2, []int64{5000, 5000}, []int{20, 24}},
		{"metric capped at partitions x lagThreshold", DefaultKEDA(100, 1, 50), 8, []int64{100000}, []int{16}},
		{"maxReplicas caps", DefaultKEDA(100, 1, 6), 4, []int64{2000}, []int{6}},
		{"minReplicas floors", DefaultKEDA(100, 2, 24), 4, []int64{0}, []int{2}},
		{"scale-down waits for the window", KEDAConfig{LagThreshold: 100, Tolerance: 0.1, ScaleDownStabilizationSeconds: 30, MinReplicas: 1, MaxReplicas: 24},
			8, []int64{800, 200, 200}, []int{8, 8, 2}},
		{"no window scales down at once", KEDAConfig{LagThreshold: 100, Tolerance: 0.1, MinReplicas: 1, MaxReplicas: 24}, 8, []int64{800, 200}, []int{8, 2}},
		{"the window holds the highest recommendation", KEDAConfig{LagThreshold: 100, Tolerance: 0.1, ScaleDownStabilizationSeconds: 30, MinReplicas: 1, MaxReplicas: 24},
			8, []int64{800, 500, 200, 200}, []int{8, 8, 5, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := kedaGroup(24, tt.cur, 0)
			k := newKEDA(tt.c)
			var got []int
			for i, l := range tt.lags {
				setLag(g, l)
				got = append(got, syncHPA(k, g, i*hpaSyncSeconds))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("replicas %v, want %v", got, tt.want)
			}
		})
	}
}

// TestKEDAMetricAge checks that keda-hpa reads the lag at every HPA sync
// while a cached metric is the one KEDA read at its last poll.
func TestKEDAMetricAge(t *testing.T) {
	for _, tt := range []struct {
		cache int
		want  int
	}{{0, 8}, {30, 4}} {
		g := kedaGroup(24, 4, 400)
		k := newKEDA(KEDAConfig{LagThreshold: 100, Tolerance: 0.1, MetricCacheSeconds: tt.cache, MinReplicas: 1, MaxReplicas: 24})
		syncHPA(k, g, 0)
		setLag(g, 800)
		if got := syncHPA(k, g, 15); got != tt.want {
			t.Errorf("metric cache %ds: %d replicas at 15 s after the lag rose at 1 s, want %d", tt.cache, got, tt.want)
		}
	}
}

// TestKEDAActivation checks KEDA's own part: with minReplicaCount 0 it
// sleeps after cooldownPeriod without lag above activation and wakes on it.
func TestKEDAActivation(t *testing.T) {
	c := DefaultKEDA(100, 0, 24)
	c.ActivationLagThreshold = 50
	g := kedaGroup(24, 1, 40)
	k := newKEDA(c)
	k.lastActive = 0
	for s := 0; s <= kedaCooldownPeriod; s++ {
		if n := syncHPA(k, g, s); n == 0 && s < kedaCooldownPeriod {
			t.Fatalf("scaled to zero at %d s, before the %d s cooldown", s, kedaCooldownPeriod)
		}
	}
	if len(g.pods) != 0 {
		t.Fatalf("%d replicas after the cooldown with lag at activation, want 0", len(g.pods))
	}
	// The HPA does nothing at zero; lag at the threshold does not wake.
	if n := syncHPA(k, g, kedaCooldownPeriod+15); n != 0 {
		t.Fatalf("woke to %d at lag 40 <= activation 50", n)
	}
	setLag(g, 60)
	if n := syncHPA(k, g, kedaCooldownPeriod+30); n != 1 {
		t.Fatalf("lag 60 > activation 50 woke to %d, want 1", n)
	}
}

func TestFrontier(t *testing.T) {
	pt := func(rs int64, ev int) KEDAPoint {
		return KEDAPoint{Metrics: Metrics{ReplicaSeconds: rs, ScaleEvents: ev}}
	}
	got := frontier([]KEDAPoint{pt(100, 20), pt(90, 30), pt(100, 25), pt(120, 10), pt(130, 10), pt(90, 30), pt(95, 20)})
	want := []KEDAPoint{pt(90, 30), pt(95, 20), pt(120, 10)}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("frontier %v, want %v", got, want)
	}
	m := Metrics{ReplicaSeconds: 100, ScaleEvents: 10}
	for _, tt := range []struct {
		p    KEDAPoint
		want bool
	}{{pt(100, 10), false}, {pt(99, 10), true}, {pt(100, 9), true}, {pt(90, 11), false}} {
		if got := tt.p.Dominates(m); got != tt.want {
			t.Errorf("(%d, %d) dominates (100, 10): %v, want %v", tt.p.ReplicaSeconds, tt.p.ScaleEvents, got, tt.want)
		}
	}
}

func TestKEDAGrid(t *testing.T) {
	grid := KEDAGrid(100, 30, 1, 24)
	if len(grid) != 8*2*4*3*2*2 {
		t.Fatalf("%d configurations, want 768", len(grid))
	}
	seen := map[KEDAConfig]bool{}
	ths := map[int64]bool{}
	ups := map[[2]int]bool{}
	for _, c := range grid {
		seen[c] = true
		ths[c.LagThreshold] = true
		ups[[2]int{c.ScaleUpPods, c.ScaleUpPercent}] = true
	}
	if want := map[[2]int]bool{{4, 100}: true, {4, 900}: true, {100, 100}: true, {100, 900}: true}; !reflect.DeepEqual(ups, want) {
		t.Errorf("scale-up policies %v, want %v", ups, want)
	}
	if len(seen) != len(grid) {
		t.Errorf("%d distinct configurations of %d", len(seen), len(grid))
	}
	want := map[int64]bool{3000: true, 2250: true, 1500: true, 1125: true, 750: true, 375: true, 188: true, 94: true}
	if !reflect.DeepEqual(ths, want) {
		t.Errorf("lagThresholds %v, want %v", ths, want)
	}
}

func TestPartitionReplicas(t *testing.T) {
	even := func(P int, total float64) []float64 {
		r := make([]float64, P)
		for i := range r {
			r[i] = total / float64(P)
		}
		return r
	}
	hot := append([]float64{50}, even(23, 23*100.0/12)...) // hot 50, others 8.33
	tests := []struct {
		name  string
		rates []float64
		want  int
	}{
		{"10 replicas' worth over 24 partitions needs 12 (2 each)", even(24, 1000), 12},
		{"2 replicas' worth over 24 needs 2", even(24, 200), 2},
		{"a tenth of a replica needs 1", even(24, 10), 1},
		{"a hot partition: it and 6 others fit one replica", hot, 4},
		{"a partition above capacity: one each", append([]float64{150}, even(5, 10)...), 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := partitionReplicas(tt.rates, 100, make([]float64, len(tt.rates))); got != tt.want {
				t.Errorf("%d replicas, want %d", got, tt.want)
			}
		})
	}
}
