package sim

import (
	"math"
	"reflect"
	"slices"
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

// lagscalePolicy is the operator's scaler (internal/scaler) at the
// operator's cadence. Every poll, internal/lag's own arithmetic turns the
// simulated offsets into the snapshot the engine would store. The scaler is
// looked at only when the operator would reconcile: a latency after a
// snapshot whose figures changed (the engine sends no event for an
// identical one), after a change of the Deployment (its own write, a pod
// becoming ready or leaving) and after a requeue that decideReplicas asked
// for. Each look reads the newest stored snapshot, as a reconcile does.
type lagscalePolicy struct {
	poll, latency int
	epoch         time.Time
	stale         map[int]bool
	partial       map[int]bool
	tracker       *lag.Tracker
	drv           *Driver

	stored    *lag.Snapshot // the engine's newest snapshot
	due       []int         // seconds at which a reconcile is queued
	requeue   int           // second a requeue is due, -1 when none
	lastReady int
	why       string
	rec       *Recording
}

func newLagscale(cfg Config) *lagscalePolicy {
	return newLagscaleAt(cfg, epoch)
}

func newLagscaleAt(cfg Config, at time.Time) *lagscalePolicy {
	l := &lagscalePolicy{
		poll:      cfg.Poll,
		latency:   max(0, cfg.ReconcileLatency),
		epoch:     at,
		stale:     map[int]bool{},
		partial:   map[int]bool{},
		tracker:   lag.NewTracker(time.Duration(cfg.Poll)*time.Second, lag.ResetEarliest),
		drv:       NewDriver(LagscaleSpec(cfg)),
		requeue:   -1,
		lastReady: -1,
	}
	for _, s := range cfg.StalePolls {
		l.stale[s] = true
	}
	for _, s := range cfg.PartialPolls {
		l.partial[s] = true
	}
	return l
}

// LagscaleSpec is the autoscale spec the simulator runs lagscale with,
// converted as the operator converts it (fields left empty get the API's
// defaults). Without cfg.Scaling it is an EventConsumer that sets only
// minReplicas 1 and maxLagSeconds (the SLO): no throughputPerReplica, so
// the capacity is learned. cfg.Prior sets throughputPerReplica to Prior x
// Capacity where the spec sets none.
func LagscaleSpec(cfg Config) autoscale.Spec {
	cfg = cfg.withDefaults()
	var sc v1alpha1.ScalingSpec
	if cfg.Scaling != nil {
		sc = *cfg.Scaling.DeepCopy()
	} else {
		sc = v1alpha1.ScalingSpec{
			MinReplicas:   ptr(int32(1)),
			MaxLagSeconds: ptr(int32(math.Round(cfg.SLO))),
		}
		if cfg.Share && cfg.ShareMaxReplicas > 0 {
			// The API requires maxReplicas for groupType Share; the
			// simulator lets 0 mean no bound, as Config says.
			sc.MaxReplicas = ptr(int32(cfg.ShareMaxReplicas))
		}
	}
	if sc.ThroughputPerReplica == nil && cfg.Prior > 0 {
		sc.ThroughputPerReplica = ptr(max(1, int64(math.Round(cfg.Prior*cfg.Capacity))))
	}
	spec := opscaler.Spec(sc, 0)
	spec.Share = cfg.Share
	spec.Without = cfg.Without
	return spec
}

func ptr[T any](v T) *T { return &v }

func (l *lagscalePolicy) reason() string { return l.why }

func (l *lagscalePolicy) step(g *group, s int) int {
	now := l.epoch.Add(time.Duration(s) * time.Second)
	if s%l.poll == 0 {
		snap := l.observe(g, s, now)
		delivered := l.stored == nil || !SameSnapshot(*l.stored, snap)
		l.stored = &snap
		if delivered {
			l.due = append(l.due, s+l.latency)
		}
		if l.rec != nil {
			l.rec.Polls = append(l.rec.Polls, RecordedPoll{Second: s, Snapshot: snap, Delivered: delivered})
		}
	}
	if r := g.ready(); r != l.lastReady {
		if l.lastReady >= 0 {
			// The Deployment's status changed: a watch event.
			l.due = append(l.due, s+l.latency)
		}
		l.lastReady = r
		if l.rec != nil {
			l.rec.Ready = append(l.rec.Ready, ReadyChange{Second: s, Ready: r})
		}
	}
	cur := int32(len(g.pods))
	// Reconciles queued for the same second are one reconcile, as the
	// work queue merges them; the one that writes queues another (its own
	// Deployment change), looked at in this second only without latency.
	for range 3 {
		if !l.takeDue(s) {
			break
		}
		if l.rec != nil {
			l.rec.Looks = append(l.rec.Looks, s)
		}
		if l.stored == nil {
			continue // no snapshot yet: the reconciler holds the replicas
		}
		d, requeue := l.drv.Look(l.stored, now, cur, int32(g.ready()))
		if requeue {
			// The work queue keeps the earlier of two delays.
			if at := s + l.poll + l.latency; l.requeue < 0 || at < l.requeue {
				l.requeue = at
			}
		}
		if d.Replicas != cur {
			l.why = d.Reason
			cur = d.Replicas
			l.due = append(l.due, s+l.latency)
		}
	}
	return int(cur)
}

// takeDue removes every reconcile due by second s and reports whether
// there was one.
func (l *lagscalePolicy) takeDue(s int) bool {
	found := false
	if l.requeue >= 0 && l.requeue <= s {
		l.requeue, found = -1, true
	}
	kept := l.due[:0]
	for _, d := range l.due {
		if d <= s {
			found = true
			continue
		}
		kept = append(kept, d)
	}
	l.due = kept
	return found
}

// observe reads the group's offsets at the end of second s, as one poll of
// the lag engine would. A failed poll (StalePolls) keeps the previous
// snapshot marked stale, as the engine does; a partial one (PartialPolls)
// has no offsets for partition 0.
func (l *lagscalePolicy) observe(g *group, s int, now time.Time) lag.Snapshot {
	if l.stale[s] && l.stored != nil {
		prev := *l.stored
		prev.Stale, prev.Reachable, prev.Error = true, false, "simulated poll failure"
		return prev
	}
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
	snap := l.tracker.Observe(now, offs, g.ready(), state)
	if l.partial[s] && len(snap.Partitions) > 0 {
		snap.Partitions = slices.Clone(snap.Partitions)
		snap.Partitions[0].Error = "offsets unknown"
	}
	return snap
}

// SameSnapshot reports whether two snapshots have the same figures: the
// lag engine sends no event for a snapshot that is the same as the
// previous one but for its read time and poll count.
func SameSnapshot(a, b lag.Snapshot) bool {
	a.Time, b.Time = time.Time{}, time.Time{}
	a.Polls, b.Polls = 0, 0
	return reflect.DeepEqual(a, b)
}

// Driver runs one consumer's scaler the way the reconciler's
// decideReplicas does: observe the newest snapshot, decide, and ask for a
// requeue when the decision holds back a change. The simulator drives
// lagscale through it; the controllers' twin test replays a simulated run
// through the reconciler and checks that it scales at the same seconds.
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

// Look is one reconcile at now: it observes snap, decides for a group with
// current replicas of which ready are ready, and reports whether the
// reconciler would requeue (a change wanted but held back). The decision's
// write always succeeds here, so it is committed at once.
func (d *Driver) Look(snap *lag.Snapshot, now time.Time, current, ready int32) (autoscale.Decision, bool) {
	d.sc.Observe(*snap, now)
	dec := d.sc.Decide(d.spec, current, now)
	d.sc.Commit(dec)
	if dec.Changed {
		d.sc.Applied(dec.Replicas, 0)
	}
	return dec, dec.Recommendation != dec.Replicas || dec.Hold
}

// Recording is a closed-loop run of lagscale as the operator saw it: what
// the lag engine stored at each poll, when the Deployment's ready replicas
// changed, when the operator looked, and what it did.
type Recording struct {
	// Epoch is the time of second 0.
	Epoch time.Time
	// Polls are the engine's snapshots, one per poll.
	Polls []RecordedPoll
	// Ready are the changes of the ready replicas (group members).
	Ready []ReadyChange
	// Looks are the seconds at which the operator reconciled.
	Looks []int
	// Events are lagscale's scale events.
	Events []ScaleEvent
}

// RecordedPoll is one snapshot the lag engine stored.
type RecordedPoll struct {
	// Second is when the poll read the offsets.
	Second int
	// Snapshot is what the engine stored.
	Snapshot lag.Snapshot
	// Delivered is false when the figures equal the previous snapshot's:
	// the engine sends no lag event for it.
	Delivered bool
}

// ReadyChange is the ready replica count from Second on.
type ReadyChange struct {
	Second, Ready int
}

// Record runs lagscale alone on w, closed loop (members follow the
// replicas it sets), with second 0 at epoch, and records what the
// operator saw and did.
func Record(cfg Config, w Workload, at time.Time) Recording {
	cfg = cfg.withDefaults()
	rates := w.rates()
	pol := newLagscaleAt(cfg, at)
	rec := &Recording{Epoch: at}
	pol.rec = rec
	m, _, _ := run(cfg, w, rates, pol, initialReplicas(cfg, w, rates), -1)
	rec.Events = m.Events
	return *rec
}

// ceilReplicas is ceil(inflow/capacity), ignoring floating-point dust so
// that 1000.0000001/100 is 10, not 11.
func ceilReplicas(inflow, capacity float64) int {
	return int(math.Ceil(inflow/capacity - 1e-9))
}
