// Package sim is a deterministic discrete-time simulator of a Kafka
// consumer group scaled by a policy: partitions receive records at given
// rates, consumers process up to a noisy capacity, the group pauses to
// rebalance on every membership change and new pods take time to start.
// It runs lagscale's scaler (internal/scaler, the operator's own, measuring
// with internal/lag's arithmetic), KEDA's Kafka scaler behind an HPA at
// their defaults and over a grid of 768 configurations, and two oracles
// side by side on the same input, so that their SLO attainment and cost
// can be compared; Sweep repeats that over seeds and capacities.
//
// Time advances in 1 s steps. Records are whole numbers, so conservation
// (produced = processed + backlog) holds exactly. Every random choice comes
// from the seed, so a run is reproducible.
package sim

import (
	"cmp"
	"math"
	"slices"

	"github.com/lagscale/lagscale/internal/autoscale"

	"github.com/lagscale/lagscale/api/v1alpha1"
)

// Config holds the simulation knobs shared by every policy.
type Config struct {
	// Capacity is one replica's records/s at full speed.
	Capacity float64
	// Noise is the relative spread of a replica's per-second capacity:
	// each second it is Capacity * (1 + Noise*u) with u uniform in [-1, 1].
	Noise float64
	// SLO is the time-lag objective in seconds.
	SLO float64
	// Seed makes the capacity noise (and scenario randomness) repeatable.
	Seed uint64
	// Rebalance is the stop-the-world pause, in seconds, after every
	// membership change.
	Rebalance int
	// Startup is how long a new pod takes, in seconds, before it joins.
	Startup int
	// Poll is how often, in seconds, lagscale sees a lag observation.
	Poll int
	// KEDALagThreshold is keda-hpa's lagThreshold; 0 means Capacity * SLO.
	KEDALagThreshold int64
	// InitialReplicas is the replica count at second 0, already running;
	// 0 means what the oracle needs at second 0.
	InitialReplicas int
	// Share simulates a KIP-932 share group: every member consumes from
	// every partition (no partition granularity, a hot partition is shared
	// by all) and a membership change pauses nothing. lagscale then runs
	// with groupType Share and ShareMaxReplicas as its maxReplicas.
	Share bool
	// ShareMaxReplicas is lagscale's maxReplicas in Share mode; 0 leaves
	// lagscale unbounded.
	ShareMaxReplicas int
	// Scaling is lagscale's spec.scaling, from a user's EventConsumer
	// manifest (WithConsumer); nil is the built-in consumer: minReplicas 1,
	// maxLagSeconds the SLO and no throughputPerReplica, so that capacity
	// is learned as it is for a user who does not know it.
	Scaling *v1alpha1.ScalingSpec
	// Prior, when positive and Scaling sets no throughputPerReplica, gives
	// lagscale a throughputPerReplica of Prior x Capacity: a user's guess,
	// right at 1, wrong elsewhere.
	Prior float64
	// Without turns mechanisms of lagscale's plan off, for an ablation.
	Without autoscale.Mechanisms
	// ReconcileLatency is how many seconds after a snapshot, a Deployment
	// change or a requeue's due time the operator's reconcile looks at it:
	// the work queue's latency. The CLI's default is 1 s; zero here is none.
	ReconcileLatency int
	// StalePolls and PartialPolls are poll seconds at which the lag
	// engine's poll fails (the snapshot is the previous one marked stale)
	// or reads one partition's offsets with an error, for tests of the
	// operator's handling of both.
	StalePolls, PartialPolls []int
}

// withDefaults fills zero fields.
func (c Config) withDefaults() Config {
	if c.Capacity <= 0 {
		c.Capacity = 100
	}
	if c.SLO <= 0 {
		c.SLO = 30
	}
	if c.Poll <= 0 {
		c.Poll = 5
	}
	if c.Rebalance < 0 {
		c.Rebalance = 0
	}
	if c.Startup < 0 {
		c.Startup = 0
	}
	return c
}

