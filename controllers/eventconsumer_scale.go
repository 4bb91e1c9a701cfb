package controllers

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/lagscale/lagscale/api/v1alpha1"
)

// scaleDecision is the autoscaler's answer for one reconcile.
type scaleDecision struct{}

type scalerStates struct {
	mu sync.Mutex
	m  map[types.NamespacedName]struct{}
}

func newScalerStates() *scalerStates { return &scalerStates{m: map[types.NamespacedName]struct{}{}} }

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

// decideReplicas sets st.desired. The count lagscale last set lives in the
// Deployment, so it survives an operator restart.
func (r *EventConsumerReconciler) decideReplicas(_ context.Context, st *reconcileState) time.Duration {
	if st.current != nil && st.current.Spec.Replicas != nil {
		st.desired = *st.current.Spec.Replicas
	} else {
		st.desired = initialReplicas(st.ec)
	}
	return 0
}
