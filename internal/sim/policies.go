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
	// PolicyLagscale is the operator's scaler.
	PolicyLagscale = "lagscale"
	// PolicyKEDA is KEDA's Kafka scaler behind an HPA, every knob at its
	// default and lagThreshold at capacity x SLO.
	PolicyKEDA = "keda-hpa"
	// PolicyKEDABest is the cheapest configuration of the KEDA grid that
	// reaches 0.99 SLO attainment.
	PolicyKEDABest = "keda-best"
	// PolicyKEDAFrontier is the JSON key of the Pareto frontier of the
	// KEDA grid's SLO-meeting configurations.
	PolicyKEDAFrontier = "keda-frontier"
	// PolicyOracle knows the inflow and runs ceil(inflow / capacity)
	// replicas at every second, with no start-up and no rebalance.
	PolicyOracle = "oracle"
	// PolicyOraclePartitions is the oracle limited to replica counts that
	// a consumer group can use: the fewest replicas for which the
	// consumer owning the ceil(P/r) hottest partitions keeps up.
	PolicyOraclePartitions = "oracle-partitions"
)

// Policies lists the policy names in report order.
var Policies = []string{PolicyLagscale, PolicyKEDA, PolicyKEDABest, PolicyOracle, PolicyOraclePartitions}

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
	sc := v1alpha1.ScalingSpec{
		MinReplicas:          ptr(int32(1)),
		MaxLagSeconds:        ptr(int32(math.Round(cfg.SLO))),
		ThroughputPerReplica: ptr(int64(math.Round(cfg.Capacity))),
	}
	if cfg.Share && cfg.ShareMaxReplicas > 0 {
		// The API requires maxReplicas for groupType Share; the simulator
		// lets 0 mean no bound, as Config says.
		sc.MaxReplicas = ptr(int32(cfg.ShareMaxReplicas))
	}
	spec := opscaler.Spec(sc, 0)
	spec.Share = cfg.Share
	return spec
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
		if p.head < len(p.queue) {
			// The record at the commit carries its production second as
			// its timestamp, which the tracker reads as the engine would.
			offs[i].CommittedTimestamp = epoch.Add(time.Duration(p.queue[p.head].second) * time.Second)
		}
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
	return &Driver{spec: spec, sc: opscaler.New(time.Time{}, opscaler.Learned{})}
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
	dec := d.sc.Decide(d.spec, current, now)
	d.sc.Commit(dec)
	if dec.Changed {
		d.sc.Applied(dec.Replicas, 0)
	}
	return dec.Replicas
}

// ceilReplicas is ceil(inflow/capacity), ignoring floating-point dust so
// that 1000.0000001/100 is 10, not 11.
func ceilReplicas(inflow, capacity float64) int {
	return int(math.Ceil(inflow/capacity - 1e-9))
}