// Metrics is one policy's result.
type Metrics struct {
	// SLOAttainment is the fraction of seconds whose time lag <= SLO.
	SLOAttainment float64 `json:"slo_attainment"`
	// P99LagSeconds is the 99th percentile of the per-second time lag.
	P99LagSeconds float64 `json:"p99_lag_seconds"`
	// MaxLagSeconds is the largest time lag.
	MaxLagSeconds float64 `json:"max_lag_seconds"`
	// ReplicaSeconds is the sum over seconds of the Deployment's replicas,
	// starting pods included: what the cluster pays for.
	ReplicaSeconds int64 `json:"replica_seconds"`
	// ScaleEvents is how many times the replica count changed.
	ScaleEvents int `json:"scale_events"`
	// RebalanceSeconds is how many seconds the group was paused.
	RebalanceSeconds int `json:"rebalance_seconds"`
	// Events lists every change of the replica count, in order.
	Events []ScaleEvent `json:"events"`
}

// ScaleEvent is one change of the Deployment's replicas, at the end of
// Second.
type ScaleEvent struct {
	Second int `json:"second"`
	From   int `json:"from"`
	To     int `json:"to"`
	// Reason is the autoscaler's reason, for lagscale only.
	Reason string `json:"reason,omitempty"`
}

// Series is one policy's per-second trace, for plots and tests.
type Series struct {
	// Inflow is records/s produced.
	Inflow []float64
	// LagSeconds is the group's time lag at the end of each second.
	LagSeconds []float64
	// Replicas is the Deployment's replica count.
	Replicas []int
	// Produced, Processed and Backlog are the totals at the end of the run.
	Produced, Processed, Backlog int64
}

// scaler is a policy: every second it may return a new replica count.
type scaler interface {
	// step is called at the end of every second with what the cluster
	// looks like; it returns the desired replica count.
	step(g *group, second int) int
}

// reasoner is a policy that says why it made its last change.
type reasoner interface {
	reason() string
}

// bucket is the records produced in one second on one partition that are
// not processed yet.
type bucket struct {
	second int
	n      int64
}

// partition is one partition's log as the group sees it.
type partition struct {
	queue     []bucket // unprocessed records from head on, oldest first
	head      int      // index of the oldest unprocessed bucket in queue
	carry     float64  // fractional records not produced yet
	end       int64    // records produced (the end offset)
	committed int64    // records processed (the committed offset)
	owner     int      // index into group.members, -1 when unassigned
}

// fetchable is the backlog a consumer can fetch in second s: records
// produced before s. A record produced in second s reaches a consumer in
// the next fetch, so even a group that keeps up carries about one second
// of inflow as lag, as real groups do between produce, fetch and commit.
func (p *partition) fetchable(s int) int64 {
	n := p.end - p.committed
	if k := len(p.queue); k > p.head && p.queue[k-1].second == s {
		n -= p.queue[k-1].n
	}
	return n
}

func (p *partition) lagSeconds(now int) float64 {
	if len(p.queue) == p.head {
		return 0
	}
	// A record produced during second s is one second old at the end of s.
	return float64(now - p.queue[p.head].second + 1)
}

// pod is one replica.
type pod struct {
	id      int
	readyAt int // second at which it joins the group
	member  bool
	carry   float64 // fractional capacity carried to the next second
}

// group is the consumer group plus the Deployment behind it.
type group struct {
	cfg        Config
	w          Workload
	parts      []partition
	pods       []*pod // Deployment replicas, oldest first
	nextID     int
	pauseUntil int // no processing while second < pauseUntil
	changed    bool
	assignment map[int][]int // pod id -> partitions

	// The simulator runs hundreds of KEDA configurations per workload, so
	// what changes only on a membership change or a rebalance is kept
	// rather than rebuilt every second.
	mem      []*pod  // members, in pod order; nil when it must be rebuilt
	byMember [][]int // partitions per index into mem, set by assign
	scratch  []pl    // drain's working space
}

