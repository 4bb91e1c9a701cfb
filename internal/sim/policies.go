package sim

import (
	"math"
	"time"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/autoscale"
	"github.com/lagscale/lagscale/internal/lag"
	opscaler "github.com/lagscale/lagscale/internal/scaler"
)

// Policy names, as they appear in the table and as JSON keys.
const (
	PolicyLagscale  = "lagscale"
	PolicyKEDA      = "keda-hpa"
	PolicyKEDATuned = "keda-hpa-tuned"
	PolicyOracle    = "oracle"
	kedaPollSeconds = 30  // KEDA's default pollingInterval
	hpaSyncSeconds  = 15  // kube-controller-manager's --horizontal-pod-autoscaler-sync-period
	hpaTolerance    = 0.1 // HPA's default tolerance
	hpaDownWindow   = 300 // HPA's default scale-down stabilization, seconds
	hpaUpPods       = 4   // HPA's default scale-up policy: 4 pods or 100% per 15 s, the larger
)

// Policies lists the policy names in report order.
var Policies = []string{PolicyLagscale, PolicyKEDA, PolicyKEDATuned, PolicyOracle}

// epoch is the wall time of second 0; autoscale wants times, not seconds.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// point is a value at a second.
type point struct {
	t int
	v int64
}

// lagscalePolicy is the operator's scaler (internal/scaler), fed every
// poll with a snapshot that internal/lag's own arithmetic computes from the
// simulated offsets, and asked for a decision every second, as reconciles
// between polls do.
type lagscalePolicy struct {
	poll    int
	tracker *lag.Tracker
	drv     *Driver
}

func newLagscale(cfg Config) *lagscalePolicy {
	return &lagscalePolicy{
		poll:    cfg.Poll,
		tracker: lag.NewTracker(time.Duration(cfg.Poll)*time.Second, lag.ResetEarliest),
		drv:     NewDriver(LagscaleSpec(cfg)),
	}
}

// LagscaleSpec is the autoscale spec the simulator runs lagscale with: an
// EventConsumer that sets only minReplicas 1, maxLagSeconds (the SLO) and
// throughputPerReplica (the capacity), every other field at the API's
// default, converted as the operator converts it.
func LagscaleSpec(cfg Config) autoscale.Spec {
	cfg = cfg.withDefaults()
	return opscaler.Spec(v1alpha1.ScalingSpec{
		MinReplicas:          ptr(int32(1)),
		MaxLagSeconds:        ptr(int32(math.Round(cfg.SLO))),
		ThroughputPerReplica: ptr(int64(math.Round(cfg.Capacity))),
	}, 0)
}

func ptr[T any](v T) *T { return &v }

func (l *lagscalePolicy) step(g *group, s int) int {
	now := epoch.Add(time.Duration(s) * time.Second)
	var snap *lag.Snapshot
	if s%l.poll == 0 {
		o := l.observe(g, s, now)
		snap = &o
	}
	return int(l.drv.Step(snap, now, int32(len(g.pods)), int32(g.ready())))
}

// observe reads the group's offsets at the end of second s, as one poll of
// the lag engine would.
func (l *lagscalePolicy) observe(g *group, s int, now time.Time) lag.Snapshot {
	offs := make([]lag.PartitionOffsets, len(g.parts))
	for i := range g.parts {
		p := &g.parts[i]
		offs[i] = lag.PartitionOffsets{Topic: "sim", Partition: int32(i), End: p.end, Committed: p.committed, HasCommit: true}
	}
	state := "Stable"
	switch {
	case g.paused(s):
		state = "PreparingRebalance"
	case g.ready() == 0:
		state = "Empty"
	}
	return l.tracker.Observe(now, offs, g.ready(), state)
}

// Driver runs one consumer's scaler the way the reconciler does: observe a
// snapshot when a new one arrives, decide on every look. The simulator
// drives lagscale through it, and the controllers' twin test checks that
// the reconciler gives the same replicas on the same snapshots.
type Driver struct {
	spec autoscale.Spec
	sc   *opscaler.Scaler
}

// NewDriver returns a Driver for spec.
func NewDriver(spec autoscale.Spec) *Driver {
	return &Driver{spec: spec, sc: opscaler.New(time.Time{})}
}

// State returns the scaler's autoscale State, for tests.
func (d *Driver) State() autoscale.State { return d.sc.State() }

// Step observes snap when it is not nil, then decides at now for a group
// with current replicas of which ready are ready, and returns the replicas
// to run.
func (d *Driver) Step(snap *lag.Snapshot, now time.Time, current, ready int32) int32 {
	if snap != nil {
		d.sc.Observe(*snap, now)
	}
	dec := d.sc.Decide(d.spec, current, ready, now)
	if dec.Changed {
		d.sc.Applied(dec.Replicas, 0)
	}
	return dec.Replicas
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
