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
	"github.com/lagscale/lagscale/internal/autoscale"
	"github.com/lagscale/lagscale/internal/lag"
)

// maxHistory bounds the observations kept per consumer; the autoscaler
// looks at the last scale-down window at most.
const maxHistory = 128

// scaleDecision is the autoscaler's answer for one reconcile.
type scaleDecision struct {
	autoscale.Decision
	from int32
}

// scalerState is what the autoscaler needs between reconciles of one
// consumer: recent observations and its own State.
type scalerState struct {
	history  []autoscale.Observation
	state    autoscale.State
	lastSeen time.Time
}

// scalerStates holds the scalerState of every consumer, in memory. After an
// operator restart history refills within a few polls; the replica count
// itself lives in the Deployment and the last scale time in the status.
type scalerStates struct {
	mu sync.Mutex
	m  map[types.NamespacedName]*scalerState
}

func newScalerStates() *scalerStates {
	return &scalerStates{m: map[types.NamespacedName]*scalerState{}}
}

// get returns the consumer's state, creating it with the last scale time
// from the status after an operator restart. Only the map is locked:
// controller-runtime never reconciles one consumer twice at once, so its
// state needs no lock of its own and consumers do not wait on each other.
func (s *scalerStates) get(key types.NamespacedName, last *v1alpha1.ScaleRecord) *scalerState {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.m[key]
	if !ok {
		ss = &scalerState{}
		if last != nil {
			ss.state.LastScaleTime = last.Time.Time
		}
		s.m[key] = ss
	}
	return ss
}

func (s *scalerStates) delete(key types.NamespacedName) {
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

// autoscaleSpec converts the API's scaling spec (defaulted by the API
// server) into the autoscaler's.
func autoscaleSpec(sc v1alpha1.ScalingSpec) autoscale.Spec {
	out := autoscale.Spec{
		MinReplicas:        1,
		MaxReplicas:        sc.MaxReplicas,
		Policy:             autoscale.Policy(sc.Policy),
		AllowIdleConsumers: sc.AllowIdleConsumers,
		Paused:             sc.Paused,
	}
	if sc.MinReplicas != nil {
		out.MinReplicas = *sc.MinReplicas
	}
	if sc.MaxLagSeconds != nil {
		out.MaxLagSeconds = float64(*sc.MaxLagSeconds)
	}
	if sc.LagThreshold != nil {
		out.LagThreshold = *sc.LagThreshold
	}
	if sc.ActivationLag != nil {
		out.ActivationLag = *sc.ActivationLag
	}
	if sc.ThroughputPerReplica != nil {
		out.ThroughputPerReplica = float64(*sc.ThroughputPerReplica)
	}
	stab := int32(120)
	if sc.ScaleDownStabilizationSeconds != nil {
		stab = *sc.ScaleDownStabilizationSeconds
	}
	out.ScaleDownStabilization = time.Duration(stab) * time.Second
	out.BurstMemory = autoscale.DefaultBurstMemory
	if sc.BurstMemorySeconds != nil {
		out.BurstMemory = time.Duration(*sc.BurstMemorySeconds) * time.Second
	}
	return out
}

// observation converts a lag snapshot into the autoscaler's input.
func observation(s lag.Snapshot) autoscale.Observation {
	o := autoscale.Observation{
		Time:            s.Time,
		Stale:           s.Stale || !s.Reachable,
		Missing:         len(s.MissingTopics) > 0 || s.PartitionCount == 0,
		TotalLag:        s.TotalLag,
		TimeLagSeconds:  s.TimeLagSeconds,
		ProductionRate:  s.ProductionRate,
		ConsumptionRate: s.ConsumptionRate,
		PartitionCount:  s.PartitionCount,
		GroupState:      s.GroupState,
		Members:         s.Members,

		MembersRebalancing: s.Rebalancing,
	}
	o.Partitions = make([]autoscale.PartitionObs, len(s.Partitions))
	for i, p := range s.Partitions {
		o.Partitions[i] = autoscale.PartitionObs{Lag: p.Lag, TimeLagSeconds: p.TimeLagSeconds, ProductionRate: p.ProductionRate, ConsumptionRate: p.ConsumptionRate}
	}
	return o
}

// decideReplicas sets st.desired and returns when to look again. The count
// lagscale last set lives in the Deployment, so it survives an operator
// restart; without a lag reading it is held, never lowered.
func (r *EventConsumerReconciler) decideReplicas(ctx context.Context, st *reconcileState) time.Duration {
	ec := st.ec
	current := initialReplicas(ec)
	var ready int32
	if st.current != nil && st.current.Spec.Replicas != nil {
		current = *st.current.Spec.Replicas
		ready = st.current.Status.ReadyReplicas
	}
	st.desired = current
	if st.lag == nil || st.lag.snap.Time.IsZero() {
		return 0
	}

	key := client.ObjectKeyFromObject(ec)
	ss := r.scalers.get(key, ec.Status.LastScale)
	snap := st.lag.snap
	if snap.Time.After(ss.lastSeen) || snap.Stale {
		obs := observation(snap)
		if snap.Stale {
			// A failed poll is an observation of its own, taken now: the
			// autoscaler holds on it.
			obs.Time = st.now
		}
		ss.history = append(ss.history, obs)
		if len(ss.history) > maxHistory {
			ss.history = ss.history[len(ss.history)-maxHistory:]
		}
		ss.lastSeen = snap.Time
	}
	spec := autoscaleSpec(ec.Spec.Scaling)
	spec.Share = ec.Spec.GroupType == v1alpha1.GroupTypeShare
	spec.MinScaleInterval = r.MinScaleInterval
	d := autoscale.Decide(autoscale.Input{
		Spec:            spec,
		History:         ss.history,
		State:           ss.state,
		CurrentReplicas: current,
		ReadyReplicas:   ready,
		Now:             st.now,
	})
	ss.state = d.State

	st.desired = d.Replicas
	st.decision = &scaleDecision{Decision: d, from: current}
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
	if p := ec.Spec.Scaling.PollIntervalSeconds; p != nil && *p > 0 {
		return time.Duration(*p) * time.Second
	}
	if r.DefaultPollInterval > 0 {
		return r.DefaultPollInterval
	}
	return 5 * time.Second
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