// pl is a partition and its fetchable lag, for drain.
type pl struct {
	i   int
	lag int64
}

func newGroup(cfg Config, w Workload, replicas int) *group {
	g := &group{cfg: cfg, w: w, parts: make([]partition, w.Partitions), assignment: map[int][]int{}}
	for i := range g.parts {
		g.parts[i].owner = -1
	}
	for range replicas {
		g.pods = append(g.pods, &pod{id: g.nextID, readyAt: 0, member: true})
		g.nextID++
	}
	g.assign()
	return g
}

func (g *group) members() []*pod {
	if g.mem != nil {
		return g.mem
	}
	m := make([]*pod, 0, len(g.pods))
	for _, p := range g.pods {
		if p.member {
			m = append(m, p)
		}
	}
	g.mem = m
	return m
}

func (g *group) ready() int { return len(g.members()) }

func (g *group) paused(second int) bool { return second < g.pauseUntil }

// scaleTo changes the Deployment's replicas at the end of second s. New
// pods join after the start-up delay; removed pods leave at once, unready
// ones first and then the newest, as a ReplicaSet chooses.
func (g *group) scaleTo(n, s int) {
	for len(g.pods) < n {
		g.pods = append(g.pods, &pod{id: g.nextID, readyAt: s + 1 + g.cfg.Startup})
		g.nextID++
	}
	for len(g.pods) > n {
		victim := len(g.pods) - 1
		for i := len(g.pods) - 1; i >= 0; i-- {
			if !g.pods[i].member {
				victim = i
				break
			}
		}
		if g.pods[victim].member {
			g.changed = true
			g.mem = nil
		}
		g.pods = slices.Delete(g.pods, victim, victim+1)
	}
}

// assign spreads the partitions over the members the way Kafka's
// cooperative-sticky assignor does: members keep what they own, orphaned
// partitions go to the members with the fewest, and members above
// ceil(P/n) (or above floor(P/n) while others are below it) give up their
// highest-numbered partitions. Only partition counts are balanced, not load.
func (g *group) assign() {
	members := g.members()
	owned := map[int][]int{}
	for _, m := range members {
		owned[m.id] = nil
	}
	var orphans []int
	for i := range g.parts {
		old := -1
		for id, ps := range g.assignment {
			if slices.Contains(ps, i) {
				old = id
			}
		}
		if _, ok := owned[old]; ok {
			owned[old] = append(owned[old], i)
		} else {
			orphans = append(orphans, i)
		}
	}
	n := len(members)
	if n == 0 {
		g.assignment = map[int][]int{}
		g.byMember = nil
		for i := range g.parts {
			g.parts[i].owner = -1
		}
		return
	}
	P := len(g.parts)
	lo, extra := P/n, P%n
	// Members sorted by id get the ceil(P/n) quotas first: older members,
	// which tend to own more, keep theirs.
	quota := map[int]int{}
	ids := make([]int, 0, n)
	for _, m := range members {
		ids = append(ids, m.id)
	}
	slices.Sort(ids)
	// Give the larger quotas to the members owning the most, so the fewest
	// partitions move.
	byOwned := slices.Clone(ids)
	slices.SortStableFunc(byOwned, func(a, b int) int { return cmp.Compare(len(owned[b]), len(owned[a])) })
	for i, id := range byOwned {
		quota[id] = lo
		if i < extra {
			quota[id]++
		}
	}
	for _, id := range ids {
		ps := owned[id]
		slices.Sort(ps)
		if len(ps) > quota[id] {
			orphans = append(orphans, ps[quota[id]:]...)
			owned[id] = ps[:quota[id]]
		}
	}
	slices.Sort(orphans)
	for _, part := range orphans {
		for _, id := range ids {
			if len(owned[id]) < quota[id] {
				owned[id] = append(owned[id], part)
				break
			}
		}
	}
	g.assignment = owned
	index := map[int]int{}
	for i, m := range members {
		index[m.id] = i
	}
	for i := range g.parts {
		g.parts[i].owner = -1
	}
	for id, ps := range owned {
		for _, part := range ps {
			g.parts[part].owner = index[id]
		}
	}
	g.byMember = make([][]int, n)
	for i := range g.parts {
		if o := g.parts[i].owner; o >= 0 {
			g.byMember[o] = append(g.byMember[o], i)
		}
	}
}

