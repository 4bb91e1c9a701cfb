package controllers

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/lagscale/lagscale/api/v1alpha1"
)

// DefaultStatusInterval is the shortest time between two status writes of
// one consumer that change nothing but the live lag figures (status.lag's
// totals, rates and per-partition offsets). Status is for state a person
// acts on: a scale, a condition, a group state, a partition's health, a
// missing topic are written at once; moving lag numbers at most once per
// interval, and not at all while they stand still. The live values are on
// /metrics at every poll. 30 s keeps `kubectl get -w` useful while 1,000
// consumers whose lag moves cost at most about 33 writes/s.
const DefaultStatusInterval = 30 * time.Second

// DefaultStatusWritesPerSecond is the operator-wide budget of status
// writes. At the default 30 s interval it lets 1,500 consumers whose lag
// moves write their figures every interval; with more, each one's interval
// stretches. A change of state (a condition, a group state, a partition's
// health, a first status) goes before figures, but waits for its turn in
// the budget too, so that thousands of consumers changing at once (a
// restart, a broker outage) are written at the budget's pace. Only the
// record of a scale already written to the Deployment never waits.
const DefaultStatusWritesPerSecond = 50.0

// The kinds of status write, the label of lagscale_status_writes_total.
const (
	writeScale   = "scale"
	writeState   = "state"
	writeFigures = "figures"
)

// StatusBudget is the operator-wide limit on status writes (see
// DefaultStatusWritesPerSecond). A nil budget limits nothing.
//
// Its callers pass the time their reconcile or arrival started, which
// four workers and the lag engine do out of order; rate.Limiter counts an
// earlier time after a later one as a fresh start and refills the tokens
// of the span between them. So the limiter is given the latest time any
// caller has passed, under mu.
//
// In a sharded operator every replica holds one, and each takes an equal
// share of the whole (Share), so the replicas together stay within it.
//
// lim spreads the writes: turns are booked on it ahead of time. gate
// counts the writes as they go: a reconcile that runs late, behind a deep
// queue, would otherwise write at a turn long past, together with every
// other late one, and a window of such writes would exceed the budget.
type StatusBudget struct {
	mu    sync.Mutex
	last  time.Time
	lim   *rate.Limiter
	gate  *rate.Limiter
	total float64
}

// at returns the limiter's time for a caller's now: never earlier than
// one already used. b.mu must be held.
func (b *StatusBudget) at(now time.Time) time.Time {
	if now.Before(b.last) {
		return b.last
	}
	b.last = now
	return now
}

// NewStatusBudget returns a budget of perSecond writes a second, with a
// burst of one second's worth; 0 or less uses
// DefaultStatusWritesPerSecond.
func NewStatusBudget(perSecond float64) *StatusBudget {
	if perSecond <= 0 {
		perSecond = DefaultStatusWritesPerSecond
	}
	burst := max(1, int(perSecond))
	return &StatusBudget{lim: rate.NewLimiter(rate.Limit(perSecond), burst), gate: rate.NewLimiter(rate.Limit(perSecond), burst), total: perSecond}
}

// Share sets this replica's part of the operator-wide budget to one of
// members equal shares, burst one second's worth; members below 1 count
// as 1. Tokens already held stay up to the new burst.
func (b *StatusBudget) Share(members int) {
	if b == nil {
		return
	}
	members = max(members, 1)
	b.mu.Lock()
	defer b.mu.Unlock()
	per := b.total / float64(members)
	if b.lim.Limit() == rate.Limit(per) {
		return
	}
	for _, l := range []*rate.Limiter{b.lim, b.gate} {
		l.SetLimitAt(b.last, rate.Limit(per))
		l.SetBurstAt(b.last, max(1, int(per)))
	}
}

// PerSecond is this replica's current share of the budget.
func (b *StatusBudget) PerSecond() float64 {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return float64(b.lim.Limit())
}

// allow reports whether a write of live figures may go now, taking a token
// when it may.
func (b *StatusBudget) allow(now time.Time) bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lim.AllowN(b.at(now), 1)
}

// admit reports whether a status write may go now, at the budget's pace
// of writes actually made, taking a token when it may. A write whose turn
// came long ago (its reconcile waited in the queue) and finds the last
// second's worth spent waits again: retry is how long until a token.
func (b *StatusBudget) admit(now time.Time) (ok bool, retry time.Duration) {
	if b == nil {
		return true, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	at := b.at(now)
	if b.gate.AllowN(at, 1) {
		return true, 0
	}
	missing := 1 - b.gate.TokensAt(at)
	return false, max(time.Duration(missing/float64(b.gate.Limit())*float64(time.Second)), time.Millisecond)
}

// spend counts a write that goes whatever the budget says (the record of
// a scale): it takes a turn and a token, so the turns booked after it
// move back by one and the writes after it wait for it.
func (b *StatusBudget) spend(now time.Time) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	at := b.at(now)
	b.lim.ReserveN(at, 1)
	b.gate.ReserveN(at, 1)
}

