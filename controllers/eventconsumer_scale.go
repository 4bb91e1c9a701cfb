package controllers

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/autoscale"
	"github.com/lagscale/lagscale/internal/scaler"
)

// scalers holds the Scaler of every consumer, in memory. After an operator
// restart or a change of leader a Scaler starts from what the status kept:
// the last scale time and the learned summary (status.learned); its history
// refills within a few polls, and the replica count itself lives in the
// Deployment.
type scalers struct {
	mu sync.Mutex
	m  map[types.NamespacedName]*scalerEntry
}

// scalerEntry is a Scaler and the UID of the consumer it belongs to, so that
// a consumer deleted and created again under the same name starts afresh
// rather than inheriting the old one's history. A Scaler is used by two
// goroutines: the reconcile, which holds mu from its decision until the
// decision is committed, and the lag engine's change notification, which
// decides on a new snapshot as it arrives (see arrive) and never waits for
// mu. The fields under mu are what the last reconcile left for it.
type scalerEntry struct {
	uid types.UID
	sc  *scaler.Scaler

	mu sync.Mutex
	// known is true once a reconcile has filled the fields below.
	known bool
	// spec is the consumer's scaling spec, as the reconcile converted it.
	spec autoscale.Spec
	// current is the replica count the last reconcile left.
	current int32
	// state is the signature of the status a person acts on, as of the
	// last reconcile (see stateSignature).
	state string
	// looked is when a reconcile last computed the status.
	looked time.Time
	// revisit is true when the last decision wants a look at the next
	// poll even if the lag does not move (see wantsLook).
	revisit bool
	// booked is true while a status write is booked in the status
	// budget for the reconcile to come at turn.
	booked bool
	turn   time.Time
	// unwritten is true when the status holds older live figures than
	// the last reconcile computed (their interval had not passed, or the
	// budget was short). It is set after the scaler is released, by the
	// status write.
	unwritten atomic.Bool
}

func newScalers() *scalers {
	return &scalers{m: map[types.NamespacedName]*scalerEntry{}}
}

// get returns the consumer's entry, creating it from the status when there
// is none for this consumer's UID. The map's lock is held only to find the
// entry, so consumers do not wait on each other.
func (s *scalers) get(ec *v1alpha1.EventConsumer) *scalerEntry {
	key := client.ObjectKeyFromObject(ec)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[key]
	if !ok || e.uid != ec.UID {
		var t time.Time
		if last := ec.Status.LastScale; last != nil {
			t = last.Time.Time
		}
		e = &scalerEntry{uid: ec.UID, sc: scaler.New(t, learnedFromStatus(ec.Status.Learned))}
		s.m[key] = e
	}
	return e
}

// entry returns the entry kept under key, nil when there is none.
func (s *scalers) entry(key types.NamespacedName) *scalerEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[key]
}

// lookup returns the Scaler kept under key, nil when there is none.
func (s *scalers) lookup(key types.NamespacedName) *scaler.Scaler {
	if e := s.entry(key); e != nil {
		return e.sc
	}
	return nil
}

func (s *scalers) delete(key types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
}

// initialReplicas is the replica count of a new Deployment: minReplicas,
// or 1 when minReplicas is 0 so that a new consumer starts consuming until
// lag says it may sleep.
func initialReplicas(ec *v1alpha1.EventConsumer) int32 {
	n := int32(1)
	if m := ec.Spec.Scaling.MinReplicas; m != nil && *m > 1 {
		n = *m
	}
	if m := ec.Spec.Scaling.MaxReplicas; m != nil && n > *m {
		n = *m
	}
	return n
}

// decideReplicas sets st.desired and returns when to look again. The count
// lagscale last set lives in the Deployment, so it survives an operator
// restart; without a lag reading it is held, never lowered, but min and max
// apply at once. The Scaler observes each new snapshot once, however many
// reconciles see it. The decision is a candidate until commitDecision, once
// the Deployment write has succeeded.
func (r *EventConsumerReconciler) decideReplicas(st *reconcileState) time.Duration {
	ec := st.ec
	e := r.scalers.get(ec)
	e.mu.Lock()
	st.entry, st.written = e, e
	// A write of live figures booked in the status budget is this
	// reconcile's only from its turn on: a reconcile that comes earlier
	// for another reason leaves it, and looks again at the turn, so the
	// budget's pace holds.
	var turnIn time.Duration
	if e.booked {
		if turnIn = e.turn.Sub(st.now); turnIn <= 0 {
			st.paid, e.booked, turnIn = true, false, 0
		}
	}
	sc := e.sc
	st.scaler = sc
	cached, generation := initialReplicas(ec), int64(0)
	if st.current != nil && st.current.Spec.Replicas != nil {
		cached, generation = *st.current.Spec.Replicas, st.current.Generation
	}
	current, _ := sc.Current(cached, generation)
	st.from, st.desired = current, current
	hasLag := st.lag != nil && !st.lag.snap.Time.IsZero()
	if hasLag {
		sc.Observe(st.lag.snap, st.now)
	}
	spec := scaler.Spec(ec.Spec.Scaling, r.MinScaleInterval)
	spec.Share = ec.Spec.GroupType == v1alpha1.GroupTypeShare
	e.spec = spec
	d := sc.Decide(spec, current, st.now)
	st.desired = d.Replicas
	st.decision = &d
	// A change the autoscaler wants but holds back (stabilization window,
	// minimum interval) needs a look later even if the lag stays the same:
	// the lag engine's next poll brings it (arrive), or, from a lag
	// source that does not call LagUnchanged, a requeue. Without a lag
	// reading the lag engine's first snapshot brings the next look.
	var requeue time.Duration
	if hasLag && wantsLook(&d) && !r.LagRevisits {
		requeue = r.pollInterval(ec)
	}
	if turnIn > 0 && (requeue == 0 || turnIn < requeue) {
		requeue = turnIn
	}
	return requeue
}