// produce appends second s's records.
func (g *group) produce(s int, rates []float64) {
	for i := range g.parts {
		p := &g.parts[i]
		p.carry += rates[i]
		n := int64(math.Floor(p.carry))
		p.carry -= float64(n)
		if n > 0 {
			p.queue = append(p.queue, bucket{second: s, n: n})
			p.end += n
		}
	}
}

// join lets pods whose start-up is over into the group.
func (g *group) join(s int) {
	for _, p := range g.pods {
		if !p.member && p.readyAt <= s {
			p.member = true
			g.changed = true
			g.mem = nil
		}
	}
}

// rebalance starts a stop-the-world pause when membership changed; a
// change during a pause restarts it.
func (g *group) rebalance(s int) {
	if !g.changed {
		return
	}
	g.changed = false
	g.assign()
	if g.cfg.Share {
		// A share group has no stop-the-world rebalance.
		g.pauseUntil = s
		return
	}
	g.pauseUntil = s + g.cfg.Rebalance
}

// consume lets every member process up to its capacity this second,
// shared fairly among its partitions that have records (a consumer
// fetches from all its partitions; one with little backlog leaves the
// rest of the capacity to the others).
func (g *group) consume(s int) {
	if g.paused(s) {
		return
	}
	members := g.members()
	byMember := g.byMember
	factor := g.w.capacityFactor(s)
	var all []int
	if g.cfg.Share {
		all = make([]int, len(g.parts))
		for i := range all {
			all[i] = i
		}
	}
	for mi, m := range members {
		if mi >= len(byMember) && !g.cfg.Share {
			break
		}
		c := g.cfg.Capacity * factor * (1 + g.cfg.Noise*noise(g.cfg.Seed, uint64(m.id), uint64(s)))
		m.carry += max(c, 0)
		budget := int64(math.Floor(m.carry))
		m.carry -= float64(budget)
		// Unused capacity does not accumulate: an idle second is lost.
		if g.cfg.Share {
			// Every share-group member takes records of every partition.
			g.drain(s, all, budget)
			continue
		}
		g.drain(s, byMember[mi], budget)
	}
}

// drain processes up to budget records from the given partitions by water
// filling: partitions with less backlog than an equal share are emptied
// and their unused share goes to the others.
func (g *group) drain(s int, parts []int, budget int64) {
	active := g.scratch[:0]
	total := int64(0)
	for _, i := range parts {
		if l := g.parts[i].fetchable(s); l > 0 {
			active = append(active, pl{i, l})
			total += l
		}
	}
	g.scratch = active[:0]
	if total <= budget {
		// Every partition empties: water filling gives each its whole lag.
		for _, a := range active {
			g.take(a.i, a.lag)
		}
		return
	}
	slices.SortFunc(active, func(a, b pl) int { return cmp.Or(cmp.Compare(a.lag, b.lag), cmp.Compare(a.i, b.i)) })
	used := int64(0)
	for k, a := range active {
		left := int64(len(active) - k)
		share := (budget - used) / left
		if k == len(active)-1 {
			share = budget - used
		}
		take := min(a.lag, share)
		g.take(a.i, take)
		used += take
	}
}

// take processes n records from the front of partition i.
func (g *group) take(i int, n int64) {
	p := &g.parts[i]
	p.committed += n
	for n > 0 && p.head < len(p.queue) {
		b := &p.queue[p.head]
		if b.n <= n {
			n -= b.n
			p.head++
			continue
		}
		b.n -= n
		n = 0
	}
	// Reuse the processed front of the queue once it is most of it.
	if p.head >= 64 && 2*p.head >= len(p.queue) {
		k := copy(p.queue, p.queue[p.head:])
		p.queue, p.head = p.queue[:k], 0
	}
}

