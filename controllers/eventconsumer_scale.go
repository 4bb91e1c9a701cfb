package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lagscale/lagscale/api/v1alpha1"
	"github.com/lagscale/lagscale/internal/scaler"
)

// scalers holds the Scaler of every consumer, in memory. After an operator
// restart history refills within a few polls; the replica count itself
// lives in the Deployment and the last scale time in the status.
type scalers struct {
	mu sync.Mutex
	m  map[types.NamespacedName]*scaler.Scaler
}

func newScalers() *scalers {
	return &scalers{m: map[types.NamespacedName]*scaler.Scaler{}}
}

// get returns the consumer's Scaler, creating it with the last scale time
// from the status after an operator restart. Only the map is locked:
// controller-runtime never reconciles one consumer twice at once, so a
// Scaler needs no lock of its own and consumers do not wait on each other.
func (s *scalers) get(key types.NamespacedName, last *v1alpha1.ScaleRecord) *scaler.Scaler {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, ok := s.m[key]
	if !ok {
		var t time.Time
		if last != nil {
			t = last.Time.Time
		}
		sc = scaler.New(t)
		s.m[key] = sc
	}
	return sc
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
// restart; without a lag reading it is held, never lowered. The Scaler
// observes each new snapshot once, however many reconciles see it.
func (r *EventConsumerReconciler) decideReplicas(ctx context.Context, st *reconcileState) time.Duration {
	ec := st.ec
	key := client.ObjectKeyFromObject(ec)
	sc := r.scalers.get(key, ec.Status.LastScale)
	st.scaler = sc
	cached, generation := initialReplicas(ec), int64(0)
	var ready int32
	if st.current != nil && st.current.Spec.Replicas != nil {
		cached, generation = *st.current.Spec.Replicas, st.current.Generation
		ready = st.current.Status.ReadyReplicas
	}
	current, _ := sc.Current(cached, generation)
	st.desired = current
	if st.lag == nil || st.lag.snap.Time.IsZero() {
		return 0
	}

	sc.Observe(st.lag.snap, st.now)
	spec := scaler.Spec(ec.Spec.Scaling, r.MinScaleInterval)
	spec.Share = ec.Spec.GroupType == v1alpha1.GroupTypeShare
	d := sc.Decide(spec, current, ready, st.now)
	st.desired = d.Replicas
	st.decision = &d
	if d.Changed {
		ec.Status.LastScale = &v1alpha1.ScaleRecord{
			Time: metav1.NewTime(st.now), From: current, To: d.Replicas, Reason: truncate(d.Reason, 1024),
		}
		reason := v1alpha1.EventScaledUp
		if d.Replicas < current {
			reason = v1alpha1.EventScaledDown
		}
		r.event(ctx, ec, EventNormalType, reason, fmt.Sprintf("%d -> %d replicas: %s", current, d.Replicas, d.Reason))
		if r.Metrics != nil {
			r.Metrics.ScaleEvent(key, current, d.Replicas)
		}
	}
	// A change the autoscaler wants but holds back (stabilization window,
	// minimum interval) needs a look later even if the lag stays the same.
	if d.Recommendation != d.Replicas || d.Hold {
		return r.pollInterval(ec)
	}
	return 0
}

func (r *EventConsumerReconciler) pollInterval(ec *v1alpha1.EventConsumer) time.Duration {
	return scaler.PollInterval(ec.Spec.Scaling, r.DefaultPollInterval)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