// commitDecision makes the decision of this reconcile count once its write
// has succeeded: the Scaler keeps its state, and a change is recorded in
// status.lastScale, as an event and as a metric. The learned summary in the
// status follows when it moved materially.
func (r *EventConsumerReconciler) commitDecision(ctx context.Context, st *reconcileState) {
	d, ec := st.decision, st.ec
	if d == nil {
		return
	}
	st.scaler.Commit(*d)
	ec.Status.Learned = learnedStatus(ec.Status.Learned, st.scaler.Learned(), st.now)
	if !d.Changed {
		return
	}
	if r.Metrics != nil && st.lag != nil && !st.lag.snap.Time.IsZero() {
		r.Metrics.DecisionLatency(st.now.Sub(st.lag.snap.Time))
	}
	ec.Status.LastScale = &v1alpha1.ScaleRecord{
		Time: metav1.NewTime(st.now), From: st.from, To: d.Replicas, Reason: truncate(d.Reason, 1024),
	}
	reason := v1alpha1.EventScaledUp
	if d.Replicas < st.from {
		reason = v1alpha1.EventScaledDown
	}
	r.event(ctx, ec, EventNormalType, reason, fmt.Sprintf("%d -> %d replicas: %s", st.from, d.Replicas, d.Reason))
	if r.Metrics != nil {
		r.Metrics.ScaleEvent(client.ObjectKeyFromObject(ec), st.from, d.Replicas)
	}
}

// learnedChange is the relative change of a learned figure that is worth a
// status write: smaller moves are noise of the moving averages, and writing
// them would cost a status write per poll.
const learnedChange = 0.10

// learnedStatus is status.learned for what the scaler has learned now: prev
// when nothing moved by more than learnedChange, else a new summary.
func learnedStatus(prev *v1alpha1.LearnedStatus, l scaler.Learned, now time.Time) *v1alpha1.LearnedStatus {
	next := &v1alpha1.LearnedStatus{Partitions: int32(l.Partitions)}
	if l.Capacity > 0 {
		next.CapacityPerReplica = ptrTo(roundSignificant(l.Capacity, 3))
	}
	if l.ScaleUpDelay > 0 {
		next.ScaleUpDelaySeconds = ptrTo(roundSignificant(l.ScaleUpDelay.Seconds(), 3))
	}
	if l.RebalancePause > 0 {
		next.RebalancePauseSeconds = ptrTo(roundSignificant(l.RebalancePause.Seconds(), 3))
	}
	if next.CapacityPerReplica == nil && next.ScaleUpDelaySeconds == nil && next.RebalancePauseSeconds == nil && next.Partitions == 0 {
		return prev
	}
	if prev != nil && prev.Partitions == next.Partitions &&
		!movedMaterially(prev.CapacityPerReplica, next.CapacityPerReplica) &&
		!movedMaterially(prev.ScaleUpDelaySeconds, next.ScaleUpDelaySeconds) &&
		!movedMaterially(prev.RebalancePauseSeconds, next.RebalancePauseSeconds) {
		return prev
	}
	next.Updated = ptrTo(metav1.NewTime(now))
	return next
}

// movedMaterially reports whether a learned figure appeared, went, or moved
// by more than learnedChange.
func movedMaterially(prev, next *float64) bool {
	switch {
	case prev == nil || next == nil:
		return (prev == nil) != (next == nil)
	case *prev == 0:
		return *next != 0
	}
	return math.Abs(*next-*prev) > learnedChange*math.Abs(*prev)
}

// learnedFromStatus is the scaler's learned summary as the status kept it.
func learnedFromStatus(s *v1alpha1.LearnedStatus) scaler.Learned {
	if s == nil {
		return scaler.Learned{}
	}
	l := scaler.Learned{Partitions: int(s.Partitions)}
	if s.CapacityPerReplica != nil {
		l.Capacity = *s.CapacityPerReplica
	}
	if s.ScaleUpDelaySeconds != nil {
		l.ScaleUpDelay = time.Duration(*s.ScaleUpDelaySeconds * float64(time.Second))
	}
	if s.RebalancePauseSeconds != nil {
		l.RebalancePause = time.Duration(*s.RebalancePauseSeconds * float64(time.Second))
	}
	return l
}

// roundSignificant rounds v to n significant digits, so the status shows
// 123 rather than 123.45678 and does not change with every sample's noise.
func roundSignificant(v float64, n int) float64 {
	if v == 0 {
		return 0
	}
	scale := math.Pow(10, float64(n)-math.Ceil(math.Log10(math.Abs(v))))
	return math.Round(v*scale) / scale
}

func ptrTo[T any](v T) *T { return &v }

func (r *EventConsumerReconciler) pollInterval(ec *v1alpha1.EventConsumer) time.Duration {
	return scaler.PollInterval(ec.Spec.Scaling, r.DefaultPollInterval)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
