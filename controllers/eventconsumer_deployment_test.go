package controllers

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// applyCounter counts the Deployment applies a reconciler makes, by
// consumer.
type applyCounter struct {
	client.Client
	mu    sync.Mutex
	names map[string]int
}

func (c *applyCounter) Apply(ctx context.Context, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
	c.mu.Lock()
	if ac, ok := obj.(interface{ GetName() *string }); ok && ac.GetName() != nil {
		c.names[*ac.GetName()]++
	}
	c.mu.Unlock()
	return c.Client.Apply(ctx, obj, opts...)
}

func (c *applyCounter) counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.names {
		out[k] = v
	}
	return out
}

// TestRestartSkipsUntouchedApplies: an operator that starts over
// Deployments its predecessor applied does not apply them again (a leader
// change or a shard move among thousands of consumers would otherwise cost
// an apply each), except the one whose spec someone edited while no
// operator ran, which it restores.
func TestRestartSkipsUntouchedApplies(t *testing.T) {
	const consumers = 5
	ns := namespace(t)
	createSteadyConsumers(t, ns, "c", consumers)
	first := startOperator(t, nil)
	for i := range consumers {
		waitDeployment(t, ns, fmt.Sprintf("c%03d", i), nil)
	}
	first.stop()

	// An edit of the spec by someone else, in a later second than the
	// apply so that the managed fields' times tell them apart.
	time.Sleep(1100 * time.Millisecond)
	edited := &appsv1.Deployment{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "c001"}, edited); err != nil {
		t.Fatal(err)
	}
	edited.Spec.Template.Spec.Containers[0].Image = "handler:edited"
	if err := env.Client.Update(context.Background(), edited, client.FieldOwner("kubectl-edit")); err != nil {
		t.Fatal(err)
	}

	var counter *applyCounter
	second := startOperator(t, func(r *EventConsumerReconciler) {
		counter = &applyCounter{Client: r.Client, names: map[string]int{}}
		r.Client = counter
	})
	// Every consumer reconciled: its Deployment is known as applied.
	eventually(t, 2*time.Minute, func() error {
		for i := range consumers {
			if !second.rec.applied.known(client.ObjectKey{Namespace: ns, Name: fmt.Sprintf("c%03d", i)}) {
				return fmt.Errorf("consumer c%03d not reconciled yet", i)
			}
		}
		return nil
	})
	waitDeployment(t, ns, "c001", func(d *appsv1.Deployment) error {
		if got := d.Spec.Template.Spec.Containers[0].Image; got != "handler:1" {
			return fmt.Errorf("image %q, want the edit reverted to handler:1", got)
		}
		return nil
	})
	got := counter.counts()
	for i := range consumers {
		name := fmt.Sprintf("c%03d", i)
		want := 0
		if name == "c001" {
			want = 1
		}
		if got[name] != want {
			t.Errorf("%s applied %d times after the restart, want %d (applies: %v)", name, got[name], want, got)
		}
	}
}