// book reserves a write of live figures in the budget, and returns how
// long the write must wait for its turn. ok is false, and nothing is
// reserved, when the turn is more than within away: the budget is booked
// that far ahead, and a later attempt comes first to the next free turn.
func (b *StatusBudget) book(now time.Time, within time.Duration) (after time.Duration, ok bool) {
	if b == nil {
		return 0, true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	at := b.at(now)
	res := b.lim.ReserveN(at, 1)
	if !res.OK() {
		return 0, false
	}
	if after = max(res.DelayFrom(now), 0); after > within {
		res.CancelAt(at)
		return 0, false
	}
	return after, true
}

// reserve takes the next turn in the budget, however far ahead, and
// returns how long it is from now: a change of state waits for it, and
// figures booked after it wait longer or for a later poll.
func (b *StatusBudget) reserve(now time.Time) time.Duration {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return max(b.lim.ReserveN(b.at(now), 1).DelayFrom(now), 0)
}

// statusWrite decides whether the status computed by a reconcile is
// written now. It returns write=false when the only difference from what
// the API server holds is live lag figures written less than interval ago;
// then after says when those figures become due, so the caller requeues and
// the last reading is written even if lag stops moving. A pure function of
// its inputs: the time of the last write is status.lag.updated itself.
func statusWrite(orig, next *v1alpha1.EventConsumerStatus, now time.Time, interval time.Duration) (write bool, after time.Duration) {
	if equality.Semantic.DeepEqual(orig, next) {
		return false, 0
	}
	if !equality.Semantic.DeepEqual(withoutLiveLag(orig), withoutLiveLag(next)) {
		return true, 0
	}
	if !liveLagMoved(orig.Lag, next.Lag) {
		// Only status.lag.updated differs: the figures stand still.
		return false, 0
	}
	if orig.Lag == nil || orig.Lag.Updated == nil {
		return true, 0
	}
	due := orig.Lag.Updated.Add(interval)
	if !now.Before(due) {
		return true, 0
	}
	return false, due.Sub(now)
}

// onlyLiveLag reports whether orig and next differ in live lag figures only.
func onlyLiveLag(orig, next *v1alpha1.EventConsumerStatus) bool {
	return equality.Semantic.DeepEqual(withoutLiveLag(orig), withoutLiveLag(next))
}

// withoutLiveLag is s with the live lag figures cleared, leaving the state
// a person acts on: group state, members, staleness, missing topics and
// each partition's health.
func withoutLiveLag(s *v1alpha1.EventConsumerStatus) *v1alpha1.EventConsumerStatus {
	c := s.DeepCopy()
	if l := c.Lag; l != nil {
		l.Total, l.Seconds, l.ProductionRate, l.ConsumptionRate, l.DrainSeconds, l.Updated = 0, 0, 0, 0, nil, nil
		// The epochs count rebalances: a rebalance in progress is state
		// (rebalancingMembers), the epochs' values are figures.
		l.GroupEpoch, l.AssignmentEpoch = nil, nil
		// That dead letters arrive is state; how many and how fast are
		// figures.
		if d := l.DeadLetters; d != nil {
			l.DeadLetters = &v1alpha1.DeadLetterStatus{Topic: d.Topic, Missing: d.Missing, Records: min(d.Records, 1)}
		}
		// The 64 partitions shown are the ones with the largest time lag,
		// so which of them are shown, and in what order, is a live figure
		// too: in a group of more partitions a healthy one enters or
		// leaves the list as lag moves. A partition whose health is not
		// OK is state a person acts on, and stays.
		unhealthy := l.Partitions[:0]
		for _, p := range l.Partitions {
			if p.Health != "" && p.Health != "OK" {
				unhealthy = append(unhealthy, v1alpha1.PartitionLagStatus{Topic: p.Topic, Partition: p.Partition, Health: p.Health})
			}
		}
		l.Partitions = unhealthy
		sortPartitionHealth(l.Partitions)
	}
	return c
}

// liveLagMoved reports whether the live figures differ, ignoring the time
// they were read.
func liveLagMoved(a, b *v1alpha1.LagStatus) bool {
	if a == nil || b == nil {
		return a != b
	}
	x, y := a.DeepCopy(), b.DeepCopy()
	x.Updated, y.Updated = nil, nil
	return !equality.Semantic.DeepEqual(x, y)
}

func sortPartitionHealth(ps []v1alpha1.PartitionLagStatus) {
	slices.SortFunc(ps, func(a, b v1alpha1.PartitionLagStatus) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
}