// lagSeconds is the group's time lag: the oldest unprocessed record's age.
func (g *group) lagSeconds(s int) float64 {
	m := 0.0
	for i := range g.parts {
		m = max(m, g.parts[i].lagSeconds(s))
	}
	return m
}

// noise is a deterministic uniform value in [-1, 1] for a pod and a
// second, independent of the order in which it is asked for, so that every
// policy meets the same luck for the same pod at the same second.
func noise(seed, podID, second uint64) float64 {
	x := seed*0x9E3779B97F4A7C15 ^ podID*0xBF58476D1CE4E5B9 ^ second*0x94D049BB133111EB
	x ^= x >> 30
	x *= 0xBF58476D1CE4E5B9
	x ^= x >> 27
	x *= 0x94D049BB133111EB
	x ^= x >> 31
	return float64(x>>11)/float64(1<<53)*2 - 1
}

// run simulates one policy over the workload. With missBudget >= 0 it
// stops once the time lag has exceeded the SLO in more than missBudget
// seconds and reports done false: the caller only wanted runs that meet
// the SLO.
func run(cfg Config, w Workload, rates [][]float64, pol scaler, initial, missBudget int) (m Metrics, ser Series, done bool) {
	return runUntil(cfg, w, rates, pol, initial, missBudget, nil)
}

// runUntil is run that also stops, done false, once stop says the metrics
// so far are enough to rule the policy out.
func runUntil(cfg Config, w Workload, rates [][]float64, pol scaler, initial, missBudget int, stop func(*Metrics) bool) (m Metrics, ser Series, done bool) {
	g := newGroup(cfg, w, initial)
	ser = Series{Inflow: make([]float64, w.Duration), LagSeconds: make([]float64, w.Duration), Replicas: make([]int, w.Duration)}
	misses := 0
	for s := range w.Duration {
		g.produce(s, rates[s])
		g.join(s)
		g.rebalance(s)
		if g.paused(s) {
			m.RebalanceSeconds++
		}
		g.consume(s)
		lag := g.lagSeconds(s)
		ser.LagSeconds[s] = lag
		if lag > cfg.SLO {
			if misses++; missBudget >= 0 && misses > missBudget {
				return m, ser, false
			}
		}
		for _, r := range rates[s] {
			ser.Inflow[s] += r
		}
		ser.Replicas[s] = len(g.pods)
		m.ReplicaSeconds += int64(len(g.pods))
		if want := pol.step(g, s); want != len(g.pods) {
			m.ScaleEvents++
			ev := ScaleEvent{Second: s, From: len(g.pods), To: want}
			if r, ok := pol.(reasoner); ok {
				ev.Reason = r.reason()
			}
			m.Events = append(m.Events, ev)
			g.scaleTo(want, s)
		}
		if stop != nil && stop(&m) {
			return m, ser, false
		}
	}
	for i := range g.parts {
		ser.Produced += g.parts[i].end
		ser.Processed += g.parts[i].committed
		for _, b := range g.parts[i].queue[g.parts[i].head:] {
			ser.Backlog += b.n
		}
	}
	m.SLOAttainment, m.P99LagSeconds, m.MaxLagSeconds = lagStats(ser.LagSeconds, cfg.SLO)
	return m, ser, true
}

// lagStats returns the SLO attainment, the p99 and the max of lag.
func lagStats(lag []float64, slo float64) (attain, p99, mx float64) {
	if len(lag) == 0 {
		return 1, 0, 0
	}
	ok := 0
	for _, l := range lag {
		if l <= slo {
			ok++
		}
	}
	sorted := slices.Clone(lag)
	slices.Sort(sorted)
	idx := int(math.Ceil(0.99*float64(len(sorted)))) - 1
	return float64(ok) / float64(len(lag)), sorted[max(idx, 0)], sorted[len(sorted)-1]
}
