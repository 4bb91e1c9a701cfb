package sim

import (
	"math"
	"sort"
	"time"

	"github.com/lagscale/lagscale/internal/autoscale"
)

// Policy names, as they appear in the table and as JSON keys.
const (
	PolicyLagscale     = "lagscale"
	PolicyKEDA         = "keda-hpa"
	PolicyKEDATuned    = "keda-hpa-tuned"
	PolicyOracle       = "oracle"
	lagscaleStabilize  = 120 * time.Second // the API's default scaleDownStabilizationSeconds
	kedaPollSeconds    = 30                // KEDA's default pollingInterval
	hpaSyncSeconds     = 15                // kube-controller-manager's --horizontal-pod-autoscaler-sync-period
	hpaTolerance       = 0.1               // HPA's default tolerance
	hpaDownWindow      = 300               // HPA's default scale-down stabilization, seconds
	hpaUpPods          = 4                 // HPA's default scale-up policy: 4 pods or 100% per 15 s, the larger
	lagEngineWindowPol = 5                 // the lag engine's HealthWindow: rates are smoothed over 5 polls
)

// Policies lists the policy names in report order.
var Policies = []string{PolicyLagscale, PolicyKEDA, PolicyKEDATuned, PolicyOracle}

// epoch is the wall time of second 0; autoscale wants times, not seconds.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// point is an offset observed at a second.
type point struct {
	t int
	v int64
}

// lagEngine reproduces what internal/lag reports, from offsets read every
// poll: rates are slopes over a window of polls, and the time lag of a
// partition is estimated by interpolating when the end offset passed the
// committed one. It sees nothing the real engine could not.
type lagEngine struct {
	window  int
	ends    [][]point
	commits [][]point
}

func newLagEngine(partitions, poll int) *lagEngine {
	return &lagEngine{window: lagEngineWindowPol * poll, ends: make([][]point, partitions), commits: make([][]point, partitions)}
}

// valueAt interpolates a series at second t.
func valueAt(pts []point, t int) float64 {
	i := sort.Search(len(pts), func(i int) bool { return pts[i].t >= t })
	switch {
	case i == 0:
		return float64(pts[0].v)
	case i == len(pts):
		return float64(pts[len(pts)-1].v)
	}
	a, b := pts[i-1], pts[i]
	return float64(a.v) + float64(t-a.t)/float64(b.t-a.t)*float64(b.v-a.v)
}

func (e *lagEngine) rate(pts []point) float64 {
	if len(pts) < 2 {
		return 0
	}
	end := pts[len(pts)-1]
	start := max(end.t-e.window, pts[0].t)
	if end.t <= start {
		return 0
	}
	return max((float64(end.v)-valueAt(pts, start))/float64(end.t-start), 0)
}

// producedAt estimates when record off was appended: when the end offset
// reached off+1.
func producedAt(ends []point, off int64, rate float64) float64 {
	target := off + 1
	i := sort.Search(len(ends), func(i int) bool { return ends[i].v >= target })
	if i == len(ends) {
		return float64(ends[len(ends)-1].t)
	}
	if i == 0 {
		if rate > 0 {
			return float64(ends[0].t) - float64(ends[0].v-target)/rate
		}
		return float64(ends[0].t)
	}
	a, b := ends[i-1], ends[i]
	return float64(a.t) + float64(target-a.v)/float64(b.v-a.v)*float64(b.t-a.t)
}

// observe reads the group's offsets at the end of second s.
func (e *lagEngine) observe(g *group, s int) autoscale.Observation {
	o := autoscale.Observation{
		Time:           epoch.Add(time.Duration(s) * time.Second),
		PartitionCount: len(g.parts),
		Members:        g.ready(),
		GroupState:     "Stable",
	}
	switch {
	case g.paused(s):
		o.GroupState = "PreparingRebalance"
	case o.Members == 0:
		o.GroupState = "Empty"
	}
	for i := range g.parts {
		p := &g.parts[i]
		e.ends[i] = append(e.ends[i], point{s, p.end})
		e.commits[i] = append(e.commits[i], point{s, p.committed})
		po := autoscale.PartitionObs{
			Lag:             p.end - p.committed,
			ProductionRate:  e.rate(e.ends[i]),
			ConsumptionRate: e.rate(e.commits[i]),
		}
		if po.Lag > 0 {
			po.TimeLagSeconds = max(float64(s)-producedAt(e.ends[i], p.committed, po.ProductionRate), 0)
		}
		o.Partitions = append(o.Partitions, po)
		o.TotalLag += po.Lag
		o.ProductionRate += po.ProductionRate
		o.ConsumptionRate += po.ConsumptionRate
		o.TimeLagSeconds = max(o.TimeLagSeconds, po.TimeLagSeconds)
	}
	return o
}

