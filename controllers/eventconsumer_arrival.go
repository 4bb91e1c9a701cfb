package controllers

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/autoscale"
	"github.com/lagscale/lagscale/internal/lag"
)

// Work queue priorities. controller-runtime's priority queue puts the
// objects of an informer's initial list (every consumer after a restart)
// at LowPriority (-100), and new objects and spec changes at 0. A lag
// snapshot is decided on as it arrives (arrive), and queues a reconcile
// only when there is work for the API server, at a priority by what it is:
//
//   - a replica change the lag asks for goes before everything else;
//   - a change of state a person acts on (a condition, the group's state, a
//     partition's health) goes with new objects, at 0;
//   - live lag figures due in the status go last, below the initial list,
//     so that the initial list is never starved by figures that only
//     report, and a scale-up never waits for either.
const (
	priorityScale     = 100
	priorityState     = 0
	priorityStatusDue = -200
)

// work is what arrive asks of the reconcile: a reconcile at priority,
// after a delay.
type work struct {
	priority int
	after    time.Duration
}

// arrive decides on the consumer's newest snapshot as it arrives from the
// lag engine, and says whether a reconcile is needed, at what priority and
// when. changed is false for a snapshot that only has a new time: it is
// looked at only when the last decision wanted a later look (a change held
// back by a window) or lag figures wait to be written. A decision that
// changes nothing is committed here: the scaler learns from every snapshot
// whether or not a reconcile follows. A decision that changes replicas is
// left to the reconcile, which decides again on the same snapshot and
// commits once the Deployment write has succeeded. It never waits: a
// consumer whose reconcile holds its scaler, or that has not been
// reconciled yet, is simply queued (a snapshot that did not change is left
// to the next poll).
func (r *EventConsumerReconciler) arrive(key types.NamespacedName, changed bool) (work, bool) {
	e := r.scalers.entry(key)
	if e == nil || !e.mu.TryLock() {
		return work{priority: priorityState}, changed
	}
	defer e.mu.Unlock()
	if !e.known {
		return work{priority: priorityState}, changed
	}
	if !changed && !e.revisit && !e.unwritten.Load() {
		return work{}, false
	}
	snap, ok := r.Lag.Snapshot(consumerKey(key))
	if !ok || snap.Time.IsZero() {
		// No reading to decide on (a cluster never reached, say): what
		// it says goes to the conditions by the reconcile.
		return work{priority: priorityState}, changed
	}
	now := r.now()
	// Built once: for /metrics and for the state signature.
	ls := lagStatusOf(snap)
	if changed && r.Metrics != nil {
		r.Metrics.ObserveLag(key, ls)
		r.Metrics.Stalled(key, stuckCount(snap))
	}
	e.sc.Observe(snap, now)
	d := e.sc.Decide(e.spec, e.current, now)
	e.revisit = wantsLook(&d)
	if d.Changed {
		return work{priority: priorityScale}, true
	}
	if stateSignature(snap, ls, &d) != e.state {
		return work{priority: priorityState}, true
	}
	e.sc.Commit(d)
	if (changed || e.unwritten.Load()) && !e.booked && now.Sub(e.looked) >= r.statusInterval() {
		// Live figures are due: book their write in the operator-wide
		// budget. When it is booked a whole interval ahead, a later
		// snapshot tries again; /metrics has the figures meanwhile.
		after, ok := r.StatusBudget.book(now, r.statusInterval())
		if !ok {
			e.unwritten.Store(true)
			return work{}, false
		}
		e.booked, e.turn = true, now.Add(after)
		return work{priority: priorityStatusDue, after: after}, true
	}
	return work{}, false
}

// wantsLook reports whether a decision holds back a change that time alone
// may let through (a stabilization window, the minimum interval), or
// holds the replicas without a recommendation: the consumer is decided on
// again at the next poll even if its lag does not move.
func wantsLook(d *autoscale.Decision) bool {
	return d.Recommendation != d.Replicas || d.Hold
}

// leaveForArrivals records, at the end of a reconcile, what arrive compares
// the next snapshots with, and releases the consumer's scaler.
func (r *EventConsumerReconciler) leaveForArrivals(st *reconcileState) {
	e := st.entry
	if e == nil {
		return
	}
	defer e.mu.Unlock()
	st.entry = nil
	if st.decision == nil {
		e.known = false
		return
	}
	e.known = true
	e.current = st.from
	if st.applied != nil {
		e.current = st.desired
	}
	var snap lag.Snapshot
	if st.lag != nil {
		snap = st.lag.snap
	}
	e.revisit = st.lag != nil && !snap.Time.IsZero() && wantsLook(st.decision)
	e.state = stateSignature(snap, lagStatusOf(snap), st.decision)
	e.looked = st.now
}

// stateSignature sums up what of a snapshot and its decision ends up in
// the status as state a person acts on rather than as a live figure: the
// snapshot's lag status without its live figures (withoutLiveLag, the
// same rule the status write applies), the conditions' inputs that are not
// in it (reachability, the error, unreadable topics, the partition count)
// and the decision's limits. Two snapshots with one signature differ only
// in figures that the status interval and /metrics carry. ls is the
// snapshot's lag status (lagStatusOf); it is not changed.
func stateSignature(snap lag.Snapshot, ls *v1alpha1.LagStatus, d *autoscale.Decision) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%t|%s|%d|%q|%q|%d", snap.Reachable, snap.Error, snap.PartitionCount, snap.TypeMismatch, snap.TopicErrors, snap.GroupEpoch-snap.AssignmentEpoch)
	state := withoutLiveLag(&v1alpha1.EventConsumerStatus{Lag: ls}).Lag
	if raw, err := json.Marshal(state); err == nil {
		b.WriteByte('|')
		b.Write(raw)
	}
	if d != nil {
		fmt.Fprintf(&b, "|%t|%s|%t|%q", d.Hold, d.Limited, d.Partial, d.Stuck)
	}
	return b.String()
}

// statusInterval is the shortest time between two writes of live figures.
func (r *EventConsumerReconciler) statusInterval() time.Duration {
	if r.StatusInterval > 0 {
		return r.StatusInterval
	}
	return DefaultStatusInterval
}