// lagscalePolicy is autoscale.Decide fed by the lag engine every poll.
type lagscalePolicy struct {
	spec    autoscale.Spec
	poll    int
	eng     *lagEngine
	history []autoscale.Observation
	state   autoscale.State
}

func newLagscale(cfg Config, partitions int) *lagscalePolicy {
	return &lagscalePolicy{
		spec: autoscale.Spec{
			MinReplicas:            1,
			Policy:                 autoscale.PolicyTimeLag,
			MaxLagSeconds:          cfg.SLO,
			ThroughputPerReplica:   cfg.Capacity,
			ScaleDownStabilization: lagscaleStabilize,
			BurstMemory:            autoscale.DefaultBurstMemory,
		},
		poll: cfg.Poll,
		eng:  newLagEngine(partitions, cfg.Poll),
	}
}

func (l *lagscalePolicy) step(g *group, s int) int {
	if s%l.poll != 0 {
		return len(g.pods)
	}
	o := l.eng.observe(g, s)
	l.history = append(l.history, o)
	// Keep what Decide needs: the stabilization window and the learning
	// span, with room to spare.
	if keep := int(2*lagscaleStabilize/time.Second) / l.poll; len(l.history) > keep {
		l.history = l.history[len(l.history)-keep:]
	}
	d := autoscale.Decide(autoscale.Input{
		Spec:            l.spec,
		History:         l.history,
		State:           l.state,
		CurrentReplicas: int32(len(g.pods)),
		ReadyReplicas:   int32(g.ready()),
		Now:             o.Time,
	})
	l.state = d.State
	return int(d.Replicas)
}

// kedaPolicy is KEDA's Kafka scaler behind a Kubernetes HPA with default
// behaviour. KEDA reads the total lag every 30 s (capped at lagThreshold
// per partition, as it does without allowIdleConsumers); the HPA syncs
// every 15 s with the AverageValue target lagThreshold, ignores ratios
// within 10% of 1, scales up by at most max(4 pods, 100%) per sync and
// scales down to the highest recommendation of the last 300 s.
type kedaPolicy struct {
	threshold int64
	maxR      int
	metric    int64
	have      bool
	recs      []point // HPA recommendations, v = replicas
}

func (k *kedaPolicy) step(g *group, s int) int {
	cur := len(g.pods)
	if s%kedaPollSeconds == 0 {
		var lag int64
		for i := range g.parts {
			lag += g.parts[i].end - g.parts[i].committed
		}
		k.metric = min(lag, k.threshold*int64(len(g.parts)))
		k.have = true
	}
	if s%hpaSyncSeconds != 0 || !k.have {
		return cur
	}
	rec := cur
	ratio := float64(k.metric) / (float64(k.threshold) * float64(max(cur, 1)))
	if math.Abs(ratio-1) > hpaTolerance {
		rec = int(math.Ceil(float64(k.metric) / float64(k.threshold)))
	}
	rec = min(max(rec, 1), k.maxR)
	k.recs = append(k.recs, point{s, int64(rec)})
	for len(k.recs) > 0 && k.recs[0].t < s-hpaDownWindow {
		k.recs = k.recs[1:]
	}
	down := 0
	for _, r := range k.recs {
		down = max(down, int(r.v))
	}
	switch {
	case rec > cur:
		return min(rec, max(cur+hpaUpPods, 2*cur))
	case down < cur:
		return down
	}
	return cur
}

// oracle needs ceil(inflow/capacity) replicas at every second and pays no
// start-up or rebalance: a lower bound on replica-seconds.
func oracle(cfg Config, w Workload, rates [][]float64) Metrics {
	var m Metrics
	prev := -1
	for s := range w.Duration {
		in := 0.0
		for _, r := range rates[s] {
			in += r
		}
		n := ceilReplicas(in, cfg.Capacity*w.capacityFactor(s))
		m.ReplicaSeconds += int64(n)
		if prev >= 0 && n != prev {
			m.ScaleEvents++
		}
		prev = n
	}
	m.SLOAttainment = 1
	return m
}

// ceilReplicas is ceil(inflow/capacity), ignoring floating-point dust so
// that 1000.0000001/100 is 10, not 11.
func ceilReplicas(inflow, capacity float64) int {
	return int(math.Ceil(inflow/capacity - 1e-9))
}
